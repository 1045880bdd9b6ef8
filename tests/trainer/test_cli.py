"""The CLI: subcommands end to end on tiny data (bad input, exit code 2 with one line: the catalogue)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.cli import main
from trainer.data import open_dataset

from tests.paths import SAMPLES


def run_cli(*args):
    """Run in a subprocess, as a user would; returns (code, stdout, stderr)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    p = subprocess.run([sys.executable, "-m", "trainer", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=600, check=False)
    return p.returncode, p.stdout, p.stderr


def test_help_lists_subcommands():
    code, out, _ = run_cli("--help")
    assert code == 0
    for sub in ("synth", "split", "train", "predict", "evaluate"):
        assert sub in out


def test_split_prints_counts(synthetic_data, tmp_path, capsys):
    assert main(["split", "--data", str(synthetic_data), "--out", str(tmp_path / "split.json")]) == 0
    out = capsys.readouterr().out
    split = json.loads((tmp_path / "split.json").read_text())
    ds = open_dataset(synthetic_data)
    assert f"test {len(split['test'])}" in out and f"train {len(split['train'])}" in out
    assert all(len(ds.core(n).masks) == len(ds.experts) for n in split["test"])


@pytest.mark.parametrize("model", ["hrnet18", "hrnet48", "unet", "deeplabv3plus", "pspnet"])
def test_train_each_table2_model_on_sample_data(model, tmp_path, capsys):
    sample = SAMPLES
    args = ["train", "--data", str(sample), "--model", model, "--iters", "2", "--size", "64",
            "--device", "cpu", "--out", str(tmp_path / model), "--val-every", "2"]
    assert main(args) == 0
    ck = torch.load(tmp_path / model / "last.pt", weights_only=True)
    assert ck["model_config"]["name"] == model and ck["iteration"] == 2
    assert ck["weighting"] is not None  # GAFL + re-weighting are the defaults


def test_resume_continues_to_more_iterations(synthetic_data, tmp_path, capsys):
    run = tmp_path / "r"
    base = ["train", "--data", str(synthetic_data), "--model", "pspnet", "--encoder", "resnet18", "--size", "64",
            "--device", "cpu", "--out", str(run), "--no-reweight", "--loss", "focal"]
    assert main(base + ["--iters", "2"]) == 0
    assert main(["train", "--resume", str(run), "--iters", "4"]) == 0
    assert torch.load(run / "last.pt", weights_only=True)["iteration"] == 4
    iters = [json.loads(l)["iteration"] for l in (run / "events.jsonl").read_text().splitlines()
             if json.loads(l)["kind"] == "IterationDone"]
    assert iters == [1, 2, 3, 4]


def test_config_file_and_flag_override(synthetic_data, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  path: '{synthetic_data}'\n  size: 64\nmodel:\n  name: pspnet\n  encoder: resnet18\n"
                   "train:\n  iters: 5\n  device: cpu\nloss:\n  loss: focal\n  reweight: false\n")
    assert main(["train", "--config", str(cfg), "--iters", "1", "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["iters"] == 1 and saved["model"]["name"] == "pspnet" and saved["loss"]["reweight"] is False


def test_predict_writes_gleason_png_probabilities_and_weights(tiny_run, synthetic_data, tmp_path):
    image = next((Path(synthetic_data) / "Train Imgs").glob("*.jpg"))
    code, _, err = run_cli("predict", "--checkpoint", Path(tiny_run) / "last.pt", "--image", image,
                             "--out", tmp_path / "pred", "--device", "cpu")
    assert code == 0, err
    h, w = np.asarray(Image.open(image)).shape[:2]
    png = np.asarray(Image.open(tmp_path / "pred" / f"{image.stem}_classimg_nonconvex.png"))
    assert png.shape == (h, w) and set(np.unique(png)) <= {1, 3, 4, 5}
    probs = np.load(tmp_path / "pred" / f"{image.stem}_probabilities.npy")
    assert probs.shape == (4, h, w)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
    # the class map is the argmax of the probabilities, written in Gleason values
    lut = np.array([1, 3, 4, 5])
    assert (lut[probs.argmax(0)] == png).mean() > 0.999
    weights = np.load(tmp_path / "pred" / f"{image.stem}_weights.npy")
    assert weights.shape == (3, h, w)
    np.testing.assert_allclose(weights.sum(0), 1, atol=1e-4)
    meta = json.loads((tmp_path / "pred" / f"{image.stem}_prediction.json").read_text())
    assert meta["experts"] == ["1", "3", "4"]  # (a second run refuses to overwrite: the bad-input catalogue)


def test_predict_names_generic_outputs_in_the_datasets_convention(tmp_path, capsys):
    """A model of a generic set (classes.json: 10/20/30) writes ``<name>.png`` in those values, in or out
    of the dataset; never into an annotator's folder."""
    import shutil

    from tests.fakes import make_fake_generic

    names = tuple(f"c{i}" for i in range(5))
    classes = {"classes": ["stroma", "tumour", "other"], "values": {"10": 0, "20": 1, "30": 2},
               "export_values": [10, 20, 30]}
    root = make_fake_generic(tmp_path / "gen", {"a": names, "b": names}, extra_images=(), classes=classes).root
    assert main(["train", "--data", str(root), "--model", "pspnet", "--encoder", "resnet18", "--size", "32",
                 "--iters", "1", "--device", "cpu", "--no-reweight", "--loss", "focal",
                 "--out", str(tmp_path / "run")]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = shutil.copy(root / "images" / "c0.png", elsewhere / "c0.png")
    for image, out in ((root / "images" / "c1.png", tmp_path / "pred"), (outside, tmp_path / "pred2")):
        assert main(["predict", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--image", str(image),
                     "--out", str(out), "--device", "cpu"]) == 0
        stem = Path(image).stem
        assert sorted(p.name for p in out.glob("*.png")) == [f"{stem}.png"]
        png = np.asarray(Image.open(out / f"{stem}.png"))
        probs = np.load(out / f"{stem}_probabilities.npy")
        assert png.shape == probs.shape[1:] and set(np.unique(png)) <= {10, 20, 30}
        assert (np.array([10, 20, 30])[probs.argmax(0)] == png).mean() > 0.999
    capsys.readouterr()
    before = sorted(p.name for p in (root / "masks" / "a").iterdir())
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--image",
                 str(root / "images" / "c2.png"),
                 "--out", str(root / "masks" / "a" / ".." / "a"), "--device", "cpu"]) == 2
    assert "expert's folder" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "masks" / "a").iterdir()) == before
    image = (root / "images" / "c3.png").read_bytes()
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--image", str(root / "images" / "c3.png"),
                 "--out", str(root / "images"), "--device", "cpu", "--overwrite"]) == 2
    assert "replace its own image" in capsys.readouterr().err
    assert (root / "images" / "c3.png").read_bytes() == image


