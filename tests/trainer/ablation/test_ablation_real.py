"""The cpu-real benchmark (trainer.ablation.real) on a tiny fake BU-BIL set: structure, and numbers checked by hand."""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest

from trainer.ablation.real import RealPreset, split_images
from trainer.resample import resize_nearest
from trainer.errors import InputError

from tests.fakes_bubil import write_fake_bubil

SIZE = 64


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Both variants, one seed, 2 iterations at 64²."""
    from trainer.ablation.real import run_real_benchmark

    root = tmp_path_factory.mktemp("real")
    data = root / "bu-bil-dataset1"
    written = write_fake_bubil(data, images=6)
    out = root / "bench"
    run_real_benchmark("cpu-real", out, seeds=1, device="cpu", data=data, log=lambda s: None, size=SIZE, iters=2)
    return data, written, out


def test_cli_dispatches_cpu_real(monkeypatch, tmp_path):
    import trainer.ablation.real as real
    from trainer.ablation.cli import run_command

    calls = []

    def fake(preset, out, **kw):
        calls.append((preset, out, kw))
        return {"wall_seconds_this_invocation": 0.0}

    monkeypatch.setattr(real, "run_real_benchmark", fake)
    assert run_command(Namespace(preset="cpu-real", out=str(tmp_path), seeds=2, device="cpu")) == 0
    [(preset, out, kw)] = calls
    assert (preset, out, kw["seeds"], kw["device"]) == ("cpu-real", str(tmp_path), 2, "cpu")
    assert kw["command"] == f"python -m trainer ablation --preset cpu-real --out {tmp_path} --seeds 2 --device cpu"


def _strict(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"{name} in results.json")

    return json.loads(text, parse_constant=refuse)


def test_structure_and_strict_json(smoke):
    data, written, out = smoke
    results = _strict((out / "results.json").read_text())
    for key in ("command", "git_commit", "cpu", "date", "wall_seconds_this_invocation"):
        assert key in results
    assert results["command"].startswith("python -m trainer ablation --preset cpu-real")
    split = results["data"]["split"]
    assert len(split["train"]) == 4 and len(split["test"]) == 2  # two thirds of 6
    assert not set(split["train"]) & set(split["test"])
    assert [r["variant"] for r in results["runs"]] == ["confusion", "focal"]
    experts = results["data"]["experts"]
    assert experts == ["Person1_Amira", "Person1_ImageJ", "Person2_Amira", "Person10_ImageJ"]
    for run in results["runs"]:
        # training read the experts' masks and the split file only: gold is not a training expert
        assert run["config"]["data"]["path"] == str(data)
        assert run["config"]["loss"]["confusion"] is (run["variant"] == "confusion")
        for subset in ("test", "train"):
            s = run[subset]
            assert set(s["dice"]["per_class"]) == {"background", "cell"}
            for e in experts:
                x = s["experts"][e]
                baselines = {"1 − p(label written)", "1 − max p", "global matrix, given the label",
                             "global matrix, image only"}
                model = {"error map, given the label", "error map, image only"}
                want = baselines | model if run["variant"] == "confusion" else baselines
                assert set(x["auroc_all"]) == want and set(x["auroc_same_gold_class"]) == want
            # global matrices: columns are distributions over the label written
            for m in s["global_matrices"].values():
                np.testing.assert_allclose(np.sum(m, axis=0), 1.0, atol=1e-9)
    conf = results["runs"][0]
    assert conf["annotator_model"] is True and results["runs"][1]["annotator_model"] is False
    assert conf["test"]["spearman"]["error map, image only"] is None or -1 <= conf["test"]["spearman"][
        "error map, image only"] <= 1
    assert results["runs"][1]["test"]["spearman"]["error map, image only"] is None  # no annotator model
    table = (out / "table.md").read_text()
    assert "## Test images" in table and "## Training images" in table and "Spearman" in table
    assert "gold standard is used only here" in table


def test_expert_error_rates_and_dice_match_a_hand_computation(smoke):
    data, written, out = smoke
    results = _strict((out / "results.json").read_text())
    gold, masks = written["gold"], written["masks"]
    for subset in ("test", "train"):
        names = results["data"]["split"][subset]
        ref = results["reference"][subset]["experts"]
        for expert, by_core in masks.items():
            cores = [n for n in names if n in by_core]  # Person2_Amira lacks B03
            wrong_full = sum(int((by_core[n] != gold[n]).sum()) for n in cores)
            total_full = sum(gold[n].size for n in cores)
            assert ref[expert]["error_rate_full_size"] == pytest.approx(wrong_full / total_full, abs=1e-12)
            small = [resize_nearest(np.stack([gold[n], by_core[n]]), SIZE) for n in cores]
            wrong = sum(int((g != m).sum()) for g, m in small)
            assert ref[expert]["error_rate"] == pytest.approx(wrong / (len(cores) * SIZE * SIZE), abs=1e-12)
            for run in results["runs"]:
                assert run[subset]["experts"][expert]["error_rate"] == pytest.approx(ref[expert]["error_rate"])
                assert run[subset]["experts"][expert]["wrong_pixels"] == wrong
            tp = sum(int(((g == 1) & (m == 1)).sum()) for g, m in small)
            cell = 2 * tp / sum(int((g == 1).sum() + (m == 1).sum()) for g, m in small)
            assert ref[expert]["dice"]["per_class"]["cell"] == pytest.approx(cell)
        # the exact expert is the gold standard; the others depart from it
        assert ref["Person1_Amira"]["error_rate_full_size"] == 0.0
        assert ref["Person1_Amira"]["dice"]["mean"] == 1.0
        assert all(ref[e]["error_rate_full_size"] > 0 for e in ("Person1_ImageJ", "Person2_Amira", "Person10_ImageJ"))
        # an expert without departures has no AUROC: null, never NaN
        assert results["runs"][0][subset]["experts"]["Person1_Amira"]["auroc_all"]["1 − max p"] is None


def test_rerun_reuses_finished_runs(smoke):
    from trainer.ablation.real import run_real_benchmark

    data, _, out = smoke
    before = (out / "runs" / "confusion" / "seed0" / "result.json").read_text()
    said: list[str] = []
    run_real_benchmark("cpu-real", out, seeds=1, device="cpu", data=data, log=said.append, size=SIZE, iters=2)
    assert sum("reusing" in s for s in said) == 2 and not any("training 2 iterations" in s for s in said)
    assert (out / "runs" / "confusion" / "seed0" / "result.json").read_text() == before


def test_split_and_bad_input(tmp_path):
    train, test = split_images([f"B{k:02d}" for k in range(1, 36)], 2 / 3, 0)
    assert (len(train), len(test)) == (23, 12) and not set(train) & set(test)
    assert split_images([f"B{k:02d}" for k in range(1, 36)], 2 / 3, 0) == (train, test)  # seeded
    from trainer.ablation.real import run_real_benchmark

    with pytest.raises(InputError, match="BU-BIL dataset 1 not found"):
        run_real_benchmark("cpu-real", tmp_path / "out", data=tmp_path / "absent")
    with pytest.raises(InputError, match="unknown cpu-real settings"):
        RealPreset().replace(colour="red")
