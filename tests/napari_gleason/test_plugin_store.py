"""The review store: round trip, OME-Zarr conformance, version check, atomic writes."""

import errno
import json

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import textured_image, tree_digest

from trainer.review_store import store as _store
from napari_gleason._layers import Core
from trainer.review_store import (
    ReviewStore,
    StoreExistsError,
    is_review_store,
)
from trainer.data.classes import GLEASON_SCHEME
from trainer.errors import InputError


@pytest.fixture
def core(rng):
    shape = (1100, 600)  # odd halvings and more than one pyramid level
    masks = {e: rng.integers(0, 4, shape).astype(np.uint8) for e in ("1", "3", "4")}
    return Core("slide 7 core é", textured_image(shape), masks, GLEASON_SCHEME,
                    extras={"consensus:vote": masks["3"]}, origin={"dataset": "/data/gleason", "layout": "gleason2019"})


def test_round_trip_image_pyramid_experts_extras(tmp_path, core):
    data = tmp_path / "gleason"  # a store's dataset folder is used only when it is one (tests/test_untrusted_files.py)
    (data / "Maps1_T").mkdir(parents=True)
    store = ReviewStore.create(tmp_path / "review.zarr", GLEASON_SCHEME, dataset=str(data), layout="gleason2019")
    store.write_core(core)
    again = ReviewStore.open(tmp_path / "review.zarr")
    assert again.names == [core.name]
    assert again.experts_of(core.name) == ("1", "3", "4")
    loaded = again.load(core.name)
    assert loaded.multiscale and len(loaded.image) == 2
    np.testing.assert_array_equal(np.asarray(loaded.image[0]), core.image)
    assert loaded.image[1].shape == (550, 300, 3)
    assert loaded.experts == ["1", "3", "4"]
    assert all(len(levels) == 2 for levels in loaded.labels.values())  # lazy label pyramids
    maps = loaded.class_maps()
    for e, m in core.masks.items():
        np.testing.assert_array_equal(maps[f"expert:{e}"], m)
    np.testing.assert_array_equal(maps["consensus:vote"], core.extras["consensus:vote"])
    np.testing.assert_array_equal(again.masks(core.name)["3"], core.masks["3"])
    assert loaded.origin["dataset"] == str(data.resolve()) and loaded.origin["store"] == str(tmp_path / "review.zarr")
    assert not (tmp_path / "review.zarr" / ".staging").exists()


def test_store_is_valid_ome_zarr_0_5(tmp_path, core):
    zarr = pytest.importorskip("zarr")
    models = pytest.importorskip("ome_zarr_models.v05")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    assert models
    store = ReviewStore.create(tmp_path / "r.zarr", GLEASON_SCHEME)
    core_dir = store.write_core(core)
    Image.from_zarr(zarr.open_group(core_dir, mode="r"))  # raises if not NGFF 0.5
    label = ImageLabel.from_zarr(zarr.open_group(core_dir / "labels" / "expert_1", mode="r"))
    assert label is not None
    meta = json.loads((core_dir / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"
    assert [a["name"] for a in meta["multiscales"][0]["axes"]] == ["c", "y", "x"]
    assert meta["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 2.0]
    nodes = list(Reader(parse_url(str(core_dir)))())
    assert nodes[0].data[0].shape == (3, 1100, 600)
    label_meta = json.loads((core_dir / "labels" / "expert_1" / "zarr.json").read_text())["attributes"]["ome"]
    assert {c["label-value"] for c in label_meta["image-label"]["colors"]} == {1, 3, 4, 5}


def test_existing_core_or_label_is_not_overwritten_unless_asked(tmp_path, core):
    store = ReviewStore.create(tmp_path / "r.zarr", GLEASON_SCHEME)
    store.write_core(core)
    with pytest.raises(StoreExistsError):
        store.write_core(core)
    store.write_labels(core.name, "corrected", core.masks["1"])
    with pytest.raises(StoreExistsError):
        store.write_labels(core.name, "corrected", core.masks["4"])
    store.write_labels(core.name, "corrected", core.masks["4"], overwrite=True)
    np.testing.assert_array_equal(store.load(core.name).class_maps()["corrected"], core.masks["4"])


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path, core, monkeypatch):
    store = ReviewStore.create(tmp_path / "r.zarr", GLEASON_SCHEME)
    before = tree_digest(store.path)

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_store, "_write_label_group", boom)
    with pytest.raises(InputError, match="No space left on device") as info:
        store.write_core(core)
    assert info.value.path == store.path / _store.safe_key(core.name)  # the core it was writing
    assert tree_digest(store.path) == before
    assert store.names == [] and not (store.path / ".staging").exists()


def test_other_zarr_folders_are_not_review_stores(tmp_path):
    zarr = pytest.importorskip("zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    assert not is_review_store(tmp_path / "plain.zarr")
    assert not is_review_store(tmp_path / "missing.zarr")
    with pytest.raises(InputError, match="not a napari-gleason review store"):
        ReviewStore.open(tmp_path / "plain.zarr")


def test_store_refuses_a_core_with_other_classes(tmp_path, core):
    from trainer.data.classes import ClassScheme

    other = ClassScheme(("a", "b"), {0: 0, 1: 1})
    store = ReviewStore.create(tmp_path / "r.zarr", other)
    with pytest.raises(InputError, match="other classes"):
        store.write_core(core)
