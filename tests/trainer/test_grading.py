"""Grading a core (trainer.grading) against the rules' published examples, and agreement over cores
(trainer.metrics: weighted Cohen's κ against scikit-learn, Fleiss' κ against Wikipedia's worked example)."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from trainer.data.classes import GLEASON_CLASSES, IGNORE_INDEX
from trainer.grading import CoreGrade, class_counts, grade_core, grade_group, grade_row
from trainer.metrics import (cohen_kappa_from_confusion, cohen_kappa_ratings, fleiss_kappa_from_table,
                             fleiss_kappa_ratings, rating_confusion)

CLASS = {n: c for c, n in enumerate(GLEASON_CLASSES)}


def core(pixels: dict, side: int = 100, seed: int = 0) -> np.ndarray:
    """A side×side class map with ``pixels[name]`` pixels of each class (names of GLEASON_CLASSES or
    "ignore"), shuffled; benign fills the rest."""
    flat = []
    for name, n in pixels.items():
        flat += [IGNORE_INDEX if name == "ignore" else CLASS[name]] * n
    assert len(flat) <= side * side
    flat += [CLASS["benign"]] * (side * side - len(flat))
    flat = np.array(flat, np.uint8)
    np.random.default_rng(seed).shuffle(flat)
    return flat.reshape(side, side)


def grade(pixels, **kw) -> CoreGrade:
    return grade_core(core(pixels), GLEASON_CLASSES, **kw)


# --- grade groups: Epstein et al. 2016 (ISUP 2014), Table 2 --------------------------------------------
@pytest.mark.parametrize("primary, secondary, group", [
    (3, 3, 1), (3, 4, 2), (4, 3, 3), (4, 4, 4), (3, 5, 4), (5, 3, 4), (4, 5, 5), (5, 4, 5), (5, 5, 5)])
def test_grade_group_table(primary, secondary, group):
    assert grade_group(primary, secondary) == group


@pytest.mark.parametrize("pixels, label, group", [
    ({"G3": 6000}, "3+3=6", 1),                      # a single pattern is doubled
    ({"G3": 4200, "G4": 1800}, "3+4=7", 2),
    ({"G4": 4200, "G3": 1800}, "4+3=7", 3),
    ({"G4": 6000}, "4+4=8", 4),
    ({"G3": 4000, "G5": 2000}, "3+5=8", 4),
    ({"G5": 4000, "G3": 2000}, "5+3=8", 4),
    ({"G4": 4000, "G5": 2000}, "4+5=9", 5),
    ({"G5": 4000, "G4": 2000}, "5+4=9", 5),
    ({"G5": 6000}, "5+5=10", 5),
])
def test_each_grade_group_from_a_class_map(pixels, label, group):
    for rule in ("isup", "gleason2019"):  # two patterns of ≥ 5 %: both rules agree
        g = grade(pixels, rule=rule)
        assert (g.label, g.grade_group) == (label, group), rule


def test_all_benign_is_grade_group_zero():
    g = grade({})
    assert g.label == "benign" and g.grade_group == 0
    assert g.primary is None and g.secondary is None and g.score is None
    assert g.tissue_share["benign"] == 1.0 and g.tumour_pixels == 0


def test_higher_grade_minor_pattern_counts_whatever_its_share_under_isup():
    # Epstein et al. 2005: on a needle biopsy, high-grade tumour of any quantity enters the score
    g = grade({"G3": 5820, "G4": 180})  # G4: 3 % of the tumour (1.8 % of the core, above the floor)
    assert g.tumour_share["G4"] == pytest.approx(0.03)
    assert g.label == "3+4=7" and g.grade_group == 2
    assert grade({"G3": 5820, "G4": 180}, rule="gleason2019").label == "3+4=7"


def test_lower_grade_minor_pattern_under_five_percent_is_ignored_under_isup():
    # Epstein et al. 2005: lower-grade patterns under 5 % of a high-grade tumour are ignored
    assert grade({"G4": 5820, "G3": 180}).label == "4+4=8"
    assert grade({"G4": 5700, "G3": 300}).label == "4+3=7"  # exactly 5 %: counts
    # the challenge's scoring counts the second most extensive pattern whatever its share
    assert grade({"G4": 5820, "G3": 180}, rule="gleason2019").label == "4+3=7"


def test_three_patterns_primary_plus_highest_under_isup_two_largest_under_gleason2019():
    three = {"G3": 3600, "G4": 1800, "G5": 600}
    assert grade(three).label == "3+5=8" and grade(three).grade_group == 4
    assert grade(three, rule="gleason2019").label == "3+4=7"
    three = {"G4": 3000, "G3": 2400, "G5": 600}
    assert grade(three).label == "4+5=9"
    assert grade(three, rule="gleason2019").label == "4+3=7"


def test_ties_make_the_higher_pattern_primary():
    assert grade({"G3": 3000, "G4": 3000}).label == "4+3=7"
    assert grade({"G3": 3000, "G4": 3000}, rule="gleason2019").grade_group == 3
    # a three-way tie: 5 primary, nothing higher; of the tied lower patterns 4 is secondary
    assert grade({"G4": 2000, "G5": 2000, "G3": 2000}).label == "5+4=9"
    assert grade({"G5": 4000, "G3": 1000, "G4": 1000}, rule="gleason2019").label == "5+4=9"


def test_tiny_focus_under_the_floor_does_not_count_but_shows_in_the_shares():
    speck = {"G3": 6000, "G5": 50}  # G5: 0.5 % of the core, under the 1 % floor
    g = grade(speck)
    assert g.label == "3+3=6" and g.tissue_share["G5"] == pytest.approx(0.005)
    assert grade(speck, min_share=0).label == "3+5=8"  # the literal rule: any amount
    lone = grade({"G4": 50})  # a benign core with a speck of G4
    assert lone.label == "benign" and lone.grade_group == 0 and lone.tumour_pixels == 50
    assert grade({"G4": 50}, min_share=0).label == "4+4=8"
    assert grade({"G4": 100}).label == "4+4=8"  # exactly the floor: counts


def test_ignore_pixels_count_nowhere():
    g = grade({"ignore": 5000, "G3": 2500, "G4": 1000})  # 5000 labelled: 1500 benign
    assert g.tissue_pixels == 5000 and g.tumour_pixels == 3500
    assert g.tissue_share == pytest.approx({"benign": 0.3, "G3": 0.5, "G4": 0.2, "G5": 0.0})
    assert g.tumour_share == pytest.approx({"G3": 2500 / 3500, "G4": 1000 / 3500, "G5": 0.0})
    assert g.label == "3+4=7"
    empty = grade({"ignore": 10_000})
    assert empty.grade_group is None and empty.label == "unlabelled" and empty.tissue_pixels == 0


def test_tissue_mask_removes_glass_from_the_shares_but_never_changes_the_grade():
    m = np.zeros((10, 10), np.uint8)
    m[:, :4] = CLASS["G4"]
    m[:, 4:6] = CLASS["G3"]
    m[0, 9] = IGNORE_INDEX
    tissue = np.zeros((10, 10), bool)
    tissue[:, :8] = True
    tissue[:, 0] = False  # a G4 column the tissue detector missed: still tumour
    with_mask = grade_core(m, GLEASON_CLASSES, tissue, min_share=0)
    without = grade_core(m, GLEASON_CLASSES, min_share=0)
    assert with_mask.tissue_pixels == 80 and without.tissue_pixels == 99
    assert with_mask.tissue_share["benign"] == pytest.approx(20 / 80)
    assert with_mask.tissue_share["G4"] == pytest.approx(40 / 80)
    assert with_mask.label == without.label == "4+3=7"
    with pytest.raises(ValueError, match="shape"):
        grade_core(m, GLEASON_CLASSES, tissue[:5])


def test_counts_and_row():
    m = core({"G3": 10, "G4": 20, "ignore": 5}, side=10)
    assert class_counts(m, 4).tolist() == [65, 10, 20, 0]
    row = grade_row("c1", "vote", grade_core(m, GLEASON_CLASSES, min_share=0), GLEASON_CLASSES)
    assert list(row) == ["core", "rater", "tissue_share_benign", "tissue_share_G3", "tissue_share_G4",
                         "tissue_share_G5", "tumour_share_G3", "tumour_share_G4", "tumour_share_G5",
                         "primary", "secondary", "gleason_score", "grade_group"]
    assert (row["primary"], row["secondary"], row["gleason_score"], row["grade_group"]) == (4, 3, "4+3=7", 3)
    assert grade_row("c", "1", grade({}), GLEASON_CLASSES)["primary"] == ""


def test_unknown_rule_and_schemes_without_patterns_are_refused():
    with pytest.raises(ValueError, match="rule"):
        grade({}, rule="nccn")
    with pytest.raises(ValueError, match="pattern"):
        grade_core(np.zeros((2, 2), np.uint8), ("background", "tumour"))


# --- agreement over cores ---------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_weighted_kappa_matches_sklearn(weights):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 200)
    b = np.clip(a + rng.integers(-2, 3, 200), 0, 5)  # correlated, as two pathologists' grade groups
    ours = cohen_kappa_ratings(a.tolist(), b.tolist(), range(6), weights=weights)
    assert ours == pytest.approx(cohen_kappa_score(a, b, labels=list(range(6)), weights=weights), abs=1e-12)
    assert 0.0 < ours < 1.0


def test_unweighted_kappa_agrees_with_the_pixel_kappa():
    a = [0, 1, 2, 2, 3, 1, 0, 5, 4, 4]
    b = [0, 1, 2, 3, 3, 1, 1, 5, 4, 5]
    assert cohen_kappa_ratings(a, b, range(6), weights=None) == pytest.approx(
        cohen_kappa_from_confusion(rating_confusion(a, b, range(6))))


def test_kappa_skips_cores_a_rater_left_unlabelled():
    a = [1, 2, None, 4, 5, 0, 3]
    b = [1, 3, 2, 4, None, 0, 2]
    keep = [i for i in range(7) if a[i] is not None and b[i] is not None]
    ref = cohen_kappa_score([a[i] for i in keep], [b[i] for i in keep], labels=list(range(6)), weights="quadratic")
    assert cohen_kappa_ratings(a, b, range(6)) == pytest.approx(ref)
    assert np.isnan(cohen_kappa_ratings([None], [1], range(6)))
    assert cohen_kappa_ratings([2, 2, 2], [2, 2, 2], range(6)) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa_ratings([1, 2], [1], range(6))


#: Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; κ = 0.210.
WIKIPEDIA_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_worked_example():
    table = np.array(WIKIPEDIA_TABLE)
    assert (table.sum(axis=1) == 14).all()
    # the article's intermediate values: p_j and P̄ = 0.378, P̄_e = 0.213
    p_j = table.sum(axis=0) / table.sum()
    assert np.round(p_j, 3).tolist() == [0.143, 0.200, 0.279, 0.150, 0.229]
    assert fleiss_kappa_from_table(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_from_ratings_and_against_statsmodels_when_installed():
    table = np.array(WIKIPEDIA_TABLE)
    ratings = [[j for j in range(5) for _ in range(row[j])] for row in table]
    assert fleiss_kappa_ratings(ratings, range(5)) == pytest.approx(fleiss_kappa_from_table(table))
    try:
        from statsmodels.stats.inter_rater import fleiss_kappa
    except ImportError:  # not a dependency; the worked example above is the reference
        return
    assert fleiss_kappa_from_table(table) == pytest.approx(fleiss_kappa(table, method="fleiss"))


def test_fleiss_kappa_with_missing_ratings():
    full = [[1, 1, 1], [2, 2, 3], [0, 0, 0], [4, 5, 4]]
    base = fleiss_kappa_ratings(full, range(6))
    # a core only one expert graded carries no agreement: it is left out
    assert fleiss_kappa_ratings(full + [[None, 3, None]], range(6)) == pytest.approx(base)
    assert fleiss_kappa_ratings([[1, 1], [2, 2], [0, 0]], range(6)) == 1.0
    assert fleiss_kappa_ratings([[0, 1], [1, 0]], range(6)) == pytest.approx(-1.0)
    assert np.isnan(fleiss_kappa_ratings([[1, None]], range(6)))
    # two raters per subject: Fleiss' κ is Scott's π, which equals Cohen's κ when the marginals match
    a, b = [0, 1, 2, 2, 1, 0], [0, 2, 1, 2, 1, 0]
    assert fleiss_kappa_ratings(list(zip(a, b)), range(3)) == pytest.approx(
        cohen_kappa_ratings(a, b, range(3), weights=None))
