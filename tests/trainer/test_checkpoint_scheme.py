"""A checkpoint is used only on data with its classes: predict, evaluate, summarize and fine-tuning
refuse a dataset whose classes differ, in one line naming the checkpoint and the dataset, and write
nothing (a Gleason model's values 1, 3, 4, 5 would otherwise land in another dataset's convention)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import make_fake_generic
from trainer.cli import main

CROWD = {"classes": ["background", "tumor", "stroma", "inflammatory", "necrosis"],
         "values": {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4}, "ignore": [5]}
# Four classes like Gleason's, other names: the weights would load, the meaning would not.
FOUR = {"classes": ["background", "tumor", "stroma", "other"], "values": {"0": 0, "1": 1, "2": 2, "3": 3}}
ANNOTATORS = {"a": ("c1", "c2", "c3", "c4"), "b": ("c1", "c2", "c3", "c4")}


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("classes", [CROWD, FOUR], ids=["5 classes", "4 other classes"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])  # summarize: tests/trainer/test_cli_summarize.py
def test_a_checkpoint_refuses_data_with_other_classes(tmp_path, tiny_run, capsys, classes, command):
    data = tmp_path / "crowd"
    make_fake_generic(data, ANNOTATORS, extra_images=(), classes=classes, size=(64, 64))
    before = _files(tmp_path)
    ckpt = Path(tiny_run) / "last.pt"
    out = tmp_path / "out"
    args = {"predict": ["predict", "--checkpoint", ckpt, "--data", data, "--split", "all", "--out", out],
            "evaluate": ["evaluate", "--checkpoint", ckpt, "--data", data, "--split", "all"],
            "train": ["train", "--data", data, "--init", ckpt, "--iters", "1", "--size", "64", "--model", "pspnet",
                      "--encoder", "resnet18", "--device", "cpu", "--out", out, "--no-reweight"]}[command]
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert str(ckpt) in err[0] and str(data) in err[0]
    assert "benign, G3, G4, G5" in err[0] and ", ".join(classes["classes"]) in err[0]
    assert _files(tmp_path) == before and not out.exists()  # nothing written, the experts' files untouched
