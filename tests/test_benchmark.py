"""The noisy-label benchmark: AUROC by hand and against scikit-learn, error kinds, the bookkeeping
that every variant sees the same data, seeds and iterations, and the `paper` preset end to end for
one iteration of every variant on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.benchmark import PRESETS, VARIANTS, get_preset
from trainer.benchmark.auroc import AurocPool, auroc, average_ranks, error_kinds
from trainer.benchmark.data import prepare_data
from trainer.benchmark.run import plan_runs
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
    good = np.where(label != truth, 0.1, 0.6)  # low weight exactly where it is wrong
    pool = AurocPool(("4",))
    pool.add("4", good, label, truth, np.zeros_like(truth), tissue)
    r = pool.result()["4"]
    assert r["auroc"]["all"] == 1.0 and r["error_fraction"]["all"] == pytest.approx(14 / 56)
    assert r["mean_weight_wrong"] == pytest.approx(0.1) and r["mean_weight_right"] == pytest.approx(0.6)


# --- presets ------------------------------------------------------------------------------------


def test_presets():
    small, paper = PRESETS["cpu-small"], PRESETS["paper"]
    small.validate(), paper.validate()
    assert (paper.size, paper.batch_size, paper.iters, paper.lr, paper.lambda_step) == (1024, 2, 10_000, 0.01, 1000)
    assert [m for m, _ in paper.models] == ["hrnet18", "hrnet48"] and paper.weight_stride == 32
    assert small.seeds >= 3 and small.lambda_step / small.iters == paper.lambda_step / paper.iters
    assert "4" in small.train_experts and {"3", "5"} <= set(small.train_experts)
    assert set(small.variants) == set(VARIANTS) == {"focal", "reweight", "gafl", "gafl+reweight", "staple", "single"}
    with pytest.raises(InputError, match="unknown preset field"):
        small.replace(iterations=3)
    with pytest.raises(InputError, match="unreliable"):
        small.replace(train_experts=("1", "3", "5")).validate()
    with pytest.raises(InputError, match="unknown preset"):
        get_preset("gpu-huge")


def test_cli_parses_benchmark():
    from trainer.cli import build_parser

    a = build_parser().parse_args(["benchmark", "--preset", "cpu-small", "--out", "x", "--seeds", "3"])
    assert (a.preset, a.out, a.seeds, a.device) == ("cpu-small", "x", 3, "auto")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "--preset", "gpu-huge", "--out", "x"])


# --- the paper preset, one iteration of every variant -------------------------------------------

TINY = dict(size=64, iters=1, train_cores=4, test_cores=2, val_every=1, models=[("pspnet", "resnet18")])


@pytest.fixture(scope="module")
def tiny_paper(tmp_path_factory):
    from trainer.benchmark.run import run_benchmark

    out = tmp_path_factory.mktemp("bench") / "paper tiny"
    results = run_benchmark("paper", out, seeds=1, device="cpu", command="pytest", log=lambda s: None, **TINY)
    return out, results


def test_paper_preset_runs_every_variant(tiny_paper):
    out, results = tiny_paper
    runs = results["runs"]
    assert sorted(r["variant"] for r in runs) == sorted(VARIANTS) and all(r["seed"] == 0 for r in runs)
    for r in runs:
        assert r["iterations"] == 1 and r["checkpoint"] == "best.pt"  # the paper tests its best checkpoint
        assert 0 <= r["mean_dice_truth"] <= 1 and 0 <= r["mean_dice_vote6"] <= 1
        assert (r["auroc"] is not None) == VARIANTS[r["variant"]].reweight
        if r["auroc"]:
            assert set(r["auroc"]) == {"3", "4", "5"}
            assert {"all", "borderline_g3_called_g4"} <= set(r["auroc"]["3"]["auroc"])
    on_disk = json.loads((out / "results.json").read_text())
    for key in ("command", "git_commit", "machine", "date"):
        assert key in on_disk and key in results
    table = (out / "table.md").read_text()
    assert "| Method | GAFL | Re-weighting | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |" in table
    assert "pytest" in table and "AUROC" in table and "on STAPLE" in table and "on expert" in table
    for name in ("weight_maps_reweight.png", "weight_maps_gafl-reweight.png", "weights_over_iterations.png"):
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
    assert same(lambda r: {k: r["config"]["loss"][k] for k in ("lambda_step", "gamma", "weight_stride")})
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
    from trainer.benchmark.run import run_benchmark

    out, results = tiny_paper
    seen = []
    again = run_benchmark("paper", out, seeds=1, device="cpu", command="pytest", log=seen.append, **TINY)
    assert sum("reusing" in s for s in seen) == len(results["runs"]) + 1  # the data and every run
    assert [r["mean_dice_truth"] for r in again["runs"]] == [r["mean_dice_truth"] for r in results["runs"]]
    with pytest.raises(InputError, match="other data settings"):
        run_benchmark("paper", out, seeds=1, device="cpu", log=lambda s: None, **{**TINY, "size": 96})
    with pytest.raises(InputError, match="not empty"):
        run_benchmark("paper", out / "runs", seeds=1, device="cpu", log=lambda s: None, **TINY)
