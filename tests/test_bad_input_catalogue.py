"""The bad-input catalogue: every bad input named in the issues, with the message it must give.

Each row breaks one thing in a fresh copy of a format-faithful fake (or hands over a broken file)
and runs the user's entry point: the CLI must exit 2 (3 for a diverging loss) with one line naming
the file and the reason; inputs that are unusual but valid (RGBA, grey, one expert, spaces and
non-ASCII in paths) must work. GUI-side rows (notifications, napari keeps running) live in
tests/gui/ and tests/plugin/, next to the widgets they exercise; their names are listed at the end.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakes import make_fake_gleason
from trainer.cli import main

TRAIN = ["--model", "pspnet", "--encoder", "resnet18", "--size", "32", "--iters", "1", "--device", "cpu",
         "--no-reweight", "--loss", "focal"]


def dataset(tmp_path) -> Path:
    return make_fake_gleason(tmp_path / "data set é").root


def first_image(root: Path) -> Path:
    return sorted((root / "Train Imgs").glob("slide002_core001.*"))[0]


def mask_of(root: Path, expert: str = "1", core: str = "slide002_core001") -> Path:
    return root / f"Maps{expert}_T" / f"{core}_classimg_nonconvex.png"


# ------------------------------------------------------------------ breakers: (argv builder, needles)
def missing_folder(tmp_path):
    return ["train", "--data", str(tmp_path / "no such folder"), *TRAIN], ["no such folder"]


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return ["train", "--data", str(tmp_path / "empty"), *TRAIN], ["empty"]


def corrupt_image(tmp_path):
    root = dataset(tmp_path)
    img = first_image(root)
    img.write_bytes(b"\xff\xd8 this is not a jpeg")
    return ["train", "--data", str(root), *TRAIN], [img.name]


def truncated_image(tmp_path):
    root = dataset(tmp_path)
    img = first_image(root)
    buf = Image.open(img).convert("RGB")
    buf.save(img, format="JPEG", quality=95)
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    return ["train", "--data", str(root), *TRAIN], [img.name]


def mask_size_mismatch(tmp_path):
    root = dataset(tmp_path)
    m = mask_of(root)
    Image.fromarray(np.ones((10, 10), np.uint8)).save(m)
    return ["train", "--data", str(root), *TRAIN], [m.name, "size"]


def unknown_mask_values(tmp_path):
    root = dataset(tmp_path)
    m = mask_of(root)
    arr = np.asarray(Image.open(m).convert("L")).copy()
    arr[0, 0] = 7
    Image.fromarray(arr).save(m)
    return ["train", "--data", str(root), *TRAIN], [m.name, "7"]


def split_file_unknown_core(tmp_path):
    root = dataset(tmp_path)
    split = tmp_path / "split.json"
    split.write_text('{"train": ["nope_core"], "val": [], "test": []}')
    return ["train", "--data", str(root), "--split-file", str(split), *TRAIN], ["split.json", "nope_core"]


def bad_config_file(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train: [unclosed\n")
    return ["train", "--config", str(cfg)], ["cfg.yaml"]


def unknown_config_key(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train:\n  learning_rat: 0.1\n")
    return ["train", "--config", str(cfg)], ["learning_rat"]


def cuda_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    root = dataset(tmp_path)
    args = ["train", "--data", str(root), *TRAIN]
    args[args.index("cpu")] = "cuda"
    return args, ["cuda"]


def _ckpt(tiny_run, tmp_path, mutate):
    ck = torch.load(Path(tiny_run) / "last.pt", weights_only=True)
    mutate(ck)
    path = tmp_path / "mutated.pt"
    torch.save(ck, path)
    return path


def _predict(ckpt, tmp_path):
    img = tmp_path / "core.png"
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(img)
    return ["predict", "--checkpoint", str(ckpt), "--image", str(img), "--out", str(tmp_path / "o")]


CASES = {
    "missing folder": missing_folder,
    "empty folder": empty_folder,
    "corrupt image": corrupt_image,
    "truncated image": truncated_image,
    "mask size differs from image": mask_size_mismatch,
    "unknown mask values": unknown_mask_values,
    "split file names an unknown core": split_file_unknown_core,
    "unparsable config file": bad_config_file,
    "unknown config option": unknown_config_key,
    "cuda chosen where none exists": cuda_without_cuda,
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_rejects_bad_input_with_one_line(case, tmp_path, capsys):
    argv, needles = CASES[case](tmp_path)
    before = _hash_tree(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ")
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert _hash_tree(tmp_path, masks_only=True) == {k: v for k, v in before.items() if k.endswith(".png")}


@pytest.mark.parametrize("what,mutate,needle", [
    ("other architecture", lambda ck: ck["model_config"].update(name="unet", encoder="resnet34"), "unet"),
    ("other class count", lambda ck: ck["model_config"].update(num_classes=6), "6 classes"),
])
def test_foreign_checkpoints(tiny_run, tmp_path, capsys, what, mutate, needle):
    code = main(_predict(_ckpt(tiny_run, tmp_path, mutate), tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "mutated.pt" in err and needle in err and len(err.splitlines()) == 1


def test_truncated_checkpoint(tiny_run, tmp_path, capsys):
    cut = tmp_path / "cut.pt"
    data = (Path(tiny_run) / "last.pt").read_bytes()
    cut.write_bytes(data[: len(data) - 4096])
    assert main(_predict(cut, tmp_path)) == 2
    assert "cut.pt" in capsys.readouterr().err


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


def test_code_running_pickle_checkpoint(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "napari-gleason/checkpoint", "model_config": {}, "model": _RunsCode()}, evil)
    assert main(_predict(evil, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "refused" in err


def test_nan_loss_exit_3_keeps_checkpoint(tmp_path, capsys):
    root = dataset(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), *TRAIN, "--out", str(run)]) == 0
    good = (run / "last.pt").read_bytes()
    code = main(["train", "--resume", str(run), "--iters", "40", "--lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 3 and "last good checkpoint" in err
    assert (run / "last.pt").read_bytes() == good


@pytest.mark.parametrize("variant", ["rgba image", "grey image", "core with one expert", "spaces and non-ASCII"])
def test_unusual_but_valid_inputs_work(variant, tmp_path, capsys):
    root = dataset(tmp_path)
    img = first_image(root)
    if variant == "rgba image":
        rgba = np.asarray(Image.open(img).convert("RGBA")).copy()
        png = img.with_suffix(".png")
        img.unlink()
        Image.fromarray(rgba).save(png)
    elif variant == "grey image":
        grey = Image.open(img).convert("L")
        img.unlink()
        grey.save(img.with_suffix(".png"))
    elif variant == "core with one expert":
        for k in ("3", "4"):
            mask_of(root, k).unlink()
    out = tmp_path / "rün dir" / "out"
    before = _hash_tree(root, masks_only=True)
    assert main(["train", "--data", str(root), *TRAIN, "--out", str(out)]) == 0
    assert (out / "last.pt").is_file()
    assert _hash_tree(root, masks_only=True) == before  # experts' files untouched


def test_export_to_read_only_folder_or_full_disk_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    from trainer.data.classes import GLEASON_SCHEME
    from trainer.data.io import write_mask_png
    from trainer.errors import InputError

    target = tmp_path / "Maps_consensus"
    target.mkdir()

    def read_only(*a, **k):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(InputError, match="Read-only") as info:
        write_mask_png(target / "a_classimg_nonconvex.png", np.zeros((8, 8), np.uint8), GLEASON_SCHEME)
    assert "a_classimg_nonconvex.png" in str(info.value)
    monkeypatch.undo()

    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(InputError, match="No space left"):
        write_mask_png(target / "b_classimg_nonconvex.png", np.zeros((8, 8), np.uint8), GLEASON_SCHEME)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(target.iterdir()) == []  # nothing half-written


def _hash_tree(root: Path, masks_only: bool = False) -> dict[str, str]:
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and (not masks_only or p.suffix == ".png"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
