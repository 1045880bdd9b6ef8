"""Files from elsewhere are untrusted: crafted review stores and split files (beside the bad-input catalogue).

A review store is shared between colleagues; its core names, label keys, array paths and dataset
folder are read from its metadata. None of them may lead a read or a write outside its folder, and
no export may land in an expert's folder, whatever the name. Built on real stores (written by
:class:`trainer.review_store.ReviewStore` from the two-expert fake) whose JSON is then edited the
way a crafted store would be.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import A, blocks, make_two_expert_dataset

from trainer.data.classes import GLEASON_SCHEME
from trainer.errors import InputError
from trainer.safe_paths import check_name, expert_folder_of, inside, is_safe_name, trusted_dataset_root


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.fixture
def data_and_store(tmp_path):
    """The two-expert Gleason fake and ``review.zarr`` caching c1 and c2 (made by the store's writer)."""
    from napari_gleason._core_sources import FolderSource
    from trainer.review_store import ReviewStore

    root = make_two_expert_dataset(tmp_path / "data")
    source = FolderSource.open(root)
    store = ReviewStore.create(tmp_path / "shared" / "review.zarr", source.scheme, dataset=str(root),
                               layout="gleason2019")
    for name in ("c1", "c2"):
        store.write_core(source.load(name))
    return root, store.path


# --- the name check itself -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../Maps1_T/slide009_core001", "..", ".", "", "a/b", "a\\b", "/etc/passwd",
                                  "C:evil", "a:b", "c1\0", "Maps1_T/x", None, 3])
def test_unsafe_names_are_refused(name):
    assert not is_safe_name(name)
    with pytest.raises(InputError, match="not a plain name") as info:
        check_name(name, "core name", "store/zarr.json")
    assert "store/zarr.json" in str(info.value)


@pytest.mark.parametrize("name", ["slide009_core001", "core é 1", "x.y", "..hidden-but-plain", "at 10:30"])
def test_plain_names_pass(name):
    assert check_name(name, "core name", None) == name


def test_inside_follows_links_and_dotdot(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "folder" / "link").symlink_to(tmp_path / "other")
    assert inside(tmp_path / "folder" / "x", tmp_path / "folder")
    assert not inside(tmp_path / "folder" / ".." / "other" / "x", tmp_path / "folder")
    assert not inside(tmp_path / "folder" / "link" / "x", tmp_path / "folder")  # a link out is outside


# --- crafted review stores -------------------------------------------------------------------------
def test_store_core_named_dotdot_is_refused_and_nothing_reaches_the_expert(data_and_store):
    """The case of the issue: a core named ``../Maps1_T/<core>`` must not make the export write there."""
    from napari_gleason._export import export_mask
    from trainer.review_store import ReviewStore

    root, store_path = data_and_store
    crafted = "../Maps1_T/c3"
    _edit_json(store_path / "c1" / "zarr.json", lambda m: m["attributes"]["napari_gleason"].update(core=crafted))
    before = _tree(root)
    with pytest.raises(InputError, match="not a plain name") as info:
        ReviewStore.open(store_path).names
    assert str(store_path / "c1" / "zarr.json") in str(info.value)
    # and the exporter refuses the name on its own (a name from anywhere else)
    with pytest.raises(InputError):
        export_mask(blocks(A, 4), crafted, GLEASON_SCHEME, root / "Maps_consensus", dataset_root=root,
                    ask_overwrite=lambda p: True)
    assert _tree(root) == before
    assert not (root / "Maps1_T" / "c3_classimg_nonconvex.png").exists()


@pytest.mark.parametrize("key", ["../../c2", "..", "expert_1/../../../c2"])
def test_store_label_key_leading_out_is_refused(data_and_store, key):
    from trainer.review_store import ReviewStore

    _, store_path = data_and_store
    labels_json = store_path / "c1" / "labels" / "zarr.json"
    _edit_json(labels_json, lambda m: m["attributes"]["ome"]["labels"].append(key))
    store = ReviewStore.open(store_path)
    with pytest.raises(InputError, match="label image") as info:
        store.load("c1")
    assert str(labels_json) in str(info.value)


@pytest.mark.parametrize("where", ["c1", "c1/labels/expert_1"])
@pytest.mark.parametrize("path", ["../c2/0", "/tmp/x", "0/../../c2/0"])
def test_store_array_path_leading_out_is_refused(data_and_store, where, path):
    from trainer.review_store import ReviewStore

    _, store_path = data_and_store
    meta = store_path / where / "zarr.json"
    _edit_json(meta, lambda m: m["attributes"]["ome"]["multiscales"][0]["datasets"][0].update(path=path))
    with pytest.raises(InputError) as info:
        ReviewStore.open(store_path).load("c1")
    assert "c1" in str(info.value)


