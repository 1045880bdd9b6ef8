"""What the plugin says is so: an annotator model that never trained says so, κ per class of a class
nobody used is NaN (as Dice), one natural expert order from the loaders to the scores."""

import dataclasses
import math

import numpy as np

from napari_gleason._core_sources import FolderSource
from napari_gleason._scores import CoreScore, score_masks
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import LossConfig
from trainer.data.generic import open_generic
from trainer.data.core import natural_key, natural_sorted
from trainer.prediction.predictor import load_predictor
from trainer.metrics import confusion_matrix, kappa_per_class
from trainer.prediction import predict
from trainer.prediction.confusion import annotator_untrained, summary_lines

CORE = "slide001_core004"  # experts 1, 2, 4; the tiny runs know 1, 3, 4


# --- an annotator model that never trained ------------------------------------------------------
def test_untrained_follows_the_runs_lambda_schedule():
    loss = LossConfig()  # λ step: 10 % of the run
    # iterations 0..5 ran; λ2 = 0 while index < 6: the weighting CNN never had a gradient
    assert "weighting CNN never trained" in annotator_untrained("weight", loss, 6, 60)
    assert "first 6 of 60" in annotator_untrained("weight", loss, 6, 60)
    assert annotator_untrained("weight", loss, 7, 60) is None  # index 6 had λ2 = tanh 1 / (1 + tanh 1)
    assert annotator_untrained("weight", dataclasses.replace(loss, lambda_step=100), 7, 60) is not None
    assert annotator_untrained("weight", loss, 6, 60, init="base.pt") is None  # its start weights may have trained it
    assert annotator_untrained("weight", loss, None, 60) is None  # not recorded: not judged
    assert annotator_untrained(None, loss, 0, 60) is None
    vote = dataclasses.replace(loss, confusion=True, confusion_objective="vote")
    assert "confusion model never trained" in annotator_untrained("error", vote, 3, 60)
    assert "90 % on every diagonal" in annotator_untrained("error", vote, 3, 60)
    zhang = dataclasses.replace(loss, confusion=True, confusion_objective="zhang")  # its noisy term from the start
    assert annotator_untrained("error", zhang, 1, 60) is None
    assert annotator_untrained("error", zhang, 0, 60) is not None


def _rewritten(run: str, tmp_path, name: str, iteration: int, iters: int, **loss) -> str:
    payload = load_checkpoint(f"{run}/last.pt")
    payload["iteration"] = iteration
    payload["config"]["train"]["iters"] = iters
    payload["config"]["train"]["init"] = None
    payload["config"]["loss"].update(loss)
    return str(save_checkpoint(tmp_path / name, payload))


def test_a_confusion_model_that_never_trained_says_so_not_no_confusion(tiny_confusion_run, synthetic_data, tmp_path):
    core = FolderSource.open(synthetic_data).load(CORE)
    early = _rewritten(tiny_confusion_run, tmp_path, "early.pt", 2, 100, confusion_objective="vote",
                       lambda_step=None)
    out = predict(load_predictor(early, "cpu"), core.image, core=CORE, experts=list(core.masks), labels=core.masks)
    assert out.confusion is not None and "never trained" in out.confusion.untrained
    lines = summary_lines(out.confusion)
    assert lines == ["expert 1: not learned — the confusion model never trained",
                     "expert 4: not learned — the confusion model never trained"]
    assert not any("no confusion" in line for line in lines)
    assert any("confusion model never trained" in n for n in out.notes)  # the predict widget's notes
    trained = predict(load_predictor(tiny_confusion_run, "cpu"), core.image, core=CORE, experts=list(core.masks),
                      labels=core.masks)
    assert trained.confusion.untrained is None and not any("never trained" in n for n in trained.notes)


def test_weight_maps_of_a_weighting_cnn_that_never_trained_are_noted(tiny_run, synthetic_data, tmp_path):
    core = FolderSource.open(synthetic_data).load(CORE)
    early = _rewritten(tiny_run, tmp_path, "early.pt", 1, 20)  # λ step 2: λ2 = 0 at index 0
    out = predict(load_predictor(early, "cpu"), core.image, core=CORE, experts=list(core.masks))
    assert out.weights  # the maps are made, and the note says what they are
    assert any("weighting CNN never trained" in n and "uniform" in n for n in out.notes)


# --- κ per class ---------------------------------------------------------------------------------
def test_kappa_per_class_is_nan_for_a_class_neither_rater_used_and_hand_computed_otherwise():
    a = np.array([[0, 0, 1, 1, 1, 0]], np.uint8)
    b = np.array([[0, 1, 1, 1, 0, 0]], np.uint8)
    k = kappa_per_class(confusion_matrix(a, b, 3))
    # class 0 vs rest: tp 2, fn 1, fp 1, tn 2 of 6 -> p_o = 4/6, p_e = (3/6)² + (3/6)² = 1/2, κ = 1/3
    # class 1 alike (tp 2, fn 1, fp 1, tn 2); class 2: used by neither -> NaN, not 1.0
    np.testing.assert_allclose(k[:2], [1 / 3, 1 / 3])
    assert math.isnan(k[2])
    only = kappa_per_class(np.array([[5, 0], [0, 0]]))
    assert only[0] == 1.0 and math.isnan(only[1])


# --- one expert order ----------------------------------------------------------------------------
NAMES = ["NP3", "expert", "NP1", "NP10", "NP2"]
NATURAL = ["expert", "NP1", "NP2", "NP3", "NP10"]


def test_natural_key_orders_numbers_as_numbers_case_insensitively():
    assert natural_sorted(NAMES) == NATURAL
    assert natural_sorted(["3", "1", "4", "2", "5", "6", "10"]) == ["1", "2", "3", "4", "5", "6", "10"]
    assert natural_sorted(["b2", "B1", "a10", "A9"]) == ["A9", "a10", "B1", "b2"]
    assert natural_key("NP01") != natural_key("NP1")  # a tie on numbers keeps a fixed order


def test_generic_loader_and_scores_list_experts_in_natural_order(tmp_path):
    from PIL import Image

    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "c1.png")
    for name in NAMES:
        (root / "masks" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / name / "c1.png")
    ds = open_generic(root)
    assert list(ds.experts) == NATURAL and list(ds.cores[0].experts) == NATURAL
    masks = {n: np.full((4, 4), k % 2, np.uint8) for k, n in enumerate(NAMES)}
    _, _, pairs = score_masks(masks, 4)
    assert list(pairs)[:4] == ["expert|NP1", "expert|NP2", "expert|NP3", "expert|NP10"]
    cached = CoreScore("c1", tuple(NAMES), pairs={"NP3|NP1": 0.5, "NP10|expert": 0.2}, grades={"NP3": 1, "NP1": 2})
    assert list(cached.experts) == NATURAL
    assert list(cached.pairs) == ["expert|NP10", "NP1|NP3"] and list(cached.grades) == ["NP1", "NP3"]
