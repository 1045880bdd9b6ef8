"""What each rater grades the core on screen (headless, no Qt): the review widget's grade table.

Every labels layer that is a reading of the whole core — each expert, the vote, STAPLE, the
model's prediction — is graded by :func:`trainer.grading.grade_core` with the command line's
defaults (``python -m trainer summarize``: the ISUP rule, patterns from
:data:`~trainer.grading.MIN_PATTERN_SHARE` of the core), against the same tissue mask
(:func:`trainer.prediction.tissue.tissue_mask` of the image), so the widget and the CLI give one core the same
grade. On a 5120² core this takes about 0.3 s for the tissue mask and 0.3 s per rater, so it runs in
a worker (:func:`grade_steps`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trainer.data.classes import LabelCoding
from trainer.grading import MIN_PATTERN_SHARE, CoreGrade, grade_core, pattern_of_class
from trainer.prediction.tissue import tissue_mask

#: The command line's defaults (``python -m trainer summarize --rule/--min-share``).
RULE = "isup"
MIN_SHARE = MIN_PATTERN_SHARE

#: Roles graded, in the table's order after the experts, with their row names.
GRADED = {"consensus:vote": "vote", "consensus:staple": "STAPLE", "prediction": "prediction"}


def rater_name(role: str) -> str | None:
    """The grade table's row name of a layer role (``expert:3`` -> ``expert 3``), ``None`` if not graded."""
    if role.startswith("expert:"):
        return f"expert {role.split(':', 1)[1]}"
    return GRADED.get(role)


def gradable(names) -> bool:
    """Whether a scheme's classes include Gleason patterns (G3, G4, G5) to grade by."""
    return bool(pattern_of_class(tuple(names)))


def grade_steps(image: Any, labels: Mapping[str, Any], coding: LabelCoding, tissue: np.ndarray | None = None):
    """Yield ``("tissue", mask)`` (unless ``tissue`` is given), then ``(role, CoreGrade)`` per entry of
    ``labels`` (role -> label-value data at full resolution, arrays or lazy)."""
    if tissue is None:
        tissue = tissue_mask(image)
        yield "tissue", tissue
    for role, data in labels.items():
        classes = coding.to_classes(np.asarray(data))
        yield role, grade_core(classes, coding.names, fit_mask(tissue, classes.shape), rule=RULE, min_share=MIN_SHARE)


def fit_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` sampled (nearest, at pixel centres) at ``shape``: a prediction may be a coarser map of the
    whole core (the model's input size, shown with a larger scale) than the image the tissue mask is of."""
    if mask.shape == tuple(shape[:2]):
        return mask
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(np.intp)
    cols = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(np.intp)
    return mask[np.ix_(rows, cols)]


def grade_cells(grade: CoreGrade | None, names) -> list[str]:
    """The grade table's cells after the rater: each class's % of the tissue, primary, secondary,
    Gleason score, ISUP grade group ("…" everywhere while not graded yet)."""
    if grade is None:
        return ["…"] * (len(names) + 4)
    shares = [f"{100 * grade.tissue_share.get(n, 0.0):.1f}" for n in names]
    empty = lambda v: "—" if v is None else str(v)  # noqa: E731
    return [*shares, empty(grade.primary), empty(grade.secondary), grade.label, empty(grade.grade_group)]


def grade_headers(names) -> list[str]:
    """Short column names (the review dock is narrow); the table's header tooltips say them in full."""
    return ["Rater", *names, "Prim.", "Sec.", "Score", "GG"]


def grade_group_spread(groups) -> float:
    """Highest minus lowest grade group among the graded (NaN with fewer than two)."""
    found = [g for g in groups if g is not None]
    return float(max(found) - min(found)) if len(found) >= 2 else float("nan")
