"""Each expert's confusion matrix on a core, as the confusion model estimates it, in words and cells.

A checkpoint trained with ``--confusion`` (Zhang, Tanno et al. 2020, beyond the paper) predicts per
pixel, for every training expert, a C×C matrix: row = the true class (as the model sees it),
column = the label the expert writes. :func:`trainer.inference.predict_core` averages them over the
core's tissue, weighted by the predicted class probabilities; :class:`CoreConfusion` holds that
per-core summary with each class's share of the tissue, and the functions below word it for the
review widget (no Qt here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: A true class must cover at least this share of the core's tissue (by predicted probability) before
#: its row goes into an expert's one-line summary: a row estimated from a few pixels is noise.
MIN_SHARE = 0.01
#: Off-diagonal shares below this are not worth a sentence.
MIN_CONFUSION = 0.05


@dataclass(frozen=True)
class CoreConfusion:
    """The confusion model's estimate for one core.

    ``matrices``: expert → float C×C, rows (true class) sum to 1, NaN for a class the model does not
    see on the core; ``share``: float C, each class's share of the tissue (mean predicted
    probability over the tissue mask).
    """

    core: str
    classes: tuple[str, ...]
    matrices: Mapping[str, np.ndarray]
    share: np.ndarray

    @classmethod
    def from_prediction(cls, core: str, classes, matrices: Mapping[str, np.ndarray], probabilities: np.ndarray,
                        tissue: np.ndarray | None = None) -> CoreConfusion:
        """From :class:`trainer.inference.Prediction` fields: its ``confusion`` and ``probabilities`` (C×H×W)."""
        p = np.asarray(probabilities, np.float64)
        if tissue is not None and tissue.any():
            share = p[:, tissue].mean(axis=1)
        else:
            share = p.reshape(p.shape[0], -1).mean(axis=1)
        return cls(core, tuple(classes), {e: np.asarray(m, np.float64) for e, m in matrices.items()}, share)


def expert_label(expert: str) -> str:
    return f"expert {expert}"


def percent_cells(matrix: np.ndarray) -> list[list[str]]:
    """The matrix in whole percent, ``—`` for NaN (a class the model does not see on this core)."""
    return [["—" if not np.isfinite(v) else f"{100 * v:.0f}" for v in row] for row in np.asarray(matrix)]


def main_confusion(matrix: np.ndarray, share: np.ndarray) -> tuple[int, int, float] | None:
    """``(true class, label, share of the true class)`` of the largest off-diagonal entry among classes
    covering at least :data:`MIN_SHARE` of the tissue, or ``None`` when no row qualifies."""
    m = np.asarray(matrix, np.float64)
    best = None
    for i in range(m.shape[0]):
        if not share[i] >= MIN_SHARE or not np.isfinite(m[i]).all():
            continue
        off = m[i].copy()
        off[i] = -1.0
        j = int(np.argmax(off))
        if best is None or off[j] > best[2]:
            best = (i, j, float(off[j]))
    return best


def summary_line(expert: str, matrix: np.ndarray, classes, share: np.ndarray) -> str:
    """One line per expert, e.g. ``expert 3: G3 → G4 on 38 % of G3``."""
    found = main_confusion(matrix, share)
    name = expert_label(expert)
    if found is None:
        return f"{name}: no class covers {100 * MIN_SHARE:.0f} % of this core's tissue"
    i, j, value = found
    if value < MIN_CONFUSION:
        return f"{name}: no confusion above {100 * MIN_CONFUSION:.0f} %"
    return f"{name}: {classes[i]} → {classes[j]} on {100 * value:.0f} % of {classes[i]}"


def summary_lines(confusion: CoreConfusion) -> list[str]:
    return [summary_line(e, m, confusion.classes, confusion.share) for e, m in confusion.matrices.items()]


__all__ = ["CoreConfusion", "MIN_SHARE", "MIN_CONFUSION", "percent_cells", "main_confusion", "summary_line",
           "summary_lines", "expert_label"]
