"""Dice and κ against independent references (hand counts, scikit-learn)."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from trainer.data.classes import IGNORE_INDEX
from trainer.metrics import DiceAccumulator, cohen_kappa, confusion_matrix, dice_per_class


def test_dice_hand_computed():
    ref = np.array([[0, 0, 1, 1], [2, 2, 2, IGNORE_INDEX]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 3]])
    d = dice_per_class(ref, pred, 4)
    # class 0: ref {0,1}, pred {0,6}: I=1 -> 2/(2+2); class 1: ref 2, pred 3, I=2 -> 4/5
    # class 2: ref 3, pred 2, I=2 -> 4/5; class 3 only at an ignored reference pixel -> absent -> NaN
    assert d[0] == pytest.approx(0.5)
    assert d[1] == pytest.approx(0.8)
    assert d[2] == pytest.approx(0.8)
    assert np.isnan(d[3])


def test_dice_matches_sklearn_f1_per_class():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(32, 32))
    pred = np.where(rng.random((32, 32)) < 0.7, ref, rng.integers(0, 4, size=(32, 32)))
    ours = dice_per_class(ref, pred, 4)
    theirs = f1_score(ref.ravel(), pred.ravel(), labels=[0, 1, 2, 3], average=None)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_accumulator_is_set_level_not_mean_of_images():
    # image A: class 1 perfectly found on 1 pixel; image B: class 1 missed on 3 pixels.
    acc = DiceAccumulator(2)
    acc.update(np.array([1, 0, 0, 0]), np.array([1, 0, 0, 0]))
    acc.update(np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0]))
    # pooled: I=1, |P|=1, |G|=4 -> 2/5 (a mean of per-image Dice would give (1+0)/2)
    assert acc.dice()[1] == pytest.approx(0.4)


def test_kappa_matches_sklearn():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=500)
    b = np.where(rng.random(500) < 0.6, a, rng.integers(0, 4, size=500))
    assert cohen_kappa(a, b, 4) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_edge_cases():
    same = np.zeros(10, dtype=int)
    assert cohen_kappa(same, same, 4) == 1.0
    assert np.isnan(cohen_kappa(np.full(3, IGNORE_INDEX), np.zeros(3, dtype=int), 4))


def test_confusion_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 4)
