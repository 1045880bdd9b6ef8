"""Export panel formats: a labels layer as QuPath GeoJSON, a map layer as pyramidal OME-TIFF, both written
in a worker; an expert's folder and a full disk give one notification and leave nothing."""

import dataclasses
import os

import numpy as np
import tifffile
from tests.napari_gleason.helpers_plugin import tree_digest
from napari.layers import Layer

from napari_gleason._layers import current_core, find_layer, set_layer
from napari_gleason._qt import ReviewWidget
from napari_gleason._reader import napari_get_reader
from trainer.data.classes import GLEASON_SCHEME
from trainer.data.geojson import read_geojson_mask

READ_BACK = dataclasses.replace(GLEASON_SCHEME, annotation_names={"benign": 1, "G3": 3, "G4": 4, "G5": 5})


def _open(viewer, path) -> None:
    """napari-gleason's reader, layer by layer (these hand-made cores are not named like Gleason 2019's)."""
    for data, meta, kind in napari_get_reader(str(path))(str(path)):
        viewer.add_layer(Layer.create(data, meta, kind))


def _errors(notes) -> list[str]:
    from napari.utils.notifications import NotificationSeverity

    return [n.message for n in notes if n.severity >= NotificationSeverity.WARNING]


def test_geojson_and_ome_tiff_from_the_panel(make_napari_viewer, two_expert_dataset, wait_idle, notes,
                                             monkeypatch):
    root = two_expert_dataset
    before = tree_digest(root)
    viewer = make_napari_viewer()
    _open(viewer, root / "Train Imgs" / "c1.png")
    w = ReviewWidget(viewer)
    viewer.window.add_dock_widget(w)
    wait_idle(w)
    panel, info = w.export, current_core(viewer)
    folder = root / "Maps_consensus"

    # the vote as GeoJSON: written in a worker, read back as the same classes
    vote = info.coding.to_classes(np.asarray(find_layer(viewer, "consensus:vote").data))
    assert panel._on_export_file("consensus:vote", fmt="geojson") is None
    wait_idle(w)
    np.testing.assert_array_equal(read_geojson_mask(folder / "c1.geojson", vote.shape, READ_BACK), vote)

    # an error map at half the core's resolution (the paper setting): the panel offers OME-TIFF for it
    # and writes it at the core's size, each model pixel a 2×2 block, NaN (off the tissue) kept
    h, w_ = vote.shape
    error = np.random.default_rng(0).random((h // 2, w_ // 2), dtype=np.float32)
    error[0, 0] = np.nan
    set_layer(viewer, "error:1", error, core="c1", scale=(2.0, 2.0))
    panel.layer_box.setCurrentText("error:1")
    assert [panel.format_box.itemData(i) for i in range(panel.format_box.count())] == ["ome-tiff"]
    panel.layer_box.setCurrentText("consensus:vote")
    assert [panel.format_box.itemData(i) for i in range(panel.format_box.count())] == ["png", "geojson"]
    assert panel._on_export_file("error:1") is None
    wait_idle(w)
    with tifffile.TiffFile(folder / "c1_error_1.ome.tif") as tif:
        written = tif.series[0].levels[0].asarray()
        assert tif.is_ome
    expected = np.kron(error, np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(written.view(np.uint32), expected.view(np.uint32))
    assert _errors(notes) == []

    # an expert's folder, then a full disk while the worker writes: one notification each, nothing left
    exported = tree_digest(root)
    notes.clear()
    panel._on_export_file("consensus:vote", str(root / "Maps1_T"), "geojson")
    wait_idle(w)
    errors = _errors(notes)
    assert len(errors) == 1 and "/Maps1_T" in errors[0] and "expert's folder" in errors[0], errors
    notes.clear()
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _no_space)
        panel._on_export_file("error:1", str(root / "new folder"))
        wait_idle(w)
    errors = _errors(notes)
    assert len(errors) == 1 and "c1_error_1.ome.tif" in errors[0] and "No space left on device" in errors[0], errors
    assert tree_digest(root) == exported and not (root / "new folder").exists()
    assert {k: v for k, v in exported.items() if not k.startswith("Maps_consensus")} == before


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")
