"""The headless prediction job behind the predict widget (no viewer)."""

import numpy as np
import pytest

from napari_gleason._core_data import LabelCoding
from napari_gleason._predict import PredictOptions, predict, prediction_job
from napari_gleason._zoom import ZoomView
from trainer.data.classes import GLEASON_SCHEME
from trainer.inference import load_predictor

CODING = LabelCoding.from_scheme(GLEASON_SCHEME)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return load_predictor(tiny_run, "cpu")


def test_job_loads_predicts_then_computes_the_learned_consensus(tiny_run, rng):
    image = rng.integers(0, 255, (100, 80, 3), dtype=np.uint8)  # not square, not the model size
    experts = {e: CODING.to_labels(rng.integers(0, 4, (100, 80)).astype(np.uint8)) for e in ("1", "2", "4")}
    steps = list(prediction_job(None, tiny_run, "cpu", image, "c", GLEASON_SCHEME, CODING, experts))
    assert [k for k, _ in steps] == ["loaded", "prediction", "learned"]
    out = steps[1][1]
    assert out.classes.shape == (100, 80) and out.classes.dtype == np.uint8
    assert sorted(out.maps) == ["probability:G3", "probability:G4", "probability:G5", "probability:benign",
                                "roughness", "weight:1", "weight:4"]
    assert all(np.shape(m) == (100, 80) for m in out.maps.values())
    assert out.input_size == 64 and out.mode == "paper" and out.device == "cpu"
    learned = steps[2][1]
    assert learned.shape == (100, 80) and set(np.unique(learned)) <= set(CODING.values)


def test_big_cores_get_lazy_maps_but_a_real_class_map(predictor):
    image = np.zeros((2100, 2100, 3), np.uint8)
    out = predict(predictor, image, "big", ["1"], GLEASON_SCHEME)
    level0 = out.maps["probability:G4"][0]
    assert isinstance(level0, ZoomView) and level0.shape == (2100, 2100)
    assert isinstance(out.classes, np.ndarray) and out.classes.shape == (2100, 2100)
    np.testing.assert_allclose(np.asarray(out.maps["weight:1"][-1]), 1.0)  # the only expert takes all weight


def test_full_resolution_is_tiled_and_matches_the_shapes(predictor, rng):
    image = rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)
    out = predict(predictor, image, "c", ["1", "3"], GLEASON_SCHEME, PredictOptions(mode="full", overlap=16))
    assert out.mode == "full" and out.classes.shape == (90, 70)
    np.testing.assert_allclose(out.maps["weight:1"] + out.maps["weight:3"], 1.0, atol=1e-5)  # renormalised
    assert out.maps["roughness"].shape == (90, 70)


def test_experts_the_weighting_cnn_never_saw_get_a_note(predictor):
    out = predict(predictor, np.zeros((64, 64, 3), np.uint8), "c", ["alice", "bob"], GLEASON_SCHEME)
    assert out.weights == {} and not any(k.startswith("weight:") for k in out.maps)
    assert "none of this core's experts (alice, bob)" in out.notes[0]
