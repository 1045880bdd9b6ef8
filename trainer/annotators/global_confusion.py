"""The image-independent baseline: one confusion matrix per expert (Zhang et al.'s ``UNet_GlobalCMs``).

The pixel-wise model (:mod:`.confusion`) lets each expert's matrix ``A_n(x)`` depend on the image
around x. Its point is only proven against the same model with that dependence taken away: one
matrix ``M_n`` per expert for every pixel of every image. Here ``M_n`` is fitted to the same data
by one soft-count pass (the M-step of EM with the trained segmentation network's probabilities as
the posterior over the truth):

    M[i, j] = Σ_x p_j(x)·[label(x) = i] / Σ_x p_j(x),

with the index order of the pixel-wise ``A[i, j]``: i the label written, j the true class, each
column a distribution over i. Its error maps are the pixel-wise ones with ``A(x) = M`` everywhere:
given the label l, ``1 − M[l, l]·p_l / Σ_j M[l, j]·p_j`` (Bayes); before seeing it,
``1 − Σ_j M[j, j]·p_j``.

Plain NumPy: the benchmark and evaluation fit it from arrays they already hold.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def fit_global_confusion(probs: Iterable[np.ndarray], labels: Iterable[np.ndarray], num_classes: int,
                         ignore_index: int = 255, masks: Iterable[np.ndarray] | None = None) -> np.ndarray:
    """One expert's global confusion matrix from soft counts over a set of images.

    Args:
        probs: per image a float ``C×H×W`` array of class probabilities (the estimated truth).
        labels: per image (same order) an int ``H×W`` class map of ONE expert; ``ignore_index``
            (or any value outside ``0..C-1``) where it has no label.
        num_classes: C.
        masks: optional per image a bool ``H×W`` restricting the pixels counted (e.g. tissue).

    Returns:
        float64 ``C×C`` ``M[i, j] = p(expert writes i | true class j)``; every column sums to 1;
        a true class with no probability mass on a labelled pixel gets the identity column.
    """
    c = int(num_classes)
    num = np.zeros((c, c), dtype=np.float64)  # [i label, j truth]
    probs = list(probs)
    labels = list(labels)
    masks = [None] * len(probs) if masks is None else list(masks)
    if not len(probs) == len(labels) == len(masks):
        raise ValueError(f"probs, labels and masks differ in length: {len(probs)}, {len(labels)}, {len(masks)}")
    for p, lab, m in zip(probs, labels, masks):
        p = np.asarray(p, dtype=np.float64)
        lab = np.asarray(lab)
        if p.ndim != 3 or p.shape[0] != c or p.shape[1:] != lab.shape:
            raise ValueError(f"probs {p.shape} and labels {lab.shape} do not match C={c}")
        use = (lab >= 0) & (lab < c) & (lab != ignore_index)
        if m is not None:
            m = np.asarray(m, dtype=bool)
            if m.shape != lab.shape:
                raise ValueError(f"mask {m.shape} does not match labels {lab.shape}")
            use &= m
        pl = p[:, use]  # C(j)×K
        li = lab[use].astype(np.int64)  # K
        for i in range(c):
            num[i] += pl[:, li == i].sum(axis=1)
    den = num.sum(axis=0)  # Σ_x p_j over counted pixels
    out = np.eye(c, dtype=np.float64)
    has = den > 0
    out[:, has] = num[:, has] / den[has]
    return out


def global_error_map(probs: np.ndarray, matrix: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
    """The error map of a global matrix model on one image.

    Args:
        probs: float ``C×H×W`` class probabilities.
        matrix: ``C×C`` ``M[i, j]`` from :func:`fit_global_confusion`.
        label: optional int ``H×W``, the expert's label. Given it, the map is the posterior
            ``1 − M[l, l]·p_l / Σ_j M[l, j]·p_j``; pixels whose label is outside ``0..C-1`` (and
            ``label=None`` everywhere) get the image-only ``1 − Σ_j M[j, j]·p_j``.

    Returns:
        float32 ``H×W`` in [0, 1].
    """
    p = np.asarray(probs, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    c = p.shape[0]
    if m.shape != (c, c):
        raise ValueError(f"matrix {m.shape} does not match {c} classes")
    prior = 1.0 - np.einsum("j,jhw->hw", np.diagonal(m), p)
    if label is None:
        return np.clip(prior, 0, 1).astype(np.float32)
    lab = np.asarray(label)
    if lab.shape != p.shape[1:]:
        raise ValueError(f"label {lab.shape} does not match probs {p.shape}")
    valid = (lab >= 0) & (lab < c)
    li = np.where(valid, lab, 0).astype(np.int64)
    noisy = np.einsum("ij,jhw->ihw", m, p)  # p̃(i) = Σ_j M[i, j] p_j
    right = np.diagonal(m)[li] * np.take_along_axis(p, li[None], 0)[0]  # M[l, l] p_l
    given = 1.0 - right / np.maximum(np.take_along_axis(noisy, li[None], 0)[0], 1e-12)
    return np.clip(np.where(valid, given, prior), 0, 1).astype(np.float32)
