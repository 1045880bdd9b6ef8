"""What a core is graded: class shares, primary and secondary Gleason pattern, Gleason score, ISUP grade group.

A class map (one expert's, the vote, STAPLE or a prediction) is reduced to pixel counts per class,
and the counts to a grade. Two published rules decide the primary and secondary pattern:

``rule="isup"`` (default): the ISUP convention for needle biopsies (Epstein et al., "The 2005
International Society of Urological Pathology (ISUP) consensus conference on Gleason grading of
prostatic carcinoma", Am J Surg Pathol 29:1228-1242, 2005, kept by the 2014 conference: Epstein et
al., Am J Surg Pathol 40:244-252, 2016):

- primary: the most extensive pattern;
- secondary: the highest pattern present when it is higher than the primary, *whatever its share*
  (on a needle biopsy high-grade tumour of any quantity enters the score; with three patterns the
  score is primary + highest); otherwise the most extensive lower pattern if it covers at least
  :data:`LOWER_GRADE_MIN_SHARE` (5 %) of the tumour (with high-grade cancer, lower-grade patterns
  under 5 % of the tumour are ignored);
- a single pattern is doubled: 4+4=8.

``rule="gleason2019"``: the Gleason 2019 challenge's scoring of cores (the challenge released the TMA
cores and six experts of Nir et al., "Automatic grading of prostate cancer in digitized
histopathology images: Learning from multiple experts", Medical Image Analysis 50:167-180, 2018):
the Gleason score is the sum of the most and the second most extensive pattern, by pixel count, any
amount counting, a single pattern doubled. The challenge's own page could not be read from here;
the rule is cited as Foucart, Debeir & Decaestecker reproduced the challenge's core grades from
its maps ("Processing multi-expert annotations in digital pathology: a study of the Gleason2019
challenge", SIPAIM 2021, doi:10.1117/12.2604307; their ``grades.py``: "Gleason score (sum of two
most prominent patterns) using simple pixel count"). Use it to compare
with numbers published on that dataset; the two rules differ on a lower minor pattern under 5 %
(4+3 here, 4+4 under ISUP) and on three patterns (the two largest here, primary + highest under ISUP).

Tiny shares. ISUP counts a higher pattern "of any quantity", but in a pixel map a few pixels are no
pathologist's finding: a brush slip, the edge of a polygon, a model's speckle; under the literal rule
one G5 pixel makes a 3+3 core grade group 4, and a few G3 pixels make a benign core cancer. So, in
both rules, a pattern counts only when it covers at least ``min_share`` of the core's labelled area
(default :data:`MIN_PATTERN_SHARE`, 1 %: about one gland, 60 µm across, of a 0.6 mm TMA core, the
smallest focus a pathologist grades; the labelled area, not the tissue, so the grade never depends on
the tissue mask). This floor is this project's choice, not ISUP's: a real focus under it is missed,
and ``min_share=0`` gives either rule literally (the challenge scored experts' maps with no floor).
A pattern under the floor still shows in the shares.

Ties: patterns of equal extent make the *higher* one primary (3+4 and 4+3 tied: 4+3), the cautious
reading, as the vote breaks its ties (:mod:`trainer.data.vote`).

Grade groups (Epstein et al. 2016, Table 2): 1 for a score ≤ 6 (3+3), 2 for 3+4, 3 for 4+3, 4 for 8
(4+4, 3+5, 5+3), 5 for 9-10 (4+5, 5+4, 5+5). A core without tumour is "benign", grade group 0 (the
PANDA challenge's ISUP grade 0: Bulten et al., Nat Med 28:154-163, 2022), so agreement over cores
(:func:`trainer.metrics.cohen_kappa_ratings`) sees benign as the grade below 1. A core with no
labelled tissue at all (an expert who left it unlabelled) has no grade (``None``).

Shares. Pixels of :data:`~trainer.data.classes.IGNORE_INDEX` are unlabelled and count nowhere.
``tissue`` (a bool mask, e.g. :func:`trainer.prediction.tissue.tissue_mask`) removes glass from the shares of the
tissue: Gleason 2019 maps write glass as background, which this project reads as benign. A pixel
labelled with a tumour pattern counts as tissue whatever the mask says, so the grade never depends
on the tissue mask, only the shares of the tissue do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rules for the primary and secondary pattern (see the module docstring).
RULES: tuple[str, ...] = ("isup", "gleason2019")
#: ISUP: a pattern lower than the primary is secondary only from this share of the tumour on.
LOWER_GRADE_MIN_SHARE = 0.05
#: A pattern under this share of the core's labelled area does not count (this project's noise floor).
MIN_PATTERN_SHARE = 0.01

#: Class names read as Gleason patterns (this project's scheme: G3, G4, G5).
_PATTERN_NAMES = {"g3": 3, "g4": 4, "g5": 5, "gleason 3": 3, "gleason 4": 4, "gleason 5": 5}


def pattern_of_class(names) -> dict[int, int]:
    """Class index -> Gleason pattern (3, 4, 5) for the classes of ``names`` that are patterns."""
    return {c: _PATTERN_NAMES[n.strip().lower()] for c, n in enumerate(names) if n.strip().lower() in _PATTERN_NAMES}


def grade_group(primary: int, secondary: int) -> int:
    """ISUP 2014 grade group (Epstein et al. 2016) of the Gleason score ``primary + secondary``."""
    score = primary + secondary
    if score <= 6:
        return 1
    if score == 7:
        return 2 if primary == 3 else 3  # 3+4 vs 4+3 (a 5+2/2+5 cannot arise from patterns 3-5)
    return 4 if score == 8 else 5


@dataclass(frozen=True)
class CoreGrade:
    """One rater's grade of one core.

    ``tissue_share`` / ``tumour_share``: class name -> share of the labelled tissue / of the tumour
    (patterns only; empty without tumour); ``primary``/``secondary``: Gleason patterns, ``None``
    when benign or unlabelled; ``grade_group``: 1-5, 0 benign, ``None`` unlabelled.
    """

    tissue_share: dict[str, float]
    tumour_share: dict[str, float]
    tissue_pixels: int
    tumour_pixels: int
    primary: int | None
    secondary: int | None
    grade_group: int | None

    @property
    def score(self) -> int | None:
        return None if self.primary is None else self.primary + self.secondary

    @property
    def label(self) -> str:
        """``"3+4=7"``, ``"benign"`` or ``"unlabelled"``."""
        if self.grade_group is None:
            return "unlabelled"
        if self.primary is None:
            return "benign"
        return f"{self.primary}+{self.secondary}={self.score}"


def class_counts(class_map: np.ndarray, num_classes: int, tissue: np.ndarray | None = None,
                 patterns=()) -> np.ndarray:
    """Pixels per class (int64, ``num_classes``): ``IGNORE_INDEX`` and unknown values skipped; with
    ``tissue``, non-pattern classes counted only on it (``patterns``: the pattern class indices)."""
    cm = np.asarray(class_map)
    everywhere = np.bincount(cm.ravel(), minlength=256)[:num_classes].astype(np.int64)
    if tissue is None:
        return everywhere
    tissue = np.asarray(tissue, dtype=bool)
    if tissue.shape != cm.shape:
        raise ValueError(f"tissue mask {tissue.shape} and class map {cm.shape} differ in shape")
    out = np.bincount(cm[tissue].ravel(), minlength=256)[:num_classes].astype(np.int64)
    for c in patterns:  # a pixel labelled tumour is tissue whatever the mask says (module docstring)
        out[c] = everywhere[c]
    return out


def grade_counts(counts, names, rule: str = "isup", min_share: float = MIN_PATTERN_SHARE,
                 area: int | None = None) -> CoreGrade:
    """The grade of a core from its pixel counts per class (``counts[c]`` for class ``names[c]``, on
    the tissue); ``area``: the core's labelled pixels, tissue or not, for the floor (default: the
    counts' sum)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    counts = np.asarray(counts, dtype=np.int64)
    names = tuple(names)
    pattern = pattern_of_class(names)
    if not pattern:
        raise ValueError(f"no Gleason pattern among the classes {names} (expected G3, G4, G5)")
    tissue = int(counts.sum())
    tumour = int(sum(counts[c] for c in pattern))
    area = tissue if area is None else int(area)
    tissue_share = {n: (float(counts[c]) / tissue if tissue else 0.0) for c, n in enumerate(names)}
    tumour_share = {names[c]: (float(counts[c]) / tumour if tumour else 0.0) for c in pattern}
    if tissue == 0:
        return CoreGrade(tissue_share, {}, 0, 0, None, None, None)
    extent: dict[int, int] = {}
    for c, p in pattern.items():
        extent[p] = extent.get(p, 0) + int(counts[c])
    present = {p: n for p, n in extent.items() if n > 0 and n >= min_share * area}  # the floor
    if not present:
        return CoreGrade(tissue_share, tumour_share, tissue, tumour, None, None, 0)
    # most extensive first; equal extent: the higher pattern first (module docstring, ties)
    order = sorted(present, key=lambda p: (present[p], p), reverse=True)
    primary = order[0]
    secondary = primary  # a single pattern is doubled
    if rule == "gleason2019":
        if len(order) > 1:
            secondary = order[1]
    else:
        higher = [p for p in order if p > primary]
        lower = [p for p in order[1:] if p < primary and present[p] >= LOWER_GRADE_MIN_SHARE * tumour]
        if higher:
            secondary = max(higher)  # any amount (above the floor): primary + highest
        elif lower:
            secondary = lower[0]  # the most extensive lower pattern of at least 5 %
    return CoreGrade(tissue_share, tumour_share, tissue, tumour, primary, secondary, grade_group(primary, secondary))


