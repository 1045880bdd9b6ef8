"""The learned-weight consensus (weighted class vote) and the full-size copy of model-resolution maps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.data.classes import IGNORE_INDEX
from trainer.data.vote import majority_vote
from trainer.prediction.learned import learned_consensus, renormalise
from trainer.resample import resize_nearest

X = IGNORE_INDEX


def test_equal_weights_are_the_majority_vote_including_its_tie_rule(rng):
    labels = {e: rng.integers(0, 4, (12, 10)).astype(np.uint8) for e in "abcd"}
    labels["d"][:3] = X  # expert d left some pixels unlabelled: they do not vote
    weights = {e: np.full((12, 10), 0.25, np.float32) for e in labels}
    expected = majority_vote(np.stack(list(labels.values())), 4, tie="highest")
    np.testing.assert_array_equal(learned_consensus(labels, weights, 4), expected)


def test_weights_decide_by_hand():
    labels = {"1": np.array([[0, 1, 2, X]], np.uint8),
              "2": np.array([[3, 3, 2, X]], np.uint8),
              "3": np.array([[3, 1, X, X]], np.uint8)}
    weights = {"1": np.array([[0.7, 0.3, 0.5, 0.5]]),   # trusted alone at pixel 0: 0.7 > 0.1 + 0.2
               "2": np.array([[0.1, 0.5, 0.2, 0.2]]),   # pixel 1: class 1 has 0.3 + 0.2 = 0.5, class 3 has 0.5 → tie
               "3": np.array([[0.2, 0.2, 0.3, 0.3]])}
    out = learned_consensus(labels, weights, 4)
    np.testing.assert_array_equal(out, [[0, 3, 2, X]])  # tie goes to the higher grade; nobody labelled → ignored


def test_model_resolution_weights_apply_nearest_at_label_pixels_in_bands():
    labels = {"1": np.zeros((8, 8), np.uint8), "2": np.ones((8, 8), np.uint8)}
    w1 = np.array([[0.9, 0.1], [0.1, 0.9]], np.float32)  # 2×2 model map over an 8×8 core
    weights = {"1": w1, "2": 1 - w1}
    out = learned_consensus(labels, weights, 2, band=3)  # bands not aligned with the blocks
    expected = np.kron(np.array([[0, 1], [1, 0]]), np.ones((4, 4))).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_experts_without_weights_are_left_out_and_none_at_all_is_an_error():
    labels = {"1": np.zeros((2, 2), np.uint8), "9": np.ones((2, 2), np.uint8)}
    out = learned_consensus(labels, {"1": np.full((2, 2), 0.1)}, 2)
    np.testing.assert_array_equal(out, 0)
    with pytest.raises(ValueError, match="no expert has both"):
        learned_consensus(labels, {"5": np.ones((2, 2))}, 2)


def test_renormalise_equals_a_softmax_over_the_subset(rng):
    z = rng.normal(size=(3, 4, 5))
    full = np.exp(z) / np.exp(z).sum(0)
    sub = np.exp(z[:2]) / np.exp(z[:2]).sum(0)
    got = renormalise({"a": full[0], "b": full[1], "c": full[2]}, ["a", "b"])
    np.testing.assert_allclose(got["a"], sub[0], rtol=1e-5)
    np.testing.assert_allclose(got["b"], sub[1], rtol=1e-5)


def test_upsample_nearest_is_the_training_resize_of_masks(rng):
    """The full-size copy of a model-resolution map: the mask resize the network was trained with
    (torch's nearest-exact, which the device-side augmentation uses)."""
    src = rng.integers(0, 4, (7, 5)).astype(np.uint8)
    theirs = F.interpolate(torch.from_numpy(src)[None, None], size=(23, 16), mode="nearest-exact")[0, 0].numpy()
    np.testing.assert_array_equal(resize_nearest(src, (23, 16)), theirs)
    assert resize_nearest(np.array([[1, 2]], np.uint8), (2, 4)).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
