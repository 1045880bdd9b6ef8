"""A confusion-model checkpoint in the GUI: error:<expert> layers, the review widget's confusion tables."""

import hashlib

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import click_predict as predict
from tests.napari_gleason.helpers_plugin import errors_of

from napari_gleason._layers import find_layer, layers_with_prefix, level0, role_of
from napari_gleason._qt import ReviewWidget
from napari_gleason._session import session_of
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.data.classes import GLEASON_SCHEME
from trainer.prediction.confusion import CoreConfusion, percent_cells, summary_line

CORE = "slide001_core004"  # experts 1, 2, 4; the tiny runs know 1, 3, 4


def world_box(layer) -> np.ndarray:
    """The world rectangle a layer covers: pixel i spans [i - 1/2, i + 1/2] before scale and translate."""
    shape = np.array(np.shape(level0(layer))[:2], float)
    s, t = np.array(layer.scale[-2:]), np.array(layer.translate[-2:])
    return np.concatenate([t - s / 2, t + s * (shape - 0.5)])


def test_error_layers_with_colour_bar_fixed_range_blank_off_tissue(predict_viewer, tiny_confusion_run, wait_idle,
                                                                   notes):
    viewer, w, review = predict_viewer(review=True)
    predict(w, wait_idle, tiny_confusion_run)
    assert errors_of(notes) == []
    image = find_layer(viewer, "image")
    assert [role_of(lyr) for lyr in layers_with_prefix(viewer, "error")] == ["error:1", "error:4"]
    assert layers_with_prefix(viewer, "weight") == [] and find_layer(viewer, "consensus:learned") is None
    assert not review.consensus._learned.isEnabled()  # no weighting CNN: no learned-weight consensus
    maps = {}
    for e in ("1", "4"):
        layer = find_layer(viewer, f"error:{e}")
        assert layer.colorbar.visible and tuple(layer.contrast_limits) == (0.0, 1.0)
        np.testing.assert_allclose(world_box(layer), world_box(image))  # model resolution, on the image
        maps[e] = np.asarray(level0(layer))
        assert maps[e].shape == (w.predictor.size, w.predictor.size)
    tissue = ~np.isnan(maps["1"])
    assert 0.3 < tissue.mean() < 0.95  # blank on the glass around the core
    # the corners of a round core are glass
    assert not tissue[0, 0] and not tissue[-1, -1] and tissue[tissue.shape[0] // 2, tissue.shape[1] // 2]
    np.testing.assert_array_equal(np.isnan(maps["4"]), ~tissue)
    assert 0 <= np.nanmin(maps["1"]) and np.nanmax(maps["1"]) <= 1
    assert "2 of this core get no error map" in w.note.text()

    # the review widget shows the prediction's matrices, values as the prediction has them
    conf = w.output.confusion
    panel = review.confusion
    assert panel.shown is conf and sorted(panel.tables) == ["1", "4"]
    for e in ("1", "4"):
        assert panel.values(e) == percent_cells(conf.matrices[e])
    assert panel.lines["4"] == summary_line("4", conf.matrices["4"], conf.classes, conf.share)


def test_switching_to_a_weighting_checkpoint_drops_error_layers_and_tables(predict_viewer, tiny_confusion_run, tiny_run,
                                                                          wait_idle):
    viewer, w, review = predict_viewer(review=True)
    predict(w, wait_idle, tiny_confusion_run)
    assert layers_with_prefix(viewer, "error")
    predict(w, wait_idle, tiny_run)
    assert layers_with_prefix(viewer, "error") == []
    assert [role_of(lyr) for lyr in layers_with_prefix(viewer, "weight")] == ["weight:1", "weight:4"]
    assert review.confusion.shown is None and review.confusion.tables == {}
    assert review.consensus._learned.isEnabled()


def test_table_shows_a_given_prediction_and_only_for_its_core(predict_viewer, wait_idle):
    viewer, _, review = predict_viewer(review=True, predict=False)
    m3 = np.array([[0.9, 0.1, 0.0, 0.0], [0.02, 0.6, 0.38, 0.0], [0.0, 0.05, 0.95, 0.0], [np.nan] * 4])
    m6 = np.eye(4) * 0.97 + 0.01
    share = np.array([0.5, 0.3, 0.2, 0.0])
    conf = CoreConfusion(CORE, GLEASON_SCHEME.names, {"3": m3, "6": m6}, share)
    session_of(viewer).set_confusion(conf)
    panel = review.confusion
    assert panel.values("3") == [["90", "10", "0", "0"], ["2", "60", "38", "0"], ["0", "5", "95", "0"],
                                 ["—", "—", "—", "—"]]
    assert panel.values("6")[0] == ["98", "1", "1", "1"]
    assert panel.lines["3"] == "expert 3: G3 → G4 on 38 % of G3"
    assert panel.lines["6"] == "expert 6: no confusion above 5 %"
    assert "rows = true class" in panel.summary.text()
    table = panel.tables["3"]
    assert [table.verticalHeaderItem(i).text() for i in range(4)] == ["benign 50%", "G3 30%", "G4 20%", "G5 0%"]
    assert table.item(1, 2).data(256) == pytest.approx(0.38)  # Qt.UserRole: the value behind the text
    # another core's estimate is not shown here
    session_of(viewer).set_confusion(CoreConfusion("another core", GLEASON_SCHEME.names, {"3": m3}, share))
    assert panel.shown is None and panel.tables == {} and "--confusion" in panel.summary.text()
    # a review widget docked after the prediction picks it up from the session
    session_of(viewer).set_confusion(conf)
    late = ReviewWidget(viewer)
    viewer.window.add_dock_widget(late, name="late review")
    late._on_core_changed()
    assert late.confusion.values("3") == panel.values("3")
    wait_idle(late)  # its derived layers are computed in a worker: let it finish before the viewer closes


def _layer_state(viewer) -> list[tuple]:
    return [(lyr.name, type(lyr).__name__, hashlib.sha256(np.ascontiguousarray(level0(lyr))).hexdigest())
            for lyr in viewer.layers]


def test_damaged_confusion_weights_one_notification_no_layer(predict_viewer, tiny_confusion_run, tmp_path, wait_idle,
                                                            notes):
    from napari.utils.notifications import NotificationSeverity

    payload = load_checkpoint(f"{tiny_confusion_run}/best.pt")
    key = next(k for k, v in payload["confusion"].items() if getattr(v, "ndim", 0) == 4)
    payload["confusion"][key] = payload["confusion"][key][:1]  # a head of the wrong shape
    bad = save_checkpoint(tmp_path / "bad confusion.pt", payload)
    viewer, w, review = predict_viewer(review=True)
    before = _layer_state(viewer)
    notes.clear()
    predict(w, wait_idle, bad)
    shown = [n for n in notes if n.severity >= NotificationSeverity.WARNING]
    assert [n.severity for n in shown] == [NotificationSeverity.ERROR], [n.message for n in shown]
    assert "bad confusion.pt" in shown[0].message and "confusion network weights do not fit" in shown[0].message
    assert _layer_state(viewer) == before
    assert review.confusion.shown is None
