"""The global (image-independent) confusion baseline against a hand computation, and against the
pixel-wise error maps of trainer/annotators/confusion.py when every pixel's matrix is the same."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from trainer.annotators.confusion import error_map_prior, wrong_if_labelled
from trainer.annotators.global_confusion import fit_global_confusion, global_error_map

C = 3


def _probs(rng, h, w):
    p = rng.random((C, h, w)) + 0.05
    return p / p.sum(0, keepdims=True)


def test_fit_by_hand_with_ignore_and_mask():
    rng = np.random.default_rng(0)
    probs = [_probs(rng, 2, 3), _probs(rng, 3, 2)]
    labels = [np.array([[0, 1, 255], [2, 2, 0]]), np.array([[1, 1], [0, 7], [2, 0]])]
    masks = [np.array([[True, True, True], [True, False, True]]), np.ones((3, 2), bool)]
    m = fit_global_confusion(probs, labels, C, ignore_index=255, masks=masks)
    # brute force: a plain loop over pixels, counting only labelled (0..C-1), masked-in pixels
    num = np.zeros((C, C))
    den = np.zeros(C)
    for p, lab, msk in zip(probs, labels, masks):
        for y, x in itertools.product(range(lab.shape[0]), range(lab.shape[1])):
            if not msk[y, x] or not 0 <= lab[y, x] < C:
                continue
            for j in range(C):
                num[lab[y, x], j] += p[j, y, x]
                den[j] += p[j, y, x]
    assert m.dtype == np.float64 and m.shape == (C, C)
    np.testing.assert_allclose(m, num / den[None], rtol=1e-12)
    np.testing.assert_allclose(m.sum(0), 1.0)


def test_fit_recovers_a_known_matrix_from_one_hot_truth():
    # with one-hot probabilities the soft counts are plain counts: column j = the label histogram on truth j
    truth = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2]])
    label = np.array([[0, 0, 0, 1], [1, 1, 2, 2], [2, 2, 2, 2]])
    probs = np.eye(C)[truth].transpose(2, 0, 1)
    m = fit_global_confusion([probs], [label], C)
    want = np.array([[0.75, 0.0, 0.0], [0.25, 0.5, 0.0], [0.0, 0.5, 1.0]])
    np.testing.assert_allclose(m, want)


def test_a_class_without_mass_gets_the_identity_column():
    probs = np.zeros((C, 2, 2))
    probs[0] = 1.0  # every pixel certainly class 0: classes 1 and 2 carry no mass
    label = np.array([[0, 1], [0, 2]])
    m = fit_global_confusion([probs], [label], C)
    np.testing.assert_allclose(m[:, 0], [0.5, 0.25, 0.25])
    np.testing.assert_array_equal(m[:, 1], [0, 1, 0])
    np.testing.assert_array_equal(m[:, 2], [0, 0, 1])


def test_maps_by_hand():
    rng = np.random.default_rng(1)
    p = _probs(rng, 3, 4)
    m = rng.random((C, C)) + 2 * np.eye(C)
    m /= m.sum(0, keepdims=True)
    label = rng.integers(0, C, (3, 4))
    label[0, 0], label[2, 3] = 255, -1
    prior = global_error_map(p, m)
    given = global_error_map(p, m, label)
    assert prior.dtype == np.float32 and given.dtype == np.float32
    for y, x in itertools.product(range(3), range(4)):
        pr = 1 - sum(m[j, j] * p[j, y, x] for j in range(C))
        assert prior[y, x] == pytest.approx(pr, rel=1e-5)
        lab = label[y, x]
        if not 0 <= lab < C:
            assert given[y, x] == pytest.approx(pr, rel=1e-5)
            continue
        post = 1 - m[lab, lab] * p[lab, y, x] / sum(m[lab, j] * p[j, y, x] for j in range(C))
        assert given[y, x] == pytest.approx(post, rel=1e-5)


def test_maps_equal_the_pixelwise_model_with_a_constant_matrix():
    rng = np.random.default_rng(2)
    h, w = 5, 6
    probs = [_probs(rng, h, w) for _ in range(3)]
    labels = [rng.integers(0, C, (h, w)) for _ in range(3)]
    m = fit_global_confusion(probs, labels, C)
    a = torch.tensor(np.broadcast_to(m[:, :, None, None], (C, C, h, w)).copy())  # A(x) = M everywhere
    p, lab = probs[0], labels[0]
    pt = torch.tensor(p)
    prior_pix = error_map_prior(pt, a[None])[0].numpy()
    np.testing.assert_allclose(global_error_map(p, m), prior_pix, atol=1e-6)
    post_pix = wrong_if_labelled(pt, a).numpy()  # C×H×W: map l = p(wrong | wrote l)
    given_pix = np.take_along_axis(post_pix, lab[None], 0)[0]
    np.testing.assert_allclose(global_error_map(p, m, lab), given_pix, atol=1e-6)


def test_shape_errors():
    with pytest.raises(ValueError):
        fit_global_confusion([np.ones((C, 2, 2))], [np.zeros((2, 3), int)], C)
    with pytest.raises(ValueError):
        global_error_map(np.ones((C, 2, 2)), np.eye(C + 1))
