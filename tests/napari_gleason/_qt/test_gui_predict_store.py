"""Full-resolution prediction of a core opened from a review store: read from it, written into it."""

import numpy as np

from napari_gleason._core_sources import FolderSource
from napari_gleason._layers import find_layer, level0, show_core
from napari_gleason._qt import PredictWidget
from trainer.review_store import ReviewStore

CORE = "slide001_core004"  # experts 1, 2, 4; the tiny run's weighting CNN knows 1, 3, 4


def predict_full_resolution(viewer, checkpoint, wait_idle) -> PredictWidget:
    """Dock the predict widget, choose the checkpoint and "full resolution" on the CPU, click, wait."""
    w = PredictWidget(viewer)
    viewer.window.add_dock_widget(w, name="predict")
    w.device.setCurrentText("cpu")
    w.offer_checkpoint(checkpoint)
    w.mode.setCurrentIndex(w.mode.findData("full"))
    assert w.predict()
    wait_idle(w)
    return w


def test_full_resolution_writes_into_the_store_and_shows_it_lazily(make_napari_viewer, synthetic_data, tiny_run,
                                                                    tmp_path, wait_idle):
    store = ReviewStore.create(tmp_path / "review.zarr", FolderSource.open(synthetic_data).scheme)
    store.write_core(FolderSource.open(synthetic_data).load(CORE))
    viewer = make_napari_viewer()
    show_core(viewer, store.load(CORE))
    w = predict_full_resolution(viewer, tiny_run, wait_idle)

    assert "written into the review store" in w.status.text()
    stored = ReviewStore.open(store.path).load(CORE)
    assert {"prediction", "consensus:learned"} <= set(stored.labels)
    np.testing.assert_array_equal(np.asarray(level0(find_layer(viewer, "prediction"))),
                                  np.asarray(stored.labels["prediction"][0]))
    np.testing.assert_array_equal(np.asarray(level0(find_layer(viewer, "consensus:learned"))),
                                  np.asarray(stored.labels["consensus:learned"][0]))
    probability = level0(find_layer(viewer, "probability:G4"))
    assert not isinstance(probability, np.ndarray)  # lazy, read from the store as napari draws
    np.testing.assert_array_equal(np.asarray(probability), np.asarray(stored.maps["probability:G4"][0]))
    assert sorted(r for r in stored.maps if r.startswith("weight")) == ["weight:1", "weight:4"]

    # reopening the core brings the prediction back with it
    viewer.layers.clear()
    show_core(viewer, ReviewStore.open(store.path).load(CORE))
    assert find_layer(viewer, "prediction") is not None and find_layer(viewer, "weight:4") is not None


def test_a_big_core_from_files_streams_through_its_dataset_store(make_napari_viewer, synthetic_data, tiny_run,
                                                                  tmp_path, wait_idle, monkeypatch):
    import shutil

    from napari_gleason import _predict

    monkeypatch.setattr(_predict, "STREAM_ABOVE", 50)  # the synthetic cores (96²) count as big here
    root = tmp_path / "gleason data"
    shutil.copytree(synthetic_data, root)
    viewer = make_napari_viewer()
    show_core(viewer, FolderSource.open(root).load(CORE))
    w = predict_full_resolution(viewer, tiny_run, wait_idle)

    assert "written into the review store" in w.status.text() and "cached in" in w.note.text()
    stored = ReviewStore.open(root / _predict.STORE_NAME).load(CORE)
    np.testing.assert_array_equal(np.asarray(level0(find_layer(viewer, "prediction"))),
                                  np.asarray(stored.labels["prediction"][0]))
    assert not isinstance(level0(find_layer(viewer, "probability:G3")), np.ndarray)
