"""The ablation's scores: AUROC by hand and against scikit-learn and brute force, error kinds,
the network baselines, and the estimated against true confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.ablation.auroc import (
    BASELINE_LABEL,
    BASELINE_MAX,
    AurocPool,
    auroc,
    auroc_within_classes,
    average_ranks,
    error_kinds,
    network_baselines,
)
from trainer.ablation.matrices import ConfusionPool
from trainer.synthetic import FLAG_BORDERLINE_G3, FLAG_SMALL_G5

def test_auroc_hand_made_cases():
    # sklearn's documented example: 3 of the 4 positive-negative pairs are ordered right
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # ties count one half: pos 0.5 vs negs (0.5, 0.5) → 1, pos 0.9 vs both → 2; 3 of 4 pairs
    assert auroc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1]) == pytest.approx(0.75)
    assert auroc([0.3] * 5, [0, 1, 0, 1, 1]) == 0.5  # a constant score carries no information
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert np.isnan(auroc([1, 2], [1, 1])) and np.isnan(auroc([1, 2], [0, 0]))
    with pytest.raises(ValueError):
        auroc([1, 2, 3], [0, 1])


def test_average_ranks_match_scipy():
    from scipy.stats import rankdata

    x = np.random.default_rng(0).integers(0, 7, 500).astype(float)
    np.testing.assert_allclose(average_ranks(x), rankdata(x))


@pytest.mark.parametrize("seed", range(4))
def test_auroc_matches_sklearn_with_many_ties(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    labels = rng.random(5000) < 0.2
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # rounding makes many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    weights = np.round(rng.random(5000), 2).astype(np.float32)  # the benchmark's float32 weights
    assert auroc(1 - weights, labels) == pytest.approx(roc_auc_score(labels, 1 - weights), abs=1e-12)


def test_error_kinds_split_expert_3_and_5():
    truth = np.array([[1, 1, 2, 3]], np.uint8)  # G3 G3 G4 G5
    flags = np.array([[FLAG_BORDERLINE_G3, 0, 0, FLAG_SMALL_G5]], np.uint8)
    k3 = error_kinds("3", np.array([[2, 1, 1, 3]], np.uint8), truth, flags)
    assert k3["all"].tolist() == [[True, False, True, False]]
    assert k3["borderline_g3_called_g4"].tolist() == [[True, False, False, False]]
    assert k3["random_g4_patches_called_g3"].tolist() == [[False, False, True, False]]
    k5 = error_kinds("5", np.array([[1, 1, 2, 2]], np.uint8), truth, flags)
    assert k5["small_g5_foci_missed"].tolist() == [[False, False, False, True]]
    assert set(error_kinds("4", truth, truth, flags)) == {"all", "unreliable"}


def test_auroc_pool_scores_a_map_that_points_at_the_errors():
    truth = np.zeros((8, 8), np.uint8)
    label = truth.copy()
    label[:, :2] = 2  # the expert is wrong in the first two columns
    tissue = np.ones_like(truth, bool)
    tissue[7] = False  # glass is left out
    good = np.where(label != truth, 0.9, 0.4)  # high score exactly where it is wrong
    pool = AurocPool(("4",))
    pool.add("4", {"1 − w": good, "flat": np.full(truth.shape, 0.5)}, label, truth, np.zeros_like(truth), tissue,
             prediction=truth)
    r = pool.result()["4"]
    assert r["error_fraction"]["all"] == pytest.approx(14 / 56) and r["model_agrees"] == 0.0
    s = r["scores"]["1 − w"]
    assert s["auroc"]["all"] == 1.0 == s["auroc_same_class"]["all"] == s["auroc_subset_network_right"]["all"]
    assert s["mean_wrong"] == pytest.approx(0.9) and s["mean_right"] == pytest.approx(0.4)
    assert r["scores"]["flat"]["auroc"]["all"] == 0.5
    with pytest.raises(ValueError, match="detector"):
        pool.add("4", {"small": good[:4]}, label, truth, np.zeros_like(truth), tissue, prediction=truth)


def test_all_tissue_and_same_class_auroc_differ_as_computed_by_hand():
    """A map that only tells tumour from benign scores well on all tissue and exactly 0.5 against
    same-class negatives; a map that finds the errors scores 1 on both."""
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 5:] = 1  # right half G3 (50 px), left half benign (50 px)
    label = truth.copy()
    label[:2, 5:] = 2  # the expert calls 10 G3 pixels G4
    tumour = (truth == 1).astype(np.float32)  # high on all G3, wrong or right
    finder = (label != truth).astype(np.float32)
    anti = 1 - finder  # ranks every error below every right pixel
    flags = np.zeros_like(truth)
    pool = AurocPool(("A",), kinds_fn=lambda e, lab, tr, fl: {"all": lab != tr})
    pool.add("A", {"tumour": tumour, "finder": finder, "anti": anti}, label, truth, flags,
             np.ones_like(truth, bool), prediction=truth)
    s = pool.result()["A"]["scores"]
    # 10 errors against 50 benign (all won) and 40 right G3 (all tied: ½ each)
    assert s["tumour"]["auroc"]["all"] == pytest.approx((10 * 50 + 0.5 * 10 * 40) / (10 * 90))
    assert s["tumour"]["auroc_same_class"]["all"] == 0.5
    assert s["finder"]["auroc"]["all"] == 1.0 == s["finder"]["auroc_same_class"]["all"]
    assert s["anti"]["auroc"]["all"] == 0.0 == s["anti"]["auroc_same_class"]["all"]


def _pairs_auroc(scores, pos, strata):
    """Brute force: over every (positive, negative) pair of the same stratum, wins + ½ ties."""
    wins = pairs = 0.0
    for i in np.flatnonzero(pos):
        neg = (~pos) & (strata == strata[i])
        wins += (scores[i] > scores[neg]).sum() + 0.5 * (scores[i] == scores[neg]).sum()
        pairs += neg.sum()
    return wins / pairs


def test_same_class_auroc_pairs_errors_only_with_right_pixels_of_their_own_class():
    rng = np.random.default_rng(5)
    n = 600
    strata = rng.integers(0, 3, n)
    pos = rng.random(n) < 0.2
    scores = np.round(rng.normal(pos * 0.6 + strata * 0.5, 1.0), 1)  # class shifts the score; ties
    assert auroc_within_classes(scores, pos, strata) == pytest.approx(_pairs_auroc(scores, pos, strata), abs=1e-12)
    # one stratum: the plain AUROC
    assert auroc_within_classes(scores, pos, np.zeros(n)) == pytest.approx(auroc(scores, pos), abs=1e-12)
    # positives only where no negative of their class exists: NaN
    assert np.isnan(auroc_within_classes([0.1, 0.2, 0.3], [True, False, False], [0, 1, 1]))


def test_auroc_pool_same_class_and_subset_match_brute_force():
    """The pool's restricted AUROCs on the pixels each restriction keeps, recomputed independently."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    shape = (40, 40)
    truth = rng.integers(0, 3, shape).astype(np.uint8)
    flags = np.where((truth == 1) & (rng.random(shape) < 0.5), FLAG_BORDERLINE_G3, 0).astype(np.uint8)
    label = truth.copy()
    swap = (truth == 1) & (flags > 0) & (rng.random(shape) < 0.8)  # expert 3's borderline-G3 errors
    label[swap] = 2
    other = (truth == 2) & (rng.random(shape) < 0.1)  # and G4 called G3
    label[other] = 1
    prediction = np.where(rng.random(shape) < 0.8, truth, (truth + 1) % 3).astype(np.uint8)
    tissue = rng.random(shape) < 0.9
    score = (rng.random(shape) + 0.5 * (label != truth) + 0.3 * truth).astype(np.float32)
    pool = AurocPool(("3",))
    pool.add("3", {"s": score}, label, truth, flags, tissue, prediction)
    s = pool.result()["3"]["scores"]["s"]
    kind = "borderline_g3_called_g4"
    pos, right, net = swap & tissue, (label == truth) & tissue, prediction == truth
    keep = pos | right
    assert s["auroc"][kind] == pytest.approx(roc_auc_score(pos[keep], score[keep]))
    keep = pos | (right & (truth == 1))  # borderline errors are all true G3
    assert s["auroc_same_class"][kind] == pytest.approx(roc_auc_score(pos[keep], score[keep]))
    keep = (pos | right) & net
    assert s["auroc_subset_network_right"][kind] == pytest.approx(roc_auc_score(pos[keep], score[keep]))
    # "all" mixes G3 and G4 errors: each is paired only with right pixels of its own true class
    wrong = (label != truth) & tissue
    keep = (wrong | right).ravel()
    assert s["auroc_same_class"]["all"] == pytest.approx(
        _pairs_auroc(score.ravel()[keep], wrong.ravel()[keep], truth.ravel()[keep]), abs=1e-9)
    assert s["auroc_same_class"]["all"] != pytest.approx(s["auroc"]["all"], abs=1e-3)


