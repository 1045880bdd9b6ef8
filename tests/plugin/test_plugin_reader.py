"""The reader without a viewer: which paths it takes, what layers it returns, how it fails."""

import numpy as np
from helpers_plugin import A, B, blocks, write_generic

from napari_gleason._core_sources import dataset_root_of_image
from napari_gleason._reader import napari_get_reader


def _roles(tuples):
    return [kw["metadata"]["napari_gleason"]["role"] for _, kw, _ in tuples]


def test_core_image_gives_image_and_one_labels_layer_per_expert(two_expert_dataset):
    path = two_expert_dataset / "Train Imgs" / "c2.png"
    reader = napari_get_reader(str(path))
    assert callable(reader)
    tuples = reader(str(path))
    assert _roles(tuples) == ["image", "expert:1", "expert:3"]
    data, kw, kind = tuples[1]
    assert kind == "labels"
    np.testing.assert_array_equal(data, np.array([1, 3, 4, 5], np.uint8)[blocks(B, 4)])
    assert kw["metadata"]["napari_gleason"]["origin"]["layout"] == "gleason2019"


def test_generic_core_image(tmp_path):
    root = write_generic(tmp_path / "gen", {"a": {"ann1": A, "ann2": B}, "b": {"ann2": A}}, shape=A.shape)
    tuples = napari_get_reader(str(root / "images" / "a.png"))(str(root / "images" / "a.png"))
    assert _roles(tuples) == ["image", "expert:ann1", "expert:ann2"]


def test_reader_declines_paths_it_does_not_handle(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"not looked at")
    (tmp_path / "plain").mkdir()
    (tmp_path / "other.zarr").mkdir()
    for p in ("photo.png", "plain", "other.zarr", "missing.png"):
        assert napari_get_reader(str(tmp_path / p)) is None
    assert napari_get_reader([str(tmp_path / "a.png"), str(tmp_path / "b.png")]) is None


def test_dataset_root_of_image_layouts(tmp_path):
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "x.jpg") == tmp_path
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "Train Imgs" / "x.jpg") == tmp_path
    assert dataset_root_of_image(tmp_path / "Test_imgs" / "x.tif") == tmp_path
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "x.txt") is None
