"""Each expert's confusion matrix on a core, as the confusion model estimates it, in words and cells.

A checkpoint trained with ``--confusion`` (Zhang, Tanno et al. 2020, beyond the paper) predicts per
pixel, for every training expert, a C×C matrix: row = the true class (as the model sees it),
column = the label the expert writes. :func:`trainer.prediction.predictor.predict_core` averages them over the
core's tissue, weighted by the predicted class probabilities; :class:`CoreConfusion` holds that
per-core summary with each class's share of the tissue, and the functions below word it for the
review widget (no Qt here).

An annotator model that never trained must not be read: its matrices are still their starting
point (``loss.confusion_diag_init`` on every diagonal), which words as "no confusion above 5 %" —
"the experts agree" to a reader — and a weighting CNN's weights are still ≈ 1/N. The criterion
(:func:`annotator_untrained`) is the run's own schedule, read from the checkpoint: the objective
gives the annotator term a weight of 0 until then (λ2 of eq. 7-8 is 0 for the first
``lambda_step`` iterations; Zhang et al.'s objective trains it from the first iteration), so a
checkpoint saved before it did not train that model, whatever its numbers are. (The matrices' own
values cannot say it: the heads start 1e-3 away from their initialisation, and a trained model may
legitimately stay near it.) A run started from another checkpoint's weights (``train.init``) is not
judged: its annotator model may have trained there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from trainer.config import LossConfig, lambda_step_of
from trainer.data.core import natural_sorted

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
    #: why the confusion model never trained (:func:`annotator_untrained`), or ``None``
    untrained: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrices", {e: self.matrices[e] for e in natural_sorted(self.matrices)})

    @classmethod
    def from_prediction(cls, core: str, classes, matrices: Mapping[str, np.ndarray], probabilities: np.ndarray,
                        tissue: np.ndarray | None = None, untrained: str | None = None) -> CoreConfusion:
        """From :class:`trainer.prediction.predictor.Prediction` fields: its ``confusion`` and ``probabilities`` (C×H×W)."""
        p = np.asarray(probabilities, np.float64)
        if tissue is not None and tissue.any():
            share = p[:, tissue].mean(axis=1)
        else:
            share = p.reshape(p.shape[0], -1).mean(axis=1)
        return cls(core, tuple(classes), {e: np.asarray(m, np.float64) for e, m in matrices.items()}, share,
                   untrained)


def annotator_untrained(kind: str | None, loss: LossConfig, iteration: int | None, iters: int | None,
                        init: str | None = None) -> str | None:
    """Why a checkpoint's annotator model (``kind``: ``"weight"`` or ``"error"``, see
    :func:`trainer.prediction.pipeline.annotator_kind`) never trained, or ``None`` when it did or
    cannot be told (no iteration or run length recorded, or the run started from ``init`` weights).

    ``iteration`` iterations ran (indices ``0 … iteration − 1``); the annotator term's weight is
    λ2 = 0 while ``index < lambda_step`` (weighting CNN, and the confusion model's "vote"
    objective), or 1 from the start (the confusion model's "zhang" objective).
    """
    if kind is None or iteration is None or not iters or init:
        return None
    iteration, iters = int(iteration), int(iters)
    model = "weighting CNN" if kind == "weight" else "confusion model"
    what = ("its weights are still ≈ uniform (1/N per expert), not learned trust" if kind == "weight" else
            f"its matrices are still their starting point ({100 * float(loss.confusion_diag_init):.0f} % on every "
            "diagonal), not a finding about the experts")
    if kind == "error" and loss.confusion_objective == "zhang":
        if iteration > 0:
            return None
        return f"the {model} never trained (this checkpoint is from iteration 0): {what}"
    step = lambda_step_of(loss, iters)
    if iteration > step:
        return None
    return (f"the {model} never trained: the run gives its term no weight (λ2 = 0) for its first {step} of "
            f"{iters} iterations and this checkpoint is from iteration {iteration}; {what}")


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


def summary_line(expert: str, matrix: np.ndarray, classes, share: np.ndarray, untrained: str | None = None) -> str:
    """One line per expert, e.g. ``expert 3: G3 → G4 on 38 % of G3``; ``expert 3: not learned …``
    when the confusion model never trained (``untrained``: why)."""
    name = expert_label(expert)
    if untrained:
        return f"{name}: not learned — the confusion model never trained"
    found = main_confusion(matrix, share)
    if found is None:
        return f"{name}: no class covers {100 * MIN_SHARE:.0f} % of this core's tissue"
    i, j, value = found
    if value < MIN_CONFUSION:
        return f"{name}: no confusion above {100 * MIN_CONFUSION:.0f} %"
    return f"{name}: {classes[i]} → {classes[j]} on {100 * value:.0f} % of {classes[i]}"


def summary_lines(confusion: CoreConfusion) -> list[str]:
    return [summary_line(e, m, confusion.classes, confusion.share, confusion.untrained)
            for e, m in confusion.matrices.items()]


__all__ = ["CoreConfusion", "annotator_untrained", "MIN_SHARE", "MIN_CONFUSION", "percent_cells", "main_confusion",
           "summary_line", "summary_lines", "expert_label"]
