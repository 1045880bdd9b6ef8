"""A full disk (or another refusal of the system) at every write outside the review store: one line
naming the file, what failed and the system's reason; exit 2 on the CLI; no partial file; the run's
last good checkpoint kept; a cache that cannot be written warns once and the work goes on.

The disk is made full by the kernel (tests/full_disk.py: the writers' temporary files are
``/dev/full``), so torch, numpy and Pillow meet the real ``ENOSPC`` at their own writes; one test
fills a real 1 MB tmpfs where ``mount`` is permitted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.fakes import make_fake_gleason
from tests.full_disk import fill_disk, mounted_tmpfs, needs_dev_full, unmount
from PIL import Image

from trainer.atomic import atomic_files, os_reason
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.cli import main
from trainer.errors import CacheWarning, InputError

NO_SPACE = os.strerror(errno.ENOSPC)
TRAIN = ["--model", "pspnet", "--encoder", "resnet18", "--size", "32", "--device", "cpu", "--no-reweight",
         "--loss", "focal"]
pytestmark = needs_dev_full


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with its content hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --- finding the system's reason ------------------------------------------------------------------
def test_the_reason_behind_torchs_and_numpys_own_errors(tmp_path, monkeypatch):
    try:  # what torch.save raises on a full disk: its zip writer's error, the OSError only as context
        try:
            raise OSError(errno.ENOSPC, NO_SPACE)
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as exc:
        assert os_reason(exc) == NO_SPACE
    short = OSError("1310720 requested and 785376 written")  # numpy's tofile: no errno at all
    monkeypatch.setattr("shutil.disk_usage", lambda folder: type("u", (), {"free": 4096})())
    assert os_reason(short, tmp_path) == NO_SPACE
    monkeypatch.setattr("shutil.disk_usage", lambda folder: type("u", (), {"free": 10 << 30})())
    assert os_reason(short, tmp_path) == "write failed: 1310720 requested and 785376 written"
    assert os_reason(RuntimeError("CUDA out of memory"), tmp_path) is None  # not a write
    assert os_reason(ValueError("bad value"), tmp_path) is None


def test_files_written_together_appear_together_or_not_at_all(tmp_path, monkeypatch):
    (tmp_path / "a.npy").write_bytes(b"earlier a")
    fill_disk(monkeypatch, match=lambda tmp: tmp.name.startswith(".b.png."))
    with pytest.raises(InputError) as info:
        with atomic_files() as group:
            with group.open(tmp_path / "a.npy", what="the map") as f:
                np.save(f, np.zeros((64, 64)))
            with group.open(tmp_path / "b.png", what="the mask") as f:
                Image.fromarray(np.zeros((64, 64), np.uint8)).save(f, format="PNG")
    assert str(info.value) == f"{tmp_path / 'b.png'}: cannot write the mask ({NO_SPACE}); nothing was written"
    assert files(tmp_path) == {"a.npy": hashlib.sha256(b"earlier a").hexdigest()}  # a.npy not replaced, no temps


# --- checkpoints ------------------------------------------------------------------------------------
def test_a_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"model_config": {}, "model": {"w": torch.zeros(4)}})
    before = path.read_bytes()
    fill_disk(monkeypatch)
    with pytest.raises(InputError) as info:
        save_checkpoint(path, {"model_config": {}, "model": {"w": torch.ones(300_000)}})
    assert str(info.value) == f"{path}: cannot write the checkpoint ({NO_SPACE}); the previous last.pt is kept"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_training_stops_with_one_line_when_the_disk_fills_and_keeps_last_pt(tmp_path, monkeypatch, capsys):
    data = make_fake_gleason(tmp_path / "data").root
    run = tmp_path / "run"
    kept: dict[str, bytes] = {}

    def second_last_pt(tmp: Path) -> bool:  # the disk fills after the first last.pt (iteration 2)
        if tmp.name.startswith(".last.pt.") and (run / "last.pt").exists():
            kept["last.pt"] = (run / "last.pt").read_bytes()
            return True
        return False

    full = fill_disk(monkeypatch, match=second_last_pt)
    code = main(["train", "--data", str(data), *TRAIN, "--iters", "6", "--checkpoint-every", "2",
                 "--val-every", "100", "--out", str(run)])
    line = one_error_line(capsys)
    assert code == 2 and full
    assert line == (f"error: {run / 'last.pt'}: cannot write the checkpoint ({NO_SPACE}); the previous last.pt is "
                    "kept; training stopped at iteration 4, last.pt holds iteration 2")
    assert (run / "last.pt").read_bytes() == kept["last.pt"]  # byte-identical
    assert load_checkpoint(run / "last.pt")["iteration"] == 2
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_real_full_file_system_under_training(tmp_path, capsys):
    """A 1 MB tmpfs: torch.save meets the real ENOSPC (its RuntimeError, not an OSError)."""
    data = make_fake_gleason(tmp_path / "data").root
    disk = mounted_tmpfs(tmp_path / "small disk", "1m")
    try:
        code = main(["train", "--data", str(data), *TRAIN, "--iters", "1", "--out", str(disk / "run")])
        line = one_error_line(capsys)
        assert code == 2
        assert line.startswith(f"error: {disk / 'run'}/") and f"cannot write the checkpoint ({NO_SPACE})" in line
        assert sorted(p.name for p in (disk / "run").iterdir()) == ["config.json", "events.jsonl"]  # no temporary
    finally:
        unmount(disk)


def test_the_event_log_keeps_whole_lines_on_a_full_disk(tmp_path, monkeypatch):
    from trainer import events as ev
    from trainer.engine import _EventLog

    log = _EventLog(tmp_path / "events.jsonl")
    log.write(ev.Message("one"))
    before = (tmp_path / "events.jsonl").read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # a part of the line gets out, then the disk is full
        if fd != log.fd:
            return real_write(fd, data)
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(InputError, match=f"events.jsonl: cannot write the run's event log .{NO_SPACE}."):
        log.write(ev.Message("two"))
    monkeypatch.undo()
    log.close()
    assert (tmp_path / "events.jsonl").read_bytes() == before


# --- prediction files ---------------------------------------------------------------------------------
@pytest.fixture
def core_image(tmp_path) -> Path:
    path = tmp_path / "core.png"
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("fails", ["probabilities", "classimg_nonconvex"])
def test_predict_on_a_full_disk_leaves_nothing(tmp_path, core_image, tiny_run, monkeypatch, capsys, fails):
    out = tmp_path / "predicted"
    fill_disk(monkeypatch, match=lambda tmp: fails in tmp.name)
    code = main(["predict", "--checkpoint", tiny_run, "--image", str(core_image), "--out", str(out)])
    line = one_error_line(capsys)
    assert code == 2
    name = "core_probabilities.npy" if fails == "probabilities" else "core_classimg_nonconvex.png"
    what = "the probabilities" if fails == "probabilities" else "the mask"
    assert line == f"error: {out / name}: cannot write {what} ({NO_SPACE}); nothing was written"
    assert not out.exists()  # the folder made for it goes too


@pytest.mark.parametrize("fails", ["probabilities", "classimg"])
def test_predict_over_an_earlier_prediction_keeps_all_of_it(tmp_path, core_image, tiny_run, monkeypatch, capsys,
                                                             fails):
    out = tmp_path / "predicted"
    argv = ["predict", "--checkpoint", tiny_run, "--image", str(core_image), "--out", str(out), "--overwrite"]
    assert main(argv) == 0
    before = files(out)
    assert {"core_classimg_nonconvex.png", "core_probabilities.npy", "core_prediction.json"} <= set(before)
    fill_disk(monkeypatch, match=lambda tmp: fails in tmp.name)  # the first map, or the mask (written last)
    assert main(argv) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert files(out) == before  # no new map beside the old mask, no temporary


# --- caches: warn once, go on -------------------------------------------------------------------------
def test_a_full_core_cache_warns_once_and_the_cores_still_load(tmp_path, monkeypatch):
    from trainer.data import open_dataset
    from trainer.data.dataset import MultiExpertDataset

    ds = open_dataset(make_fake_gleason(tmp_path / "data").root)
    cores = ["slide002_core001", "slide002_core002", "slide004_core002"]
    reference = [np.array(MultiExpertDataset(ds, cores, ("1", "3", "4"), 24).load_planes(i)) for i in range(3)]
    cached = MultiExpertDataset(ds, cores, ("1", "3", "4"), 24, cache_dir=tmp_path / "cache")
    full = fill_disk(monkeypatch)
    with pytest.warns(CacheWarning) as caught:
        planes = [np.array(cached.load_planes(i)) for i in range(3)]
    assert [np.array_equal(a, b) for a, b in zip(planes, reference)] == [True] * 3
    assert len(caught) == 1 and len(full) == 1  # warned once, then no more tries
    message = str(caught[0].message)
    assert str(tmp_path / "cache") in message and NO_SPACE in message and "without the core cache" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_full_check_cache_warns_and_the_check_stands(tmp_path, monkeypatch):
    from trainer.data import open_dataset
    from trainer.data.check import check_dataset

    root = make_fake_gleason(tmp_path / "data").root
    for path in root.rglob("*"):  # files changed just now are never cached (mtime granularity)
        os.utime(path, (path.stat().st_atime - 3600, path.stat().st_mtime - 3600))
    ds = open_dataset(root)
    fill_disk(monkeypatch)
    with pytest.warns(CacheWarning, match=f"cannot write the data check's cache .{NO_SPACE}."):
        report = check_dataset(ds, cache=tmp_path / "check cache")
    assert not report.problems
    assert not [p for p in (tmp_path / "check cache").rglob("*") if p.is_file()]


def test_recent_checkpoints_on_a_full_disk_warn_once(tmp_path, monkeypatch):
    import napari_gleason._recent as recent

    monkeypatch.setattr(recent, "_warned", False)
    (tmp_path / "a.pt").write_bytes(b"x")
    fill_disk(monkeypatch)
    with pytest.warns(CacheWarning, match=f"recent_checkpoints.json: cannot write .*{NO_SPACE}"):
        assert recent.remember_checkpoint(tmp_path / "a.pt") == [str((tmp_path / "a.pt").resolve())]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recent.remember_checkpoint(tmp_path / "a.pt")  # said once a session
    assert not recent.recent_file().exists()


# --- synth and split ------------------------------------------------------------------------------------
def test_synth_on_a_full_disk_leaves_no_half_dataset(tmp_path, monkeypatch, capsys):
    def full_png(self, fp, format=None, **params):  # Pillow's own save, over a full disk
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(Image.Image, "save", full_png)
    code = main(["synth", "--out", str(tmp_path / "synthetic"), "--cores", "2", "--size", "64"])
    line = one_error_line(capsys)
    assert code == 2
    assert line.startswith(f"error: {tmp_path / 'synthetic'}/") and NO_SPACE in line and "partial dataset was removed" in line
    assert not (tmp_path / "synthetic").exists()


def test_split_out_on_a_full_disk(tmp_path, monkeypatch, capsys):
    data = make_fake_gleason(tmp_path / "data").root
    (tmp_path / "split.json").write_text("earlier")
    fill_disk(monkeypatch)
    assert main(["split", "--data", str(data), "--out", str(tmp_path / "split.json")]) == 2
    line = one_error_line(capsys)
    assert line == f"error: {tmp_path / 'split.json'}: cannot write the split ({NO_SPACE}); the previous split.json is kept"
    assert (tmp_path / "split.json").read_text() == "earlier"


def test_the_gui_child_run_on_a_real_full_disk_ends_in_one_input_error(tmp_path):
    """The train widget's path: ``python -m trainer train`` in a child process, its run folder on a
    1 MB tmpfs; the child's one error line comes back as the InputError the widget notifies."""
    from napari_gleason._child_run import run_in_child
    from trainer.config import RunConfig

    data = make_fake_gleason(tmp_path / "data").root
    disk = mounted_tmpfs(tmp_path / "small disk", "1m")
    try:
        cfg = RunConfig.from_dict({"data": {"path": str(data), "size": 32},
                                   "model": {"name": "pspnet", "encoder": "resnet18"},
                                   "train": {"iters": 1, "device": "cpu", "out": str(disk / "run")}})
        cfg.loss.reweight = False
        with pytest.raises(InputError) as info:
            for _ in run_in_child(cfg):
                pass
        message = str(info.value)
        assert message.startswith(f"{disk / 'run'}/") and f"cannot write the checkpoint ({NO_SPACE})" in message
        assert "Traceback" not in message and "\n" not in message
        assert not [p for p in (disk / "run").iterdir() if p.name.endswith(".tmp")]
    finally:
        unmount(disk)


def test_training_on_a_full_cache_disk_goes_on_with_a_one_line_warning(tmp_path, monkeypatch, capsys):
    data = make_fake_gleason(tmp_path / "data").root
    full = fill_disk(monkeypatch, match=lambda tmp: tmp.parent == tmp_path / "cache")
    code = main(["train", "--data", str(data), *TRAIN, "--iters", "2", "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 0 and full and (tmp_path / "run" / "last.pt").is_file()
    assert err and all(line.startswith(f"warning: {tmp_path / 'cache'}/") for line in err), err
    assert all(f"cannot write the core cache entry ({NO_SPACE})" in line and "going on without the core cache" in line
               for line in err)
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_error_raised_while_handling_an_os_error_is_no_failed_write(tmp_path):
    try:
        try:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        except OSError:
            raise ValueError("the class map has indices [7] with no export value")
    except ValueError as exc:
        assert os_reason(exc, tmp_path) is None
    with pytest.raises(ValueError, match="no export value"):  # not "cannot write …"
        with atomic_files() as group:
            with group.open(tmp_path / "a.png") as f:
                f.write(b"x")
                try:
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory")
                except OSError:
                    raise ValueError("the class map has indices [7] with no export value")
    assert list(tmp_path.iterdir()) == []