def _probs(rng, truth, c, grid=16):
    """Class probabilities leaning to the truth, in multiples of 1/16: exact in float32, so every
    pixel's probabilities sum to exactly 1 and equal values stay equal whatever is computed from them."""
    k = rng.integers(1, 5, (c, *truth.shape)).astype(np.float64)
    k += 6 * np.eye(c)[truth].transpose(2, 0, 1)
    p = np.floor(k / k.sum(0) * grid) / grid
    p[0] += 1 - p.sum(0)  # the rest of the mass (a multiple of 1/16) on class 0
    return p.astype(np.float32)


def test_network_baselines_by_hand():
    p = np.array([[[0.7, 0.1]], [[0.2, 0.3]], [[0.1, 0.6]]], np.float32)  # C=3, 1×2
    b = network_baselines(p, np.array([[1, 2]]))
    np.testing.assert_allclose(b[BASELINE_LABEL], [[0.8, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(b[BASELINE_MAX], [[0.3, 0.4]], rtol=1e-6)
    with pytest.raises(ValueError):
        network_baselines(p, np.array([[1, 3]]))


def test_a_detector_that_is_a_function_of_p_label_scores_exactly_as_the_baseline():
    """A global matrix with the same diagonal d for every class and the rest spread evenly makes the
    given-label map 1 − d·p_l / (d·p_l + o·(1 − p_l)), increasing in 1 − p_l: every AUROC must equal
    the `1 − p(label written)` baseline's; its image-only map is the constant 1 − d (AUROC ½)."""
    from trainer.ablation.run import detector_maps

    rng = np.random.default_rng(7)
    c, shape = 4, (30, 30)
    truth = rng.integers(0, c, shape).astype(np.uint8)
    flags = np.zeros(shape, np.uint8)
    label = np.where(rng.random(shape) < 0.3, rng.integers(0, c, shape), truth).astype(np.uint8)
    probs = _probs(rng, truth, c)
    d = 0.8
    m = np.full((c, c), (1 - d) / (c - 1)) + np.eye(c) * (d - (1 - d) / (c - 1))
    maps = detector_maps("confusion", probs, {"A": label}, errors={"A": np.zeros(shape)},
                         errors_prior={"A": np.zeros(shape)}, global_matrices={"A": m})["A"]
    assert set(maps) == {"error (given the label)", "error (image only)", "global: error (given the label)",
                         "global: error (image only)", BASELINE_LABEL, BASELINE_MAX}
    pool = AurocPool(("A",), kinds_fn=lambda e, lab, tr, fl: {"all": lab != tr, "on G3": (lab != tr) & (tr == 1)})
    tissue = rng.random(shape) < 0.9
    pool.add("A", maps, label, truth, flags, tissue, prediction=probs.argmax(0))
    s = pool.result()["A"]["scores"]
    for metric in AurocPool.METRICS:
        for kind in ("all", "on G3"):
            assert s["global: error (given the label)"][metric][kind] == s[BASELINE_LABEL][metric][kind], (metric, kind)
            assert s["global: error (image only)"][metric][kind] == 0.5
    assert 0.6 < s[BASELINE_LABEL]["auroc"]["all"] < 1  # the case is not degenerate: the baseline is informative


def test_detector_maps_of_a_reweighting_run():
    from trainer.ablation.run import detector_maps

    p = np.array([[[0.7, 0.1]], [[0.3, 0.9]]], np.float32)
    maps = detector_maps("reweight", p, {"A": np.array([[0, 0]])}, weights={"A": np.array([[0.25, 0.5]])})["A"]
    assert set(maps) == {"1 − w", BASELINE_LABEL, BASELINE_MAX}
    np.testing.assert_allclose(maps["1 − w"], [[0.75, 0.5]])
    np.testing.assert_allclose(maps[BASELINE_LABEL], [[0.3, 0.9]], rtol=1e-6)


def test_confusion_pool_against_a_hand_computation():
    """Two cores: estimated rows pooled by probability mass, true rows by counts, max |Δ| on rows seen."""
    pool = ConfusionPool(num_classes=2, min_pixels=1)
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    label = np.array([[0, 1, 1, 1]], np.uint8)  # true row 0: [1/2, 1/2]; row 1: [0, 1]
    mask = np.array([[True, True, True, False]])
    probs = np.array([[[1.0, 1.0, 0.0, 0.5]], [[0.0, 0.0, 1.0, 0.5]]])  # mass over mask: row 0 → 2, row 1 → 1
    pool.add("area", "A", np.array([[0.6, 0.4], [0.2, 0.8]]), probs, mask, truth, label)
    truth2 = np.array([[1, 1]], np.uint8)
    label2 = np.array([[0, 1]], np.uint8)  # adds row 1: one right, one wrong
    probs2 = np.array([[[0.0, 0.0]], [[1.0, 1.0]]])  # mass: row 0 → 0, row 1 → 2
    pool.add("area", "A", np.array([[np.nan, np.nan], [0.5, 0.5]]), probs2, np.ones((1, 2), bool), truth2, label2)
    r = pool.result()["area"]["A"]
    np.testing.assert_allclose(r["estimated"][0], [0.6, 0.4])  # only the first core has row-0 mass
    np.testing.assert_allclose(r["estimated"][1], [(1 * 0.2 + 2 * 0.5) / 3, (1 * 0.8 + 2 * 0.5) / 3])
    np.testing.assert_allclose(r["true"], [[0.5, 0.5], [1 / 3, 2 / 3]])  # rows: 2 pixels, 3 pixels
    assert r["rows_compared"] == [0, 1] and r["pixels_per_row"] == [2, 3]
    assert r["max_abs_diff"] == pytest.approx(max(0.1, 0.1, abs(0.4 - 1 / 3), abs(0.6 - 2 / 3)))
    # a core whose estimate is NaN (e.g. an area too small for the model's resolution) adds no weight,
    # and the estimate's weights may come from another mask than the true counts
    pool.add("area", "A", np.full((2, 2), np.nan), probs, mask, truth, label)
    again = pool.result()["area"]["A"]
    np.testing.assert_allclose(again["estimated"], r["estimated"])
    assert again["pixels_per_row"] == [4, 4]
    other = ConfusionPool(num_classes=2, min_pixels=1)
    other.add("area", "A", np.array([[0.6, 0.4], [0.2, 0.8]]), probs, mask, truth, label,
              estimate_mask=np.array([[False, False, True, True]]))  # row masses 0.5 and 1.5
    np.testing.assert_allclose(other.result()["area"]["A"]["estimated"], [[0.6, 0.4], [0.2, 0.8]])
    assert other.result()["area"]["A"]["pixels_per_row"] == [2, 1]
    other.add("area", "A", np.array([[0.0, 1.0], [1.0, 0.0]]), probs, mask, truth, label)  # masses 2 and 1
    np.testing.assert_allclose(other.result()["area"]["A"]["estimated"],
                               [[(0.5 * 0.6 + 2 * 0.0) / 2.5, (0.5 * 0.4 + 2 * 1.0) / 2.5],
                                [(1.5 * 0.2 + 1 * 1.0) / 2.5, (1.5 * 0.8 + 1 * 0.0) / 2.5]])
    strict = ConfusionPool(num_classes=2, min_pixels=3)
    strict.add("area", "A", np.array([[0.6, 0.4], [0.2, 0.8]]), probs, mask, truth, label)
    assert strict.result()["area"]["A"]["rows_compared"] == []  # too few pixels: not compared
