"""Checkpoints as plain data, written atomically and read with ``weights_only=True``.

A checkpoint is a dict of primitives and tensors (nanoGPT-style): model config + state dicts +
optimiser + iteration + best metric + run config. ``torch.load(weights_only=True)`` refuses any
pickle that would construct arbitrary Python objects, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "napari-gleason/checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    A crash (or kill -9) at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not exc.filename:  # e.g. a full disk at fsync: name the file
            raise OSError(exc.errno, f"{exc.strerror or exc}; the previous {path.name} is kept", str(path)) from exc
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _not_a_pickle(exc: pickle.UnpicklingError) -> bool:
    """True when torch's weights-only unpickler met bytes that are no pickle opcode at all.

    torch words both cases "Weights only load failed"; a payload that would run code names the
    global it refused ("GLOBAL os.system …"), garbage fails on its first byte ("Unsupported operand").
    """
    text = str(exc)
    return "Unsupported operand" in text or "invalid load key" in text


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint as data only. Every failure becomes a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CheckpointError("folder holds no best.pt or last.pt", path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _not_a_pickle(exc):  # garbage bytes: say so, rather than accuse the file of holding code
            raise CheckpointError("corrupt or truncated checkpoint (not a torch file)", path) from exc
        raise CheckpointError(
            "refused: the file holds Python objects other than tensors and plain data "
            "(a pickle that could run code); only weights are loaded",
            path,
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"corrupt or truncated checkpoint ({type(exc).__name__})", path) from exc
    if not isinstance(payload, dict):
        raise CheckpointError("not a napari-gleason checkpoint (no dict inside)", path)
    if payload.get("format") != FORMAT:
        raise CheckpointError("not a napari-gleason checkpoint (no format marker)", path)
    if int(payload.get("version", 0)) > VERSION:
        raise CheckpointError(
            f"written by a newer napari-gleason (format version {payload['version']} > {VERSION})", path
        )
    if "model" not in payload or "model_config" not in payload:
        raise CheckpointError("checkpoint holds no model weights", path)
    return payload