def grade_core(class_map: np.ndarray, names, tissue: np.ndarray | None = None, rule: str = "isup",
               min_share: float = MIN_PATTERN_SHARE) -> CoreGrade:
    """The grade of a core from its class map (uint8 H×W, class indices of ``names``, ``IGNORE_INDEX``
    unlabelled) and optional ``tissue`` mask (bool H×W); the rules are the module docstring's."""
    names = tuple(names)
    counts = class_counts(class_map, len(names), tissue, tuple(pattern_of_class(names)))
    area = int(class_counts(class_map, len(names)).sum()) if tissue is not None else None
    return grade_counts(counts, names, rule=rule, min_share=min_share, area=area)


def grade_row(core: str, rater: str, grade: CoreGrade, names) -> dict:
    """One CSV row: core, rater, each class's share of the tissue and each pattern's of the tumour,
    primary, secondary, Gleason score, grade group (empty cells where there is none)."""
    row: dict = {"core": core, "rater": rater}
    for n in names:
        row[f"tissue_share_{n}"] = round(grade.tissue_share.get(n, 0.0), 6)
    for c in sorted(pattern_of_class(names)):
        row[f"tumour_share_{names[c]}"] = round(grade.tumour_share.get(names[c], 0.0), 6)
    empty = lambda v: "" if v is None else v  # noqa: E731
    row.update({"primary": empty(grade.primary), "secondary": empty(grade.secondary),
                "gleason_score": grade.label, "grade_group": empty(grade.grade_group)})
    return row


__all__ = ["RULES", "LOWER_GRADE_MIN_SHARE", "MIN_PATTERN_SHARE", "CoreGrade", "class_counts", "grade_core",
           "grade_counts", "grade_group", "grade_row", "pattern_of_class"]
