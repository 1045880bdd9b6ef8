"""The noisy-label benchmark: AUROC by hand and against scikit-learn, error kinds, the estimated
against true confusion matrices, the bookkeeping that every variant sees the same data, seeds and
iterations, the `paper` preset end to end for one iteration of every variant on tiny inputs, and the
`cpu-noisy` preset (issue 10) end to end on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.ablation import PRESETS, VARIANTS, get_preset
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
from trainer.ablation.data import prepare_data
from trainer.ablation.matrices import ConfusionPool
from trainer.ablation.run import SCORING_VERSION, plan_runs
from trainer.errors import InputError
from trainer.synthetic import FLAG_BORDERLINE_G3, FLAG_SMALL_G5

# --- AUROC --------------------------------------------------------------------------------------


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


def test_trace_stays_aligned_when_a_batch_lacks_an_expert(monkeypatch, tmp_path):
    """error/<expert> is logged only when the batch holds the expert (two-expert cores): NaN fills in."""
    from trainer import events as ev
    from trainer.ablation import run as bench_run

    def fake_train(cfg):
        yield ev.RunStarted(str(tmp_path), 0, 3, "cpu", 1, {"train": 2, "val": 0}, ["A", "B"], ["c0", "c1"])
        for i, losses in enumerate([{"total": 1.0, "error/A": 0.1}, {"total": 0.9, "error/B": 0.2},
                                    {"total": 0.8, "error/A": 0.3, "error/B": 0.4}], start=1):
            yield ev.IterationDone(i, 3, losses, 1.0, 0.5, 0.01, 0.1)
        yield ev.RunFinished(3, False, str(tmp_path / "last.pt"), None, None, 0.3)

    monkeypatch.setattr(bench_run, "train", fake_train)
    plan = bench_run.RunPlan("m", None, "confusion", 0, tmp_path, type("Cfg", (), {"train": type("T", (), {"iters": 3})})())
    tr = bench_run.train_one(plan, log=lambda s: None)["trace"]
    assert tr["iteration"] == [1, 2, 3] and tr["total"] == [1.0, 0.9, 0.8]
    assert tr["error/A"][0] == 0.1 and np.isnan(tr["error/A"][1]) and tr["error/A"][2] == 0.3
    assert np.isnan(tr["error/B"][0]) and tr["error/B"][1:] == [0.2, 0.4]


# --- presets ------------------------------------------------------------------------------------


def test_presets():
    small, paper, noisy = PRESETS["cpu-small"], PRESETS["paper"], PRESETS["cpu-noisy"]
    small.validate(), paper.validate(), noisy.validate()
    assert (paper.size, paper.batch_size, paper.iters, paper.lr, paper.lambda_step) == (1024, 2, 10_000, 0.01, 1000)
    assert [m for m, _ in paper.models] == ["hrnet18", "hrnet48"] and paper.weight_stride == 4  # the authors'
    assert set(paper.variants) == set(VARIANTS) and {"confusion", "gafl+confusion"} <= set(VARIANTS)
    assert small.seeds >= 3 and small.lambda_step / small.iters == paper.lambda_step / paper.iters
    assert "4" in small.train_experts and {"3", "5"} <= set(small.train_experts)
    assert set(small.variants) == {"focal", "reweight", "gafl", "gafl+reweight", "staple", "single"}
    assert [VARIANTS[v].annotator for v in ("focal", "reweight", "confusion", "gafl+confusion")] == [
        "none", "reweight", "confusion", "confusion"]
    assert VARIANTS["gafl+confusion"].loss == "gafl" and not VARIANTS["confusion"].reweight
    with pytest.raises(InputError, match="unknown preset field"):
        small.replace(iterations=3)
    with pytest.raises(InputError, match="unreliable"):
        small.replace(train_experts=("1", "3", "5")).validate()
    with pytest.raises(InputError, match="unknown preset"):
        get_preset("gpu-huge")


def test_cpu_noisy_preset_is_what_issue_10_asks():
    noisy = PRESETS["cpu-noisy"]
    assert noisy.panel == "noisy" and noisy.train_experts == ("A", "B", "C") and noisy.seeds >= 3
    assert set(noisy.variants) == {"focal", "gafl", "reweight", "confusion", "gafl+confusion", "confusion-trunk",
                                   "staple"}
    # the confusion model's default (heads, Zhang et al.'s objective) beside its earlier form (trunk, vote)
    assert VARIANTS["confusion"].loss_options == () and dict(VARIANTS["confusion-trunk"].loss_options) == {
        "confusion_form": "trunk", "confusion_objective": "vote", "confusion_nll": False}
    assert 0 < noisy.pair_fraction < 1 and noisy.single_expert == "oracle"
    assert noisy.lambda_step / noisy.iters == 0.1 and noisy.cpu_threads == 1
    assert [m for m, _ in noisy.models] == ["pspnet"] and noisy.size >= 160
    with pytest.raises(InputError, match="unreliable"):
        noisy.replace(train_experts=("A", "C")).validate()
    with pytest.raises(InputError, match="train_experts"):
        noisy.replace(train_experts=("A", "B", "3")).validate()
    with pytest.raises(InputError, match="pair_fraction"):
        PRESETS["cpu-small"].replace(pair_fraction=0.3).validate()
    with pytest.raises(InputError, match="unknown panel"):
        noisy.replace(panel="seven").validate()


def test_cli_parses_benchmark():
    from trainer.cli import build_parser

    a = build_parser().parse_args(["benchmark", "--preset", "cpu-small", "--out", "x", "--seeds", "3"])
    assert (a.preset, a.out, a.seeds, a.device) == ("cpu-small", "x", 3, "auto")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "--preset", "gpu-huge", "--out", "x"])
    for name in PRESETS:  # every preset is reachable from the command line
        assert build_parser().parse_args(["benchmark", "--preset", name, "--out", "x"]).preset == name


# --- the paper preset, one iteration of every variant -------------------------------------------

TINY = dict(size=64, iters=1, train_cores=4, test_cores=2, val_every=1, models=[("pspnet", "resnet18")])


@pytest.fixture(scope="module")
def tiny_paper(tmp_path_factory):
    from trainer.ablation.run import run_benchmark

    out = tmp_path_factory.mktemp("bench") / "paper tiny"
    results = run_benchmark("paper", out, seeds=1, device="cpu", command="pytest", log=lambda s: None, **TINY)
    return out, results


def test_paper_preset_runs_every_variant(tiny_paper):
    out, results = tiny_paper
    runs = results["runs"]
    assert sorted(r["variant"] for r in runs) == sorted(VARIANTS) and all(r["seed"] == 0 for r in runs)
    for r in runs:
        assert r["iterations"] == 1 and r["checkpoint"] == "best.pt"  # the paper tests its best checkpoint
        for ref in ("truth", "vote6"):  # the mean is over the classes the test cores hold
            dice = [d for d in r[f"dice_{ref}"].values() if d is not None]
            assert r[f"mean_dice_{ref}"] == pytest.approx(np.mean(dice))
        v = VARIANTS[r["variant"]]
        assert (r["auroc"] is not None) == (v.annotator != "none")
        assert (r["confusion_matrices"] is not None) == v.confusion
        assert r["config"]["loss"]["confusion"] == v.confusion and r["config"]["loss"]["reweight"] == v.reweight
        if r["auroc"]:
            assert set(r["auroc"]) == {"3", "4", "5"}
            detectors = {"1 − w"} if v.reweight else {"error (image only)", "error (given the label)",
                                                      "global: error (image only)", "global: error (given the label)"}
            assert set(r["auroc"]["3"]["scores"]) == detectors | {"1 − p(label written)", "1 − max p"}
            for d in detectors:
                assert set(r["auroc"]["3"]["scores"][d]["auroc_same_class"]) == {
                    "all", "borderline_g3_called_g4", "random_g4_patches_called_g3"}
        if r["confusion_matrices"]:
            assert set(r["confusion_matrices"]) == {"tissue"}  # the six experts' panel flags no biased area
            assert set(r["confusion_matrices_global"]) == {"tissue"}
    on_disk = json.loads((out / "results.json").read_text())
    for key in ("command", "git_commit", "machine", "date"):
        assert key in on_disk and key in results
    table = (out / "table.md").read_text()
    assert ("| Method | GAFL | Re-weighting | Confusion | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |"
            in table)
    assert "pytest" in table and "AUROC" in table and "on STAPLE" in table and "on expert" in table
    for name in ("weight_maps_reweight.png", "weight_maps_gafl-reweight.png", "error_maps_confusion.png",
                 "error_maps_gafl-confusion.png", "weights_over_iterations.png", "confusion_matrices.png"):
        assert (out / name).is_file() and f"]({name})" in table
    assert set(results["summary"]["pspnet"]) == set(VARIANTS)


def test_every_variant_sees_the_same_data_seeds_and_iterations(tiny_paper):
    out, results = tiny_paper
    runs = results["runs"]
    same = lambda f: len({json.dumps(f(r), sort_keys=True) for r in runs}) == 1  # noqa: E731
    assert same(lambda r: r["data_fingerprint"])  # same training images, same order
    assert same(lambda r: {k: r["counts"][k] for k in ("train", "val")})
    assert same(lambda r: {k: v for k, v in r["config"]["train"].items() if k != "out"})
    assert same(lambda r: r["config"]["data"]["size"])
    assert same(lambda r: {k: r["config"]["loss"][k] for k in ("lambda_step", "gamma", "weight_stride",
                                                                   "weight_input_scale")})
    # the plan for three seeds: every variant gets seeds 0, 1, 2 and otherwise identical schedules
    preset = PRESETS["paper"].replace(seeds=3, **TINY)
    data = prepare_data(out, preset, log=lambda s: None)
    plans = plan_runs(preset, data, out, "cpu")
    assert len(plans) == 3 * len(VARIANTS)
    for v in VARIANTS:
        mine = [p for p in plans if p.variant == v]
        assert [p.seed for p in mine] == [0, 1, 2] == [p.cfg.train.seed for p in mine]
    for seed in range(3):
        cfgs = [p.cfg.to_dict()["train"] for p in plans if p.seed == seed]
        assert len({json.dumps({k: v for k, v in c.items() if k != "out"}, sort_keys=True) for c in cfgs}) == 1
    # and the same batches: the sampler depends only on the number of training cores and the seed
    from trainer.data.dataset import IterationSampler

    n = runs[0]["counts"]["train"]
    assert [IterationSampler(n, 2, 1, 0, 3).batch_for(i) for i in range(3)] == [
        IterationSampler(n, 2, 1, 0, 3).batch_for(i) for i in range(3)]
    # vote variants train on the training experts of the dataset; consensus variants on one annotator
    for r in runs:
        experts = r["experts"]
        labels = VARIANTS[r["variant"]].labels
        assert experts == (["3", "4", "5"] if labels == "vote" else ["staple"] if labels == "staple"
                           else [results["data"]["single_expert"]])
    # every variant is trained on the same split, and none sees a test core
    split = json.loads((out / "split.json").read_text())
    derived = json.loads((out / "split_train.json").read_text())
    assert derived["train"] == split["train"] and derived["val"] == split["val"] and not derived["test"]
    assert not set(split["test"]) & set(split["train"] + split["val"])


def test_an_interrupted_benchmark_continues_without_retraining(tiny_paper):
    from trainer.ablation.run import run_benchmark

    out, results = tiny_paper
    seen = []
    again = run_benchmark("paper", out, seeds=1, device="cpu", command="pytest", log=seen.append, **TINY)
    assert sum("reusing" in s for s in seen) == len(results["runs"]) + 1  # the data and every run
    assert [r["mean_dice_truth"] for r in again["runs"]] == [r["mean_dice_truth"] for r in results["runs"]]
    # a run scored by an older version of the scoring is scored again from its checkpoint, not retrained
    stale = out / "runs" / "pspnet" / "confusion" / "seed0" / "result.json"
    record = json.loads(stale.read_text())
    stale.write_text(json.dumps({**record, "scoring_version": 1, "auroc": None}))
    seen = []
    rescored = run_benchmark("paper", out, seeds=1, device="cpu", command="pytest", log=seen.append, **TINY)
    assert sum("scoring" in s and "again" in s for s in seen) == 1 and not any("training" in s for s in seen)
    fresh = json.loads(stale.read_text())
    assert fresh["scoring_version"] == SCORING_VERSION and fresh["train_seconds"] == record["train_seconds"]
    assert fresh["auroc"] == record["auroc"]  # the same checkpoint scores the same
    assert len(rescored["runs"]) == len(results["runs"])
    with pytest.raises(InputError, match="other data settings"):
        run_benchmark("paper", out, seeds=1, device="cpu", log=lambda s: None, **{**TINY, "size": 96})
    with pytest.raises(InputError, match="not empty"):
        run_benchmark("paper", out / "runs", seeds=1, device="cpu", log=lambda s: None, **TINY)


# --- the cpu-noisy preset on tiny inputs (issue 10) ---------------------------------------------

NOISY_TINY = dict(size=64, iters=2, train_cores=6, test_cores=4, val_every=2, lambda_step=1,
                  variants=("focal", "reweight", "confusion", "staple", "single"))


@pytest.fixture(scope="module")
def tiny_noisy(tmp_path_factory):
    from trainer.ablation.run import run_benchmark

    out = tmp_path_factory.mktemp("bench") / "noisy tiny"
    results = run_benchmark("cpu-noisy", out, seeds=1, device="cpu", command="pytest noisy", log=lambda s: None,
                            **NOISY_TINY)
    return out, results


def test_noisy_preset_data_has_pairs_ties_and_an_oracle_single_expert(tiny_noisy):
    out, results = tiny_noisy
    data = results["data"]
    assert data["panel"] == "noisy" and set(data["experts"]) == {"A", "B", "C"}
    info = json.loads((out / "data" / "synthetic.json").read_text())
    experts = {c["name"]: c["experts"] for c in info["cores"]}
    split = data["split"]
    assert any(len(experts[n]) == 2 for n in split["test"]) and any(len(experts[n]) == 2 for n in split["train"])
    assert 0 < data["label_quality_on_test"]["tie_fraction_of_tissue"] < 1
    # the oracle single expert is the training expert closest to the truth; it trains on its own cores only
    meta = json.loads((out / "data.json").read_text())
    assert data["single_expert"] == max(meta["accuracy_on_tissue"], key=meta["accuracy_on_tissue"].get)
    single_split = json.loads((out / "split_single.json").read_text())
    assert single_split["train"] and all(data["single_expert"] in experts[n] for n in single_split["train"])
    assert set(data["panel_statistics"]["pairwise_kappa"]) == {"A-B", "A-C", "B-C"}


def test_noisy_preset_scores_ties_kinds_and_matrices(tiny_noisy):
    out, results = tiny_noisy
    runs = {r["variant"]: r for r in results["runs"]}
    assert set(runs) == set(NOISY_TINY["variants"])
    for r in runs.values():
        assert set(r["dice_truth_ties"]) == {"benign", "G3", "G4", "G5"}
        assert r["experts"] == (["A", "B", "C"] if VARIANTS[r["variant"]].labels == "vote"
                                else ["staple"] if r["variant"] == "staple" else [results["data"]["single_expert"]])
    kinds = set(runs["confusion"]["auroc"]["C"]["scores"]["error (image only)"]["auroc_same_class"])
    assert kinds == {"all", "foamy_g3_missed", "poorly_formed_g4_called_g3", "outline"}
    assert "unreliable_random" in runs["reweight"]["auroc"]["B"]["scores"]["1 − w"]["auroc"]
    matrices = runs["confusion"]["confusion_matrices"]
    assert "tissue" in matrices and set(matrices["tissue"]) == {"A", "B", "C"}
    biased = set(matrices) - {"tissue"}
    assert biased and biased <= {"textured_g3_called_g4", "foamy_g3_missed", "poorly_formed_g4_called_g3"}
    glob = runs["confusion"]["confusion_matrices_global"]
    assert set(glob) == set(matrices)
    for area, experts in glob.items():
        for e, m in experts.items():
            # the global model's estimate on any area is its one matrix, transposed to rows = truth
            np.testing.assert_allclose(m["estimated"], np.array(runs["confusion"]["global_matrices"][e]).T)
            assert m["true"] == matrices[area][e]["true"]
    summary = results["summary"]["pspnet"]
    assert "truth_ties" in summary["focal"] and "confusion_matrices_global" in summary["confusion"]
    assert all(r["scoring_version"] == SCORING_VERSION for r in runs.values())
    assert {d for r in runs.values() for e in (r["auroc"] or {}).values() for d in e["scores"]} <= set(
        results["detectors"])
    table = (out / "table.md").read_text()
    for text in ("on the tie pixels", "Cohen's κ", "Estimated against true confusion matrices", "### All tissue",
                 "### Against same-true-class negatives", "global: error (given the label)", "1 − p(label written)",
                 "whole tissue", "max abs diff, global", "foamy_g3_missed", "on expert"):
        assert text in table, text
    assert "net right" not in table and "0.97" not in table
    for name in ("weight_maps_reweight.png", "error_maps_confusion.png", "confusion_matrices.png",
                 "dice_overall_and_ties.png", "weights_over_iterations.png"):
        assert (out / name).is_file() and f"]({name})" in table


def test_noisy_preset_numbers_match_an_independent_recomputation(tiny_noisy):
    """From the confusion run's checkpoint, recomputed outside the benchmark's code: the global
    matrices (soft counts over the training cores), the whole-tissue true matrix, the figure core's
    maps (the pixel-wise ones through the older predict_core path) and a pooled baseline AUROC."""
    from sklearn.metrics import roc_auc_score

    from trainer.annotators.global_confusion import global_error_map
    from trainer.ablation.data import test_core_labels
    from trainer.data import open_dataset
    from trainer.data.io import read_image
    from trainer.data.records import load_core
    from trainer.inference import load_predictor, predict_core
    from trainer.tissue import tissue_mask

    out, results = tiny_noisy
    run = next(r for r in results["runs"] if r["variant"] == "confusion")
    pred = load_predictor(out / "runs" / "pspnet" / "confusion" / "seed0" / run["checkpoint"], "cpu")
    ds = open_dataset(out / "data")
    split = results["data"]["split"]
    c = 4

    def probs_of(name):
        return predict_core(pred, read_image(ds.core(name).image_path)).probabilities.astype(np.float64)

    num = {e: np.zeros((c, c)) for e in "ABC"}  # [label, truth]
    for name in split["train"]:
        masks = load_core(ds.core(name), ds.scheme).masks
        p = probs_of(name)
        tissue = tissue_mask(read_image(ds.core(name).image_path))
        for e, lab in masks.items():
            onehot = np.eye(c)[lab] * tissue[..., None]  # H×W×C(label)
            num[e] += np.einsum("hwi,jhw->ij", onehot, p)
    for e in "ABC":
        np.testing.assert_allclose(run["global_matrices"][e], num[e] / num[e].sum(0), rtol=1e-4, atol=1e-6)

    true = np.zeros((c, c))
    hits = {"pos": [], "score": []}
    for name in split["test"]:
        t = test_core_labels(out / "data", ds, name)
        if "A" not in t["masks"]:
            continue
        lab, truth, tissue = t["masks"]["A"], t["truth"], t["tissue"]
        np.add.at(true, (truth[tissue], lab[tissue]), 1)
        p = probs_of(name)
        hits["pos"].append((lab != truth)[tissue])
        hits["score"].append((1 - p.max(0))[tissue])
    np.testing.assert_allclose(run["confusion_matrices"]["tissue"]["A"]["true"], true / true.sum(1, keepdims=True))
    want = roc_auc_score(np.concatenate(hits["pos"]), np.concatenate(hits["score"]))
    assert run["auroc"]["A"]["scores"]["1 − max p"]["auroc"]["all"] == pytest.approx(want, abs=1e-4)

    fig = np.load(out / "runs" / "pspnet" / "confusion" / "seed0" / "figure_core.npz")
    names = [str(n) for n in fig["map_names"]]
    experts = [str(e) for e in fig["experts"]]
    labels = {e: fig["labels"][k] for k, e in enumerate(experts)}
    old = predict_core(pred, fig["image"], experts=tuple(experts), labels=labels)
    p = old.probabilities
    for k, e in enumerate(experts):
        maps = dict(zip(names, fig["maps"][k]))
        m = np.array(run["global_matrices"][e])
        np.testing.assert_allclose(maps["error (given the label)"], old.errors[e], atol=1e-5)
        np.testing.assert_allclose(maps["error (image only)"], old.errors_prior[e], atol=1e-5)
        np.testing.assert_allclose(maps["global: error (given the label)"], global_error_map(p, m, labels[e]),
                                   atol=1e-5)
        np.testing.assert_allclose(maps["global: error (image only)"], global_error_map(p, m), atol=1e-5)
        np.testing.assert_allclose(maps["1 − p(label written)"],
                                   1 - np.take_along_axis(p, labels[e][None].astype(int), 0)[0], atol=1e-5)
