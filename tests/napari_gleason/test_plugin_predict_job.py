"""The one prediction pipeline (trainer.prediction) and the job behind the predict widget (no viewer)."""

import numpy as np
import pytest

from napari_gleason._predict import prediction_job
from trainer.data.classes import GLEASON_SCHEME, LabelCoding
from trainer.prediction.predictor import load_predictor
from trainer.prediction import Tiled, WholeCore, predict
from trainer.resample import resize_nearest

CODING = LabelCoding.from_scheme(GLEASON_SCHEME)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return load_predictor(tiny_run, "cpu")


def test_job_loads_predicts_then_computes_the_learned_consensus(tiny_run, rng):
    image = rng.integers(0, 255, (100, 80, 3), dtype=np.uint8)  # not square, not the model size
    experts = {e: CODING.to_labels(rng.integers(0, 4, (100, 80)).astype(np.uint8)) for e in ("1", "2", "4")}
    steps = list(prediction_job(None, tiny_run, "cpu", image, "c", GLEASON_SCHEME, CODING, experts))
    assert [k for k, _ in steps] == ["loaded", "prediction", "prediction", "learned"]
    first, out = steps[1][1], steps[2][1]
    # the segmentation is yielded before the weighting CNN runs: same class map, no weight maps yet
    assert not first.complete and out.complete and not first.weights
    assert sorted(first.maps) == ["probability:G3", "probability:G4", "probability:G5", "probability:benign",
                                  "roughness"]
    np.testing.assert_array_equal(first.classes, out.classes)
    for role in first.maps:
        np.testing.assert_array_equal(first.maps[role], out.maps[role])
    # the paper setting stays at the model's resolution; scale registers it on the 100×80 core
    assert out.classes.shape == (64, 64) and out.classes.dtype == np.uint8 and out.shape == (100, 80)
    assert out.scale == pytest.approx((100 / 64, 80 / 64))
    assert sorted(out.maps) == ["probability:G3", "probability:G4", "probability:G5", "probability:benign",
                                "roughness", "weight:1", "weight:4"]
    assert all(np.shape(m) == (64, 64) for m in out.maps.values())
    assert out.input_size == 64 and out.mode == WholeCore() and out.device == "cpu"
    learned = steps[3][1]
    assert learned.shape == (100, 80) and set(np.unique(learned)) <= set(CODING.values)


def test_a_full_size_class_map_is_the_nearest_model_pixel(predictor, rng):
    """Made only for editing/export: each core pixel takes the model pixel its centre falls in."""
    out = predict(predictor, rng.integers(0, 255, (150, 96, 3), dtype=np.uint8), WholeCore(), core="c")
    full = out.classes_full()
    assert full.shape == (150, 96)
    for y, x in [(0, 0), (149, 95), (75, 40), (31, 77)]:  # by hand: floor((i + 0.5) · 64 / n)
        assert full[y, x] == out.classes[int((y + 0.5) * 64 / 150), int((x + 0.5) * 64 / 96)]
    np.testing.assert_array_equal(resize_nearest(out.classes, (64, 64)), out.classes)


def test_full_resolution_is_tiled_and_matches_the_shapes(predictor, rng):
    image = rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)
    out = predict(predictor, image, Tiled(overlap=16), core="c", experts=["1", "3"], scheme=GLEASON_SCHEME)
    assert out.mode.name == "full" and out.classes.shape == (90, 70) and out.scale == (1.0, 1.0)
    np.testing.assert_allclose(out.maps["weight:1"] + out.maps["weight:3"], 1.0, atol=1e-5)  # renormalised
    assert out.maps["roughness"].shape == (90, 70)


def test_experts_the_weighting_cnn_never_saw_get_a_note(predictor):
    out = predict(predictor, np.zeros((64, 64, 3), np.uint8), core="c", experts=["alice", "bob"])
    assert out.weights == {} and not any(k.startswith("weight:") for k in out.maps)
    assert "none of this core's experts (alice, bob)" in out.notes[0]


def test_predict_is_the_last_stage_and_a_model_without_annotators_has_one(predictor, tiny_run, rng):
    from trainer.prediction import predict_stages

    image = rng.integers(0, 255, (90, 90, 3), dtype=np.uint8)
    stages = list(predict_stages(predictor, image, WholeCore(), core="c", experts=["1", "4"]))
    whole = predict(predictor, image, WholeCore(), core="c", experts=["1", "4"])
    assert [s.complete for s in stages] == [False, True]
    assert sorted(stages[1].weights) == sorted(whole.weights) == ["1", "4"]
    for e in ("1", "4"):
        np.testing.assert_array_equal(stages[1].weights[e], whole.weights[e])
    # no expert of this core known to the weighting CNN: nothing to wait for, one complete output
    alone = list(predict_stages(predictor, image, WholeCore(), core="c", experts=["9"]))
    assert [s.complete for s in alone] == [True] and not alone[0].weights
