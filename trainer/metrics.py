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
