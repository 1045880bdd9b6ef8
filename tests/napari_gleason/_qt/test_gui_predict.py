"""The predict widget: one click adds every output layer, registered to the image; bad checkpoints."""

import numpy as np
from tests.napari_gleason.helpers_plugin import click_predict as predict
from tests.napari_gleason.helpers_plugin import errors_of

from napari_gleason._layers import (
    find_layer,
    layers_with_prefix,
    level0,
    role_of,
)
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.resample import resize_nearest
from trainer.data.classes import GLEASON_SCHEME, LabelCoding

# the core of predict_viewer has experts 1, 2, 4; the tiny run's weighting CNN knows 1, 3, 4
OUTPUTS = ["prediction", "probability:benign", "probability:G3", "probability:G4", "probability:G5",
           "weight:1", "weight:4", "roughness", "consensus:learned"]


def world_box(layer) -> np.ndarray:
    """The world rectangle a layer covers: pixel i spans [i - 1/2, i + 1/2] before scale and translate."""
    shape = np.array(np.shape(level0(layer))[:2], float)
    s, t = np.array(layer.scale[-2:]), np.array(layer.translate[-2:])
    return np.concatenate([t - s / 2, t + s * (shape - 0.5)])


def test_predict_adds_every_layer_registered_to_the_image(predict_viewer, tiny_run, wait_idle):
    viewer, w, review = predict_viewer(review=True)
    assert not review.consensus._learned.isEnabled()
    predict(w, wait_idle, tiny_run)
    image = find_layer(viewer, "image")
    shape = level0(image).shape[:2]
    for role in OUTPUTS:  # the paper setting: model resolution (64²), covering exactly the image
        layer = find_layer(viewer, role)
        assert layer is not None, role
        assert np.shape(level0(layer))[:2] == (shape if role == "consensus:learned" else (64, 64)), role
        np.testing.assert_allclose(world_box(layer), world_box(image), err_msg=role)
    assert [role_of(lyr) for lyr in layers_with_prefix(viewer, "weight")] == ["weight:1", "weight:4"]
    assert "2 of this core get no learned weight" in w.note.text()
    # probabilities sum to one and the class map is their argmax
    probs = np.stack([np.asarray(level0(find_layer(viewer, f"probability:{c}"))) for c in ("benign", "G3", "G4", "G5")])
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    w1, w4 = (np.asarray(level0(find_layer(viewer, f"weight:{e}"))) for e in "14")
    tissue = ~np.isnan(w1)  # blank (NaN, transparent) on the glass around the core
    assert 0.3 < tissue.mean() < 0.95
    np.testing.assert_array_equal(np.isnan(w4), ~tissue)
    np.testing.assert_allclose((w1 + w4)[tissue], 1.0, atol=1e-5)  # softmax over this core's known experts (eq. 2)
    for e in "14":
        layer = find_layer(viewer, f"weight:{e}")
        assert layer.colorbar.visible and tuple(layer.contrast_limits) == (0.0, 1.0)
    assert "s from click to all layers" in w.status.text() and "on cpu" in w.status.text()
    assert w.seconds is not None and 0 < w.first_seconds <= w.seconds  # the segmentation was on screen first
    # the learned consensus became available in the review widget and shows on request
    assert review.consensus._learned.isEnabled()
    review.consensus._learned.setChecked(True)
    assert find_layer(viewer, "consensus:learned").visible and not find_layer(viewer, "consensus:vote").visible
    # an editable copy of the model-resolution prediction is full size (the training resize of masks)
    review.export._on_make_editable("prediction")
    corrected = find_layer(viewer, "corrected")
    coding = LabelCoding.from_scheme(GLEASON_SCHEME)
    want = coding.to_labels(resize_nearest(w.output.classes[None], shape)[0])
    np.testing.assert_array_equal(np.asarray(corrected.data), want)
    np.testing.assert_allclose(world_box(corrected), world_box(image))

    # full resolution (tiled): the same layers, real full-size arrays, updated in place
    n_layers = len(viewer.layers)
    prediction = find_layer(viewer, "prediction")
    w.mode.setCurrentIndex(1)
    assert w.predict()
    wait_idle(w)
    assert len(viewer.layers) == n_layers and find_layer(viewer, "prediction") is prediction
    assert isinstance(level0(find_layer(viewer, "probability:G3")), np.ndarray)
    for role in OUTPUTS:
        layer = find_layer(viewer, role)
        assert np.shape(level0(layer))[:2] == shape, role
        np.testing.assert_allclose(layer.scale, image.scale)
        np.testing.assert_allclose(layer.translate, image.translate)
    assert "full resolution" in w.status.text()


def test_checkpoint_without_weighting_cnn_predicts_without_weight_layers(predict_viewer, tiny_run, tmp_path,
                                                                          wait_idle, notes):
    payload = load_checkpoint(f"{tiny_run}/best.pt")
    payload["weighting"], payload["weighting_config"] = None, None
    plain = save_checkpoint(tmp_path / "no weighting.pt", payload)
    viewer, w, review = predict_viewer(review=True)
    predict(w, wait_idle, plain)
    assert find_layer(viewer, "prediction") is not None and find_layer(viewer, "probability:G4") is not None
    assert layers_with_prefix(viewer, "weight") == [] and find_layer(viewer, "consensus:learned") is None
    assert "no weighting CNN" in w.note.text()
    assert not review.consensus._learned.isEnabled()
    assert errors_of(notes) == []
