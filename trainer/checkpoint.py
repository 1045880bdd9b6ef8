"""Checkpoints as plain data: what goes in one, how it is written and read, and how older ones read.

A checkpoint is a dict of primitives and tensors (nanoGPT-style), built by :func:`training_payload`:
the networks' configs and state dicts, optimiser, iteration, best metric, run config, class scheme,
experts, input size and RNG state. It is written atomically (:func:`save_checkpoint`) and read with
``torch.load(weights_only=True)`` (:func:`load_checkpoint`), which refuses any pickle that would
construct arbitrary Python objects, so a file from elsewhere cannot run code.

Compatibility: one table (:data:`OLDER_CHECKPOINTS`) says what checkpoints written before today's
defaults trained with; :func:`run_config_of`, :func:`weighting_config_of` and
:func:`confusion_config_of` fill it in; :func:`networks_from_payload` rebuilds the networks
(inference, evaluation), :func:`check_compatible` says why a checkpoint cannot start this run.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import math

import torch

from .annotators.confusion import confusion_from_config
from .data.classes import ClassScheme
from .atomic import atomic_write
from .errors import CheckpointError, InputError
from .models import build_from_config
from .reweighting import WeightingCNN

FORMAT = "napari-gleason/checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`trainer.atomic.atomic_write`).

    A crash (or kill -9) at any moment leaves either the old file or the new one, never a torn one;
    a full disk or a read-only folder raises :class:`~trainer.errors.InputError` naming the file and
    the system's reason (torch's own error hides it), and the previous file is kept.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the checkpoint's folder ({exc.strerror or exc})", path.parent) from exc
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_write(path, "wb", what="the checkpoint") as fh:
        torch.save(payload, fh)
    return path


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


# ------------------------------------------------------------------------------ what goes in one
def rng_state(device: torch.device) -> dict:
    """The torch (and CUDA) RNG state: an exact resume continues the same random streams."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng_state(payload: dict, device: torch.device) -> None:
    rng = payload.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda"):
        torch.cuda.set_rng_state_all(list(rng["cuda"]))


def training_payload(*, model: torch.nn.Module, weighting: torch.nn.Module | None,
                     confusion: torch.nn.Module | None, optimizer: torch.optim.Optimizer | None,
                     iteration: int, best: float, best_iteration: int | None, config: dict,
                     scheme: ClassScheme, experts, input_size: int, device: torch.device) -> dict[str, Any]:
    """Everything a training checkpoint holds, as plain data (``best = -inf``: not validated yet).

    ``model_config`` / ``weighting_config`` / ``confusion_config`` rebuild the networks without the
    run's code paths (:func:`networks_from_payload`); ``config`` is the run's
    :meth:`~trainer.config.RunConfig.to_dict`.
    """
    return {
        "model_config": dict(model.config),
        "model": model.state_dict(),
        "weighting_config": None if weighting is None else dict(weighting.config),
        "weighting": None if weighting is None else weighting.state_dict(),
        "confusion_config": None if confusion is None else dict(confusion.config),
        "confusion": None if confusion is None else confusion.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "iteration": int(iteration),
        "best_metric": float(best) if best != -math.inf else None,
        "best_iteration": best_iteration,
        "config": dict(config),
        "scheme": scheme.to_dict(),
        "experts": list(experts),
        "input_size": int(input_size),
        "rng": rng_state(device),
    }


# ------------------------------------------------------------------------------ older checkpoints
#: A run's loss section with ``gauss_ksize`` was written by this project; a setting it lacks is newer
#: than the run, which trained with the value before that setting existed: the sampled σ-in-pixels
#: GAF kernel with reflect borders, per-pixel loss reduction, the stride-32 weighting CNN with a 1×1 head.
LEGACY_LOSS = {"gauss_kernel": "sampled", "gauss_border": "reflect", "reduction": "pixel",
               "weight_stride": 32, "weight_head_kernel": 1}
#: A loss section that has ``confusion`` but no ``confusion_form`` trained the confusion model as it
#: was before Zhang et al.'s heads and objective became the default: a separate ResNet-18,
#: λ1·vote + λ2·(the run's focal/GAF loss under A_n + μ·tr/C).
LEGACY_CONFUSION_LOSS = {"confusion_form": "trunk", "confusion_objective": "vote", "confusion_nll": False}
#: A weighting CNN config without these keys is the stride-32 ResNet-18 with a 1×1 head.
LEGACY_WEIGHTING = {"stride": 32, "head_kernel": 1}
#: A confusion config without ``form`` is the separate ResNet-18 trunk.
LEGACY_CONFUSION = {"form": "trunk"}

