"""The ablation study (its scores: tests/trainer/ablation/test_ablation_scores.py): the bookkeeping that every
variant sees the same data, seeds and iterations, the `paper` preset end to end for one iteration of every variant on tiny inputs, and the
`cpu-noisy` preset (issue 10) end to end on tiny inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.ablation import PRESETS, VARIANTS, get_preset
from trainer.ablation.data import prepare_data
from trainer.ablation.run import SCORING_VERSION, plan_runs
from trainer.errors import InputError

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
    from trainer.prediction.predictor import load_predictor, predict_core
    from trainer.prediction.tissue import tissue_mask

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