def test_predict_with_confusion_writes_error_maps_and_matrices(tiny_confusion_run, synthetic_data, tmp_path):
    image = next((Path(synthetic_data) / "Train Imgs").glob("*.jpg"))
    code, _, err = run_cli("predict", "--checkpoint", Path(tiny_confusion_run) / "last.pt", "--image", image,
                           "--out", tmp_path / "pred", "--device", "cpu")
    assert code == 0, err
    h, w = np.asarray(Image.open(image)).shape[:2]
    errors = np.load(tmp_path / "pred" / f"{image.stem}_errors.npy")
    assert errors.shape == (3, h, w) and errors.dtype == np.float32
    assert errors.min() >= 0 and errors.max() <= 1
    assert not (tmp_path / "pred" / f"{image.stem}_weights.npy").exists()  # no weighting CNN in this run
    meta = json.loads((tmp_path / "pred" / f"{image.stem}_prediction.json").read_text())
    assert meta["experts"] == ["1", "3", "4"]
    for matrix in meta["confusion"].values():  # rows: true class → the labels written, in %/100
        rows = [r for r in matrix if None not in r]
        assert len(matrix) == 4 and rows and all(abs(sum(r) - 1) < 1e-3 for r in rows)
    # the image lies in its dataset: the file holds each expert's map *given its label*, as predict()
    # computes it with the core's masks, and the image-only maps lie beside it — named as such
    from trainer.data import open_dataset
    from trainer.data.records import load_core
    from trainer.prediction.predictor import load_predictor
    from trainer.prediction import predict
    from trainer.resample import resize_nearest

    assert meta["errors_map"] == {e: "given the expert's label" for e in ("1", "3", "4")}
    ds = open_dataset(synthetic_data)
    core = load_core(ds.core(image.stem), ds.scheme)
    want = predict(load_predictor(Path(tiny_confusion_run) / "last.pt", "cpu"), core.image, core=image.stem,
                   experts=list(core.masks), labels=core.masks)
    prior = np.load(tmp_path / "pred" / f"{image.stem}_errors_image_only.npy")
    for k, e in enumerate(("1", "3", "4")):
        np.testing.assert_allclose(errors[k], resize_nearest(want.errors[e], (h, w)), atol=1e-5)
        np.testing.assert_allclose(prior[k], resize_nearest(want.errors_prior[e], (h, w)), atol=1e-5)
    assert not np.allclose(errors, prior, atol=1e-3)  # the label changes the map


