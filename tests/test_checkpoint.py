"""Checkpoints: atomic writes, weights_only loading, refusal of code-running pickles."""

import os

import pytest
import torch

from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.errors import CheckpointError


def _payload():
    return {"model_config": {"name": "x", "num_classes": 4}, "model": {"w": torch.arange(6.0)},
            "iteration": 3, "config": {"train": {"lr": 0.01, "out": "r"}}, "rng": {"torch": torch.get_rng_state()}}


def test_round_trip_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "sub dir é" / "last.pt", _payload())
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(6.0))
    assert loaded["iteration"] == 3
    # plain torch.load with weights_only=True works too: the file is plain data
    assert torch.load(path, weights_only=True)["format"] == "napari-gleason/checkpoint"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_folder_resolves_to_best_then_last(tmp_path):
    save_checkpoint(tmp_path / "last.pt", _payload())
    assert load_checkpoint(tmp_path)["iteration"] == 3
    p = _payload(); p["iteration"] = 9
    save_checkpoint(tmp_path / "best.pt", p)
    assert load_checkpoint(tmp_path)["iteration"] == 9


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model_config": {}, "model": {}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-gleason/checkpoint", "model": _Evil(), "model_config": {}}, path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "evil.pt" in str(info.value)


def test_truncated_and_garbage(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_foreign_and_newer_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, plain)
    with pytest.raises(CheckpointError, match="not a napari-gleason checkpoint"):
        load_checkpoint(plain)
    newer = tmp_path / "newer.pt"
    torch.save({**_payload(), "format": "napari-gleason/checkpoint", "version": 99}, newer)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(newer)
