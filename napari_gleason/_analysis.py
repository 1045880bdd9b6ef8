"""Consensus, disagreement and agreement between the experts of one core (headless, no Qt).

The review widget runs these in a worker; tests call them directly.

- **Vote**: the trainer's majority vote, eq. (1) (:func:`trainer.data.vote.majority_vote`, tie
  rule "highest": the higher grade wins a tie).
- **STAPLE**: the trainer's one STAPLE (:func:`trainer.data.staple.staple`, SimpleITK's
  multi-label STAPLE): estimated on a grid of at most a million pixels, applied at full resolution
  through the table of label combinations (it has no spatial term); undecided pixels take the vote.
- **Disagreement map**: per pixel, the *share of the experts present that differ from the
  vote*, ``#{e : P_e ≠ P_vote} / #{e present}``. We show this rather than the label entropy
  because it reads directly ("2 of 6 experts disagree" = 0.33), is 0 exactly where everyone
  agrees, and uses the same vote the trainer learns from.
- **Agreement table**: for each pair of experts (and each expert against the vote), Dice per
  class and its mean, Cohen's κ per class (class vs. rest) and overall, from one confusion
  matrix per pair (:mod:`trainer.metrics`). Very large cores are sampled on a regular grid
  (:func:`sample_step`) so a 5120² core with six experts takes well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from trainer.data.classes import IGNORE_INDEX
from trainer.data.core import natural_sorted
from trainer.data.staple import STAPLE_MAX_PIXELS, staple  # noqa: F401  (the one STAPLE, also used here)
from trainer.data.vote import majority_vote
from trainer.metrics import (  # noqa: F401  (kappa_per_class: also imported from here)
    cohen_kappa_from_confusion,
    confusion_matrix,
    dice_from_confusion,
    kappa_per_class,
)

#: Pixels per pair above which the agreement table samples the core on a regular grid.
MAX_TABLE_PIXELS = 4_000_000


#: Rows per band of the vote: a pixel's vote needs only that pixel, so a 5120² core is voted on in
#: bands, and the vote's temporaries (a stack of the masks, per-class counts) stay ~40 MB, not ~500 MB.
VOTE_BAND = 512


def vote(masks: Mapping[str, np.ndarray], num_classes: int) -> np.ndarray:
    """Majority vote of the experts present, eq. (1); ``IGNORE_INDEX`` where nobody voted."""
    arrays = [np.asarray(m) for m in masks.values()]
    if not arrays or arrays[0].shape[0] <= VOTE_BAND:
        return majority_vote(masks, num_classes, tie="highest")
    out = np.empty(arrays[0].shape, np.uint8)
    for y in range(0, out.shape[0], VOTE_BAND):
        out[y:y + VOTE_BAND] = majority_vote([a[y:y + VOTE_BAND] for a in arrays], num_classes, tie="highest")
    return out


def disagreement_map(masks: Mapping[str, np.ndarray], vote_map: np.ndarray) -> np.ndarray:
    """Share of the experts present at each pixel whose label differs from the vote (float32 0..1)."""
    differ = np.zeros(vote_map.shape, np.uint8)
    present = np.zeros(vote_map.shape, np.uint8)
    for m in masks.values():
        here = m != IGNORE_INDEX
        present += here
        differ += here & (m != vote_map)
    out = np.zeros(vote_map.shape, np.float32)
    np.divide(differ, present, out=out, where=present > 0)
    return out


def sample_step(shape: tuple[int, ...], max_pixels: int = MAX_TABLE_PIXELS) -> int:
    """Grid step so that a ``shape`` core sampled every ``step`` pixels has ≤ ``max_pixels``."""
    n = int(np.prod(shape[:2]))
    return max(1, math.ceil(math.sqrt(n / max_pixels)))


@dataclass
class Agreement:
    """Agreement of rater ``a`` with rater ``b`` on one core (``b`` may be ``"vote"``)."""

    a: str
    b: str
    dice: np.ndarray  # per class; NaN where the class is in neither map
    kappa: np.ndarray  # per class, class vs. rest; NaN where the class is in neither map (as Dice)
    kappa_overall: float
    pixels: int  # pixels compared (both labelled, on the sampling grid)

    @property
    def dice_mean(self) -> float:
        d = self.dice[~np.isnan(self.dice)]
        return float(d.mean()) if d.size else float("nan")


def agreement(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray, num_classes: int, step: int = 1) -> Agreement:
    cm = confusion_matrix(a[::step, ::step], b[::step, ::step], num_classes)
    return Agreement(a_name, b_name, dice_from_confusion(cm), kappa_per_class(cm),
                     cohen_kappa_from_confusion(cm), int(cm.sum()))


def agreement_table(
    masks: Mapping[str, np.ndarray], num_classes: int, vote_map: np.ndarray | None = None, step: int | None = None
) -> list[Agreement]:
    """Every pair of experts, then each expert against the vote (if given), experts in natural order."""
    if not masks:
        return []
    masks = {e: masks[e] for e in natural_sorted(masks)}
    if step is None:
        step = sample_step(next(iter(masks.values())).shape)
    rows = [agreement(ea, masks[ea], eb, masks[eb], num_classes, step) for ea, eb in combinations(masks, 2)]
    if vote_map is not None:
        rows += [agreement(e, m, "vote", vote_map, num_classes, step) for e, m in masks.items()]
    return rows


def consensus_steps(masks: Mapping[str, np.ndarray], num_classes: int, with_staple: bool = True):
    """The review widget's job, fastest first, so results appear as they are ready.

    Yields ``("vote", map)``, ``("disagreement", map)``, ``("table", rows)``, then
    ``("staple", map)`` (the slowest: seconds on a 5120² core) and
    ``("staple_vs_vote", (share of pixels that differ, Agreement))``.
    """
    v = vote(masks, num_classes)
    yield "vote", v
    yield "disagreement", disagreement_map(masks, v)
    yield "table", agreement_table(masks, num_classes, vote_map=v)
    if with_staple:
        s = staple(masks, num_classes, fallback=v)
        yield "staple", s
        versus = agreement("vote", v, "STAPLE", s, num_classes, sample_step(v.shape))
        yield "staple_vs_vote", (float((s != v).mean()), versus)