#: The one table of older-checkpoint rules: (part of the payload, when the rule applies to that
#: part, the settings it fills in where the part names none). The networks, the losses and the
#: heatmap of eq. (5) read these parts only through :func:`run_config_of`,
#: :func:`weighting_config_of` and :func:`confusion_config_of`, so none of them knows an older rule.
OLDER_CHECKPOINTS = (
    ("config.loss", lambda part: "gauss_ksize" in part, LEGACY_LOSS),
    ("config.loss", lambda part: "confusion" in part and "confusion_form" not in part, LEGACY_CONFUSION_LOSS),
    ("weighting_config", bool, LEGACY_WEIGHTING),
    ("confusion_config", bool, LEGACY_CONFUSION),
)


def _as_trained(where: str, part: dict | None) -> dict | None:
    """``part`` (a copy) with every rule of :data:`OLDER_CHECKPOINTS` for ``where`` that applies filled in."""
    if part is None:
        return None
    part = dict(part)
    for name, applies, fills in OLDER_CHECKPOINTS:
        if name == where and applies(part):
            for key, value in fills.items():
                part.setdefault(key, value)
    return part


def run_config_of(payload: dict) -> dict:
    """The checkpoint's run config (``RunConfig.to_dict`` form) with the settings an older run
    trained with filled in (:data:`OLDER_CHECKPOINTS`), so that fine-tuning or predicting with it
    uses the same losses and heatmap. A config that names a setting keeps it; an empty one stays
    empty (today's defaults)."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in (payload.get("config") or {}).items()}
    if config.get("loss"):
        config["loss"] = _as_trained("config.loss", config["loss"])
    return config


def confusion_config_of(payload: dict) -> dict | None:
    """The checkpoint's confusion-model config as it trained (None if none)."""
    return _as_trained("confusion_config", payload.get("confusion_config") or None)


def weighting_config_of(payload: dict) -> dict | None:
    """The checkpoint's weighting-CNN config as it trained (None if none)."""
    return _as_trained("weighting_config", payload.get("weighting_config") or None)


def check_compatible(payload: dict, model_config: dict, what: str) -> None:
    """:class:`CheckpointError` unless the checkpoint's segmentation network is ``model_config``'s
    (name, classes, encoder); ``what`` names the other side in the message."""
    ck = payload.get("model_config", {})
    keys = ("name", "num_classes", "encoder")
    if any(ck.get(k) != model_config.get(k) for k in keys):
        def desc(c):
            enc = f" ({c.get('encoder')})" if c.get("encoder") else ""
            return f"{c.get('name')}{enc} with {c.get('num_classes')} classes"
        raise CheckpointError(f"checkpoint holds {desc(ck)}, but {what} uses {desc(model_config)}")


def _first_problem(exc: Exception) -> str:
    """The first specific line of a (multi-line) load_state_dict error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    return (specific or lines or [type(exc).__name__])[0].rstrip(".")


def networks_from_payload(payload: dict, path: str | Path | None = None):
    """(segmentation network, weighting CNN or None, confusion CNN or None, class scheme), on the
    CPU, rebuilt from the checkpoint's configs alone. Weights that do not fit their config, or a
    class list that does not match the model, raise :class:`CheckpointError` naming ``path``."""
    try:
        model = build_from_config(payload["model_config"])
        model.load_state_dict(payload["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        cfg = payload.get("model_config", {})
        raise CheckpointError(
            f"weights do not fit the {cfg.get('name')} with {cfg.get('num_classes')} classes the checkpoint "
            f"describes ({_first_problem(exc)})", path) from exc
    weighting = None
    wcfg = weighting_config_of(payload)
    if payload.get("weighting") is not None and wcfg:
        try:
            weighting = WeightingCNN.from_config(wcfg)
            weighting.load_state_dict(payload["weighting"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"weighting CNN weights do not fit ({_first_problem(exc)})", path) from exc
    confusion = None
    if payload.get("confusion") is not None and payload.get("confusion_config"):
        try:
            confusion = confusion_from_config(confusion_config_of(payload))
            confusion.load_state_dict(payload["confusion"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"confusion network weights do not fit ({_first_problem(exc)})", path) from exc
    scheme = ClassScheme.from_dict(payload["scheme"]) if payload.get("scheme") else None
    if scheme is None or scheme.num_classes != payload["model_config"].get("num_classes"):
        raise CheckpointError("checkpoint's class list does not match its model", path)
    return model, weighting, confusion, scheme