def test_evaluate_writes_table2_json(tiny_run, synthetic_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(Path(tiny_run) / "best.pt"), "--data", str(synthetic_data),
                 "--json", str(out), "--device", "cpu", "--size", "64"]) == 0
    res = json.loads(out.read_text())
    assert set(res["dice"]) == {"benign", "G3", "G4", "G5"}
    assert res["cores"] >= 1 and 0 <= res["mean_dice"] <= 1
    assert set(res["model_vs_expert"]) == {"1", "2", "3", "4", "5", "6"}
    assert "1-2" in res["expert_pairs_kappa"]
    assert "| mean Dice |" in capsys.readouterr().out


def test_sigterm_stops_at_an_iteration_boundary_and_keeps_last_pt(synthetic_data, tmp_path):
    import signal
    import time

    run = tmp_path / "r"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--data", str(synthetic_data), "--model", "pspnet",
                          "--encoder", "resnet18", "--size", "64", "--iters", "500", "--device", "cpu",
                          "--out", str(run), "--checkpoint-every", "1000", "--val-every", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = run / "events.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and "IterationDone" in log.read_text()):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "stopped at iteration" in out
    ck = torch.load(run / "last.pt", weights_only=True)
    assert 1 <= ck["iteration"] < 500


def test_one_builder_and_the_engine_refuse_a_fresh_run_in_a_folder_holding_one(synthetic_data, tmp_path):
    """The run-folder rule is the engine's: even a config built around the builder cannot overwrite
    another run's checkpoints; resuming is allowed; the old run's files stay as they were."""
    from trainer.config import RunConfig, build_run_config
    from trainer.engine import train
    from trainer.errors import InputError

    run = tmp_path / "old run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"another run's weights")
    over = {"data": {"path": str(synthetic_data)}, "train": {"out": str(run), "iters": 3}}
    with pytest.raises(InputError, match="old run: this folder already holds a run"):
        build_run_config({}, over)
    assert build_run_config({}, over, resume=True).train.out == str(run)
    cfg = RunConfig.from_dict(over)  # no builder: the engine itself refuses, before any work
    with pytest.raises(InputError, match="already holds a run"):
        next(train(cfg))
    (tmp_path / "a file").write_text("x")
    with pytest.raises(InputError, match="a file: the output is a file, not a folder"):
        build_run_config({}, {"train": {"out": str(tmp_path / "a file")}})
    assert (run / "last.pt").read_bytes() == b"another run's weights" and sorted(p.name for p in run.iterdir()) == [
        "last.pt"]
    # flags override the file, None (a flag not given) does not
    cfg = build_run_config({"train": {"iters": 7, "lr": 0.5}}, {"train": {"iters": None, "lr": 0.1}})
    assert (cfg.train.iters, cfg.train.lr) == (7, 0.1)


def test_version_strict_json_and_the_runs_name(tiny_run, synthetic_data, tmp_path, capsys):
    """``--version``; ``eval.json`` is strict JSON (a class no core has gives null, never NaN); the
    Table-2 row is named after the run that wrote the checkpoint, not the folder the file lies in."""
    import shutil

    from trainer import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out
    moved = tmp_path / "shared models" / "model.pt"
    moved.parent.mkdir()
    shutil.copy(Path(tiny_run) / "best.pt", moved)
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(moved), "--data", str(synthetic_data), "--json", str(out),
                 "--device", "cpu", "--size", "64"]) == 0
    text = out.read_text()

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    res = json.loads(text, parse_constant=refuse)
    assert res["run"] == Path(tiny_run).name
    assert f"| {Path(tiny_run).name} |" in capsys.readouterr().out


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from trainer.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [(name, act.option_strings or act.dest) for name, sp in sub.choices.items() for act in sp._actions
               if not isinstance(act, argparse._HelpAction) and not act.help]
    assert missing == []


def test_help_is_plain_text(capsys):
    """The top-level help is words, not the module docstring's reStructuredText."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and "Exit codes" in out
