"""A generic dataset with a QuPath GeoJSON expert in the plugin, without a viewer: the reader's layers,
the browser's mask-only loading and its scores read the GeoJSON like a PNG expert."""

import numpy as np
from tests.fakes_qupath import collection, feature, make_mixed_dataset, poly, qupath_classes, save, square

from trainer.data.classes import LabelCoding
from napari_gleason._core_sources import FolderSource, load_core_file
from napari_gleason._reader import napari_get_reader
from napari_gleason._scores import read_mask_grid


def _roles(tuples):
    return [kw["metadata"]["napari_gleason"]["role"] for _, kw, _ in tuples]


def test_reader_opens_a_dataset_with_a_geojson_expert(tmp_path):
    root = make_mixed_dataset(tmp_path / "data")
    tuples = napari_get_reader(str(root))(str(root))
    assert _roles(tuples) == ["image", "expert:ann", "expert:qupath"]
    coding = LabelCoding.from_scheme(FolderSource.open(root).scheme)
    data, _, kind = tuples[2]
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), coding.to_labels(qupath_classes()))
    # the same core opened from its image file, as the full-resolution loader gives it
    core = load_core_file(root / "images" / "a.png")
    np.testing.assert_array_equal(core.masks["qupath"], qupath_classes())


def test_browser_masks_and_score_grid_read_the_geojson(tmp_path):
    root = make_mixed_dataset(tmp_path / "data")
    source = FolderSource.open(root)
    np.testing.assert_array_equal(source.masks("b")["qupath"], qupath_classes())
    grid = read_mask_grid(root / "masks" / "qupath" / "b.geojson", source.scheme, qupath_classes().shape, 2)
    np.testing.assert_array_equal(grid, qupath_classes()[::2, ::2])


def test_reader_reports_a_broken_geojson_and_opens_the_core_with_the_other_expert(tmp_path, monkeypatch):
    root = make_mixed_dataset(tmp_path / "data")
    save(root / "masks" / "qupath" / "a.geojson", collection(feature("Gleason 3", poly(square(0, 0, 90, 4)))))
    errors, warnings = [], []
    monkeypatch.setattr("napari_gleason._reader.show_error", errors.append)
    monkeypatch.setattr("napari_gleason._reader.show_warning", warnings.append)
    tuples = napari_get_reader(str(root))(str(root))
    assert tuples[0][1]["name"] == "a"
    assert [t[1]["name"] for t in tuples[1:]] == ["expert:ann"]  # the broken GeoJSON expert left out
    assert errors == []
    assert len(warnings) == 1 and "a.geojson" in warnings[0] and "outside the image" in warnings[0]
