"""Dice (Table 2's metric) and Cohen's κ, from confusion matrices.

Dice is accumulated over a whole set the way mmsegmentation does: intersections and areas are
summed over all images first, then ``2·ΣI / (ΣP + ΣG)`` per class. A class absent from both
prediction and reference over the whole set has no Dice (NaN) and is left out of the mean.
"""

from __future__ import annotations

import numpy as np

from .data.classes import IGNORE_INDEX


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """C×C counts, rows = reference class, columns = predicted class; ignored pixels skipped."""
    ref = np.asarray(reference).ravel().astype(np.int64)
    pred = np.asarray(prediction).ravel().astype(np.int64)
    if ref.shape != pred.shape:
        raise ValueError(f"shape mismatch: reference {np.shape(reference)} vs prediction {np.shape(prediction)}")
    keep = (ref != ignore_index) & (pred != ignore_index) & (ref < num_classes) & (pred < num_classes)
    idx = ref[keep] * num_classes + pred[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def dice_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class Dice from a confusion matrix; NaN for a class in neither reference nor prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    inter = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * inter / denom, np.nan)


def dice_per_class(reference, prediction, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    return dice_from_confusion(confusion_matrix(reference, prediction, num_classes, ignore_index))


def cohen_kappa_from_confusion(cm: np.ndarray) -> float:
    """κ = (p_o − p_e) / (1 − p_e); 1.0 when both raters agree perfectly on a single class."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum()
    if n == 0:
        return float("nan")
    po = np.trace(cm) / n
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else float("nan")
    return float((po - pe) / (1 - pe))


def kappa_per_class(cm: np.ndarray) -> np.ndarray:
    """Cohen's κ of "class c" vs. "not class c" for each class, from a C×C confusion matrix (rows:
    one rater, columns: the other). NaN for a class neither rater used — as Dice is: two raters who
    both leave a class out do not *agree on* it (κ's 2×2 table would be all "not c", p_o = p_e = 1)."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum()
    out = np.full(cm.shape[0], np.nan)
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        fn = cm[c].sum() - tp
        fp = cm[:, c].sum() - tp
        if tp + fn + fp == 0:
            continue
        out[c] = cohen_kappa_from_confusion(np.array([[tp, fn], [fp, n - tp - fn - fp]]))
    return out


def cohen_kappa(a, b, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    return cohen_kappa_from_confusion(confusion_matrix(a, b, num_classes, ignore_index))


def mean_ignoring_nan(values) -> float:
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


class DiceAccumulator:
    """Sums a confusion matrix over many images; ``dice()`` gives the set-level per-class Dice."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, reference, prediction) -> None:
        self.cm += confusion_matrix(reference, prediction, self.num_classes, self.ignore_index)

    def dice(self) -> np.ndarray:
        return dice_from_confusion(self.cm)

    def mean_dice(self) -> float:
        return mean_ignoring_nan(self.dice())

    def kappa(self) -> float:
        return cohen_kappa_from_confusion(self.cm)


# --- agreement over cores: one rating per core and rater (e.g. ISUP grade groups, trainer.grading) ----

def rating_confusion(a, b, categories) -> np.ndarray:
    """K×K counts of paired ratings (rows ``a``, columns ``b``) over ``categories`` (ordered); a pair
    where either rating is ``None`` or not a category is skipped (a core one rater left unlabelled)."""
    index = {c: i for i, c in enumerate(categories)}
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} ratings against {len(b)}")
    cm = np.zeros((len(index), len(index)), np.int64)
    for x, y in zip(a, b):
        if x in index and y in index:
            cm[index[x], index[y]] += 1
    return cm


def weighted_kappa_from_confusion(cm: np.ndarray, weights: str | None = "quadratic") -> float:
    """Cohen's weighted κ = 1 − Σ w·O / Σ w·E over a K×K confusion matrix of ordered categories,
    with disagreement weights w_ij = |i − j| (``"linear"``), (i − j)² (``"quadratic"``, as the PANDA
    challenge and grade-group studies report) or 1 − δ_ij (``None``: Cohen's κ); E is the product of
    the marginals. NaN with no pairs; 1.0 when both raters used one and the same category throughout."""
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.sum()
    if n == 0:
        return float("nan")
    k = cm.shape[0]
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights is None:
        w = (i != j).astype(np.float64)
    elif weights == "linear":
        w = np.abs(i - j).astype(np.float64)
    elif weights == "quadratic":
        w = ((i - j) ** 2).astype(np.float64)
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    denom = float((w * expected).sum())
    if denom == 0:  # every pair in one category: chance agreement is total
        return 1.0 if float((w * cm).sum()) == 0 else float("nan")
    return float(1.0 - (w * cm).sum() / denom)


def cohen_kappa_ratings(a, b, categories, weights: str | None = "quadratic") -> float:
    """Weighted Cohen's κ between two raters' ratings of the same subjects (pairs with a ``None``
    skipped); ``categories`` in their order (grade groups: 0 benign, 1-5)."""
    return weighted_kappa_from_confusion(rating_confusion(a, b, categories), weights)


def fleiss_kappa_from_table(table: np.ndarray) -> float:
    """Fleiss' κ (Fleiss 1971) from an N×K table: ``table[i, j]`` raters who put subject i in category j.

    P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1)), P̄ = mean P_i, p_j = Σ_i n_ij / Σ_i n_i, P̄_e = Σ_j p_j²,
    κ = (P̄ − P̄_e) / (1 − P̄_e). Fleiss defined it for the same n raters on every subject; where the
    number differs (not every expert graded every core) each subject's P_i uses its own n_i, and
    subjects with fewer than two ratings are left out. NaN without such subjects."""
    t = np.asarray(table, dtype=np.float64)
    n_i = t.sum(axis=1)
    t, n_i = t[n_i >= 2], n_i[n_i >= 2]
    if t.shape[0] == 0:
        return float("nan")
    p_i = ((t * t).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_bar = float(p_i.mean())
    p_j = t.sum(axis=0) / n_i.sum()
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0:
        return 1.0 if p_bar >= 1.0 else float("nan")
    return (p_bar - p_e) / (1.0 - p_e)


def fleiss_kappa_ratings(ratings, categories) -> float:
    """Fleiss' κ from ratings per subject: ``ratings[i]`` the ratings of subject i by whoever rated it
    (``None`` for a rater who did not); see :func:`fleiss_kappa_from_table`."""
    index = {c: j for j, c in enumerate(categories)}
    table = np.zeros((len(ratings), len(index)), np.int64)
    for i, row in enumerate(ratings):
        for r in row:
            if r in index:
                table[i, index[r]] += 1
    return fleiss_kappa_from_table(table)
