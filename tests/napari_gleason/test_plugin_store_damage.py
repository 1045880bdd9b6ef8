"""A damaged review store says so: a checksum per chunk and every chunk on disk, so a deleted or
truncated chunk is an error naming the store, the core and the array (never zeros); ``check`` on a
store; older stores without checksums still open, with a note; a full disk while writing leaves
nothing behind."""

import errno
import json
import math

import numpy as np
import pytest
from tests.broken_inputs import damage_chunk
from tests.napari_gleason.helpers_plugin import textured_image, tree_digest

from napari_gleason._layers import Core
from trainer.cli import main
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX
from trainer.errors import InputError
from trainer.review_store import DamagedStoreError, PredictionWriter, ReviewStore
from trainer.review_store import outputs as _outputs
from trainer.review_store import store as _store
from trainer.review_store.integrity import UNCHECKED_NOTE

NAME = "c1"
SHAPE = (1100, 600)  # two pyramid levels; level 0 is two chunks high


def write(path, rng):
    # expert 2 labelled nothing: every chunk of its label image holds only the fill value (0)
    masks = {"1": rng.integers(0, 4, SHAPE).astype(np.uint8), "2": np.full(SHAPE, IGNORE_INDEX, np.uint8)}
    store = ReviewStore.create(path, GLEASON_SCHEME)
    store.write_core(Core(NAME, textured_image(SHAPE), masks, GLEASON_SCHEME))
    with PredictionWriter(store, NAME, GLEASON_SCHEME.names, roughness=False) as w:
        w.write_labels("prediction", 0, SHAPE[0], np.zeros(SHAPE, np.uint8))
        w.write_map("probability", 0, SHAPE[0], np.full((len(GLEASON_SCHEME.names), *SHAPE), 0.25, np.float32))
        w.finish()
    return ReviewStore.open(path)


@pytest.fixture
def store(tmp_path, rng):
    return write(tmp_path / "review.zarr", rng)


def chunk_files(folder):
    return [p for p in (folder / "c").rglob("*") if p.is_file()]


def test_every_array_has_a_checksum_and_every_chunk_a_file(store):
    folders = store.arrays_of(NAME)
    assert {str(f.relative_to(store.path / NAME)) for f in folders} >= {
        "0", "1", "labels/expert_1/0", "labels/expert_2/1", "labels/prediction/0", "maps/probability/1"}
    for folder in folders:
        meta = json.loads((folder / "zarr.json").read_text())
        assert [c["name"] for c in meta["codecs"]][-1] == "crc32c", folder
        grid = math.prod(math.ceil(s / c) for s, c in
                         zip(meta["shape"], meta["chunk_grid"]["configuration"]["chunk_shape"]))
        assert len(chunk_files(folder)) == grid, folder  # the all-fill chunks of expert 2 too
    assert store.notes == []


def assert_names_it(error, array: str) -> None:
    text = str(error.value)
    assert isinstance(error.value, DamagedStoreError) and isinstance(error.value, InputError)
    assert str(error.value.path).endswith("review.zarr") and text.startswith(f"{error.value.path}: ")
    assert f"core {NAME!r}" in text and f"(array {array})" in text and "damaged" in text, text


@pytest.mark.parametrize("array", ["labels/expert_2/0", "labels/expert_1/0"])
def test_a_deleted_expert_chunk_is_an_error_not_zeros(store, array):
    damage_chunk(f"{NAME}/{array}", "deleted")(store.path)
    with pytest.raises(DamagedStoreError) as error:
        store.masks(NAME)  # what the scores read: once zeros, an expert shown as empty
    assert_names_it(error, array)
    assert "is missing" in str(error.value)
    with pytest.raises(DamagedStoreError) as error:
        store.load(NAME)  # what the viewer opens: fails on opening, before napari reads a tile
    assert_names_it(error, array)


def test_a_truncated_expert_chunk_fails_its_checksum_on_every_read(store):
    damage_chunk(f"{NAME}/labels/expert_1/0", "truncated")(store.path)
    with pytest.raises(DamagedStoreError) as error:
        store.masks(NAME)
    assert_names_it(error, "labels/expert_1/0")
    assert "checksum" in str(error.value)
    core = store.load(NAME)  # lazy: listing finds nothing missing
    with pytest.raises(DamagedStoreError) as error:
        np.asarray(core.labels["expert:1"][0][:5, :5])
    assert_names_it(error, "labels/expert_1/0")
    with pytest.raises(DamagedStoreError):
        core.class_maps()
    np.asarray(core.labels["expert:1"][1])  # the other level is whole


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_damaged_image_chunk_is_an_error_not_black(store, how):
    damage_chunk(f"{NAME}/0", how)(store.path)
    if how == "deleted":
        with pytest.raises(DamagedStoreError) as error:
            store.load(NAME)
        assert_names_it(error, "0")
        with pytest.raises(DamagedStoreError):
            store.image(NAME)  # the prediction's source
        return
    core = store.load(NAME)
    with pytest.raises(DamagedStoreError) as error:
        np.asarray(core.image[0][:8, :8])  # dask over the store: the error comes through unchanged
    assert_names_it(error, "0")
    with pytest.raises(DamagedStoreError):
        store.image(NAME)[:8, :8]
    assert np.asarray(core.image[1]).any()


