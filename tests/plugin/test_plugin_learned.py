"""The learned-weight consensus (weighted class vote) and the lazy model-resolution views."""

import numpy as np
import pytest

from napari_gleason._learned import learned_consensus, renormalise
from napari_gleason._zoom import ZoomView, zoom_pyramid, zoom_to
from trainer.data.augment import resize_masks
from trainer.data.classes import IGNORE_INDEX
from trainer.data.vote import majority_vote

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


def test_zoom_view_reads_like_nearest_exact_upsampling(rng):
    src = rng.random((7, 5)).astype(np.float32)
    view = ZoomView(src, (23, 16))
    full = resize_masks((src * 1000).astype(np.uint16).astype(np.uint8)[None], (23, 16))[0]
    np.testing.assert_array_equal((np.asarray(view) * 1000).astype(np.uint16).astype(np.uint8), full)
    np.testing.assert_array_equal(view[3:11, 2:9], np.asarray(view)[3:11, 2:9])
    np.testing.assert_array_equal(view[::4, ::3], np.asarray(view)[::4, ::3])
    assert view[5, 7] == np.asarray(view)[5, 7]
    np.testing.assert_array_equal(view[4], np.asarray(view)[4])
    assert view.shape == (23, 16) and view.dtype == np.float32 and view.ndim == 2


def test_zoom_pyramid_is_lazy_for_big_cores_and_plain_for_small_ones():
    small = zoom_pyramid(np.zeros((64, 64), np.float32), (96, 96))
    assert isinstance(small, np.ndarray) and small.shape == (96, 96)
    levels = zoom_pyramid(np.zeros((1024, 1024), np.float32), (5120, 5100))
    assert [lvl.shape for lvl in levels] == [(5120, 5100), (2560, 2550), (1280, 1275), (640, 638)]
    assert all(isinstance(lvl, ZoomView) for lvl in levels)
    assert zoom_to(np.array([[1, 2]], np.uint8), (2, 4)).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