def test_store_map_name_leading_out_is_refused(data_and_store):
    from trainer.review_store import PredictionWriter, ReviewStore, load_maps

    _, store_path = data_and_store
    store = ReviewStore.open(store_path)
    h, w = store.shape("c1")
    with PredictionWriter(store, "c1", ["benign", "G3", "G4", "G5"], roughness=False) as writer:
        writer.write_labels("prediction", 0, h, np.zeros((h, w), np.uint8))
        writer.write_map("probability", 0, h, np.full((4, h, w), 0.25, np.float32))
        writer.finish()
    assert set(load_maps(store, "c1")) == {"probability:benign", "probability:G3", "probability:G4", "probability:G5"}
    maps_json = store_path / "c1" / "maps" / "zarr.json"
    _edit_json(maps_json, lambda m: m["attributes"]["napari_gleason"]["maps"].append("../labels"))
    with pytest.raises(InputError, match="not a plain name") as info:
        load_maps(store, "c1")
    assert str(maps_json) in str(info.value)


def test_store_dataset_root_is_used_only_when_it_is_a_dataset_folder(data_and_store, tmp_path):
    from trainer.review_store import ReviewStore

    root, store_path = data_and_store
    assert ReviewStore.open(store_path).load("c1").origin["dataset"] == str(root.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for value in (str(elsewhere), str(tmp_path / "missing"), "/", "relative/../..", 7, None):
        _edit_json(store_path / "zarr.json", lambda m: m["attributes"]["napari_gleason"].update(dataset=value))
        origin = ReviewStore.open(store_path).load("c1").origin
        assert "dataset" not in origin and "layout" not in origin, value
    assert trusted_dataset_root(str(root / "Maps1_T" / "..")) == root.resolve()


# --- the exporter's destination check ----------------------------------------------------------------
def test_export_checks_the_final_path_against_every_expert_folder(tmp_path):
    from napari_gleason._export import export_mask

    root = make_two_expert_dataset(tmp_path / "data")
    (root / "consensus").mkdir()
    (root / "consensus" / "to_experts").symlink_to(root / "Maps2_T")
    before = _tree(root)
    for folder, root_given in [(root / "Maps_consensus" / ".." / "Maps1_T", root),  # through '..'
                               (root / "consensus" / "to_experts", root),  # through a link
                               (root / "Maps1_T", None),  # no dataset named: found above the file
                               (root / "Maps7_T", root)]:  # an expert beyond the six of the paper
        (root / "Maps7_T").mkdir(exist_ok=True)
        with pytest.raises(InputError, match="expert's folder"):
            export_mask(blocks(A, 4), "c1", GLEASON_SCHEME, folder, dataset_root=root_given,
                        ask_overwrite=lambda p: True)
    (root / "Maps7_T").rmdir()
    assert _tree(root) == before
    written = export_mask(blocks(A, 4), "c1", GLEASON_SCHEME, root / "Maps_consensus", dataset_root=root)
    assert written == root / "Maps_consensus" / "c1_classimg_nonconvex.png" and written.is_file()


def test_expert_folder_of_generic_annotators(tmp_path):
    from tests.napari_gleason.helpers_plugin import write_generic

    root = write_generic(tmp_path / "gen", {"x": {"ann": blocks(A, 4)}}, shape=blocks(A, 4).shape)
    assert expert_folder_of(root / "masks" / "ann" / "x.png") is not None
    assert expert_folder_of(root / "masks" / "new_one" / "x.png") is not None  # masks/ itself
    assert expert_folder_of(root / "masks_consensus" / "x.png") is None


# --- split files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../Maps1_T/c1", "/etc/passwd", "a/b", ""])
def test_split_file_names_must_be_plain(tmp_path, name):
    from trainer.data.splits import load_split

    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["c1", name], "val": [], "test": []}))
    with pytest.raises(InputError, match="not a plain name") as info:
        load_split(path)
    assert str(path) in str(info.value)


def test_store_written_by_this_version_still_opens(data_and_store):
    """The checks refuse nothing a store written by this napari-gleason holds (symlinked store folder too)."""
    from trainer.review_store import ReviewStore

    _, store_path = data_and_store
    link = store_path.parent / "link.zarr"
    os.symlink(store_path, link)
    core = ReviewStore.open(link).load("c1")
    assert core.name == "c1" and set(core.labels) == {"expert:1", "expert:2"}
    assert np.asarray(core.image[0]).shape[:2] == blocks(A, 4).shape