def test_a_deleted_map_chunk_is_an_error(store):
    damage_chunk(f"{NAME}/maps/probability/0", "deleted")(store.path)
    with pytest.raises(DamagedStoreError) as error:
        store.load(NAME)
    assert_names_it(error, "maps/probability/0")


# --- python -m trainer check --data STORE ---------------------------------------------------------
def run_check(capsys, *argv):
    capsys.readouterr()
    code = main(["check", "--data", *argv])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_check_a_whole_store(store, capsys):
    code, out, err = run_check(capsys, str(store.path), "--full")
    assert code == 0 and err == []
    assert "review store, 1 cores, 10 arrays checked (every chunk read): no problems" in out


def test_check_finds_a_deleted_chunk_by_listing(store, capsys):
    damage_chunk(f"{NAME}/labels/expert_2/0", "deleted")(store.path)
    before = tree_digest(store.path)
    code, out, err = run_check(capsys, str(store.path))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {store.path}: 1 problem in the review store")
    assert f"core {NAME!r}" in err[0] and "labels/expert_2/0" in err[0] and "missing" in err[0]
    assert f"{NAME}/labels/expert_2/0" in out and "chunk files listed" in out
    assert tree_digest(store.path) == before


def test_check_full_reads_every_chunk_for_a_truncated_one(store, capsys):
    damage_chunk(f"{NAME}/0", "truncated")(store.path)
    code, out, _ = run_check(capsys, str(store.path))
    assert code == 0  # listing alone cannot see it
    code, out, err = run_check(capsys, str(store.path), "--full")
    assert code == 2 and len(err) == 1
    assert "image, level 0 (array 0): chunk c/0/0/0 does not match its checksum" in err[0]


# --- older stores, written without checksums ---------------------------------------------------------
@pytest.fixture
def old_store(tmp_path, rng, monkeypatch):
    with monkeypatch.context() as m:  # how the store wrote arrays before: zarr's defaults
        m.setattr(_store, "array_options", lambda: {})
        m.setattr(_outputs, "array_options", lambda: {})
        return write(tmp_path / "old.zarr", rng)


def test_an_old_store_opens_with_one_note(old_store, capsys):
    assert not chunk_files(old_store.path / NAME / "labels" / "expert_2" / "0")  # all-fill chunks never written
    again = ReviewStore.open(old_store.path)
    core = again.load(NAME)
    np.testing.assert_array_equal(again.masks(NAME)["2"], np.full(SHAPE, IGNORE_INDEX))
    again.load(NAME)
    assert np.asarray(core.image[0]).shape == (*SHAPE, 3)
    assert again.notes == [UNCHECKED_NOTE]
    code, out, err = run_check(capsys, str(old_store.path), "--full")
    assert code == 0 and f"note: {UNCHECKED_NOTE}" in out


# --- a full disk while writing ----------------------------------------------------------------------
def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_caching_a_core_leaves_nothing(tmp_path, store, rng, monkeypatch):
    import zarr.storage._local as local

    before = tree_digest(store.path)
    monkeypatch.setattr(local, "_put", no_space)  # zarr's every chunk and metadata write
    core = Core("c2", textured_image(SHAPE), {"1": rng.integers(0, 4, SHAPE).astype(np.uint8)}, GLEASON_SCHEME)
    with pytest.raises(InputError, match="No space left on device") as error:
        store.write_core(core)
    assert error.value.path == store.path / "c2"
    with pytest.raises(InputError, match="No space left on device") as error:
        store.write_labels(NAME, "corrected", np.zeros(SHAPE, np.uint8))
    assert error.value.path == store.path / NAME / "labels" / "corrected"
    with pytest.raises(InputError, match="No space left on device") as error:
        PredictionWriter(store, NAME, GLEASON_SCHEME.names)
    assert error.value.path == store.path / NAME
    assert tree_digest(store.path) == before and not (store.path / ".staging").exists()


def test_a_full_disk_while_replacing_metadata_leaves_the_old_file(store, monkeypatch):
    import os

    before = tree_digest(store.path)
    monkeypatch.setattr(os, "fsync", no_space)  # the last step of the labels list's replacement
    with pytest.raises(InputError, match="No space left on device") as error:
        store.write_labels(NAME, "corrected", np.zeros(SHAPE, np.uint8))
    assert error.value.path == store.path / NAME / "labels" / "zarr.json"
    assert tree_digest(store.path) == before and not (store.path / ".staging").exists()  # no temporary file
