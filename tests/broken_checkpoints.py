"""Broken checkpoints for the bad-input catalogue (test_bad_input_catalogue.py), one small function each.

Each takes the row's :class:`broken_inputs.Ctx` and returns a checkpoint path: most are the session's
``tiny_run`` checkpoint with one thing changed (architecture, classes, format version, a damaged
confusion head), the rest are files that are not checkpoints at all (truncated, garbage, a foreign
dict, a pickle that would run code, missing, an empty run folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tests.broken_inputs import Ctx


def _from_tiny_run(ctx: Ctx, name: str, change: Callable[[dict], None]) -> Path:
    payload = torch.load(ctx.tiny_run / "best.pt", weights_only=True)
    change(payload)
    torch.save(payload, ctx.tmp / name)
    return ctx.tmp / name


def ckpt_other_architecture(ctx: Ctx) -> Path:  # PSPNet weights said to be a U-Net's
    return _from_tiny_run(ctx, "other architecture.pt", lambda p: p["model_config"].update(name="unet"))


def ckpt_damaged_confusion(ctx: Ctx) -> Path:
    """A confusion-model checkpoint whose confusion head has the wrong shape."""
    from trainer.annotators import ConfusionCNN

    net = ConfusionCNN(3, 4, stride=8)
    state = net.state_dict()
    state["head.weight"] = state["head.weight"][:1]

    def change(p: dict) -> None:
        p.update(weighting=None, weighting_config=None, confusion=state, confusion_config=dict(net.config))

    return _from_tiny_run(ctx, "bad confusion.pt", change)


def ckpt_six_classes(ctx: Ctx) -> Path:  # its config says 6 classes, its weights hold 4
    return _from_tiny_run(ctx, "six.pt", lambda p: p["model_config"].update(num_classes=6))


def ckpt_three_classes(ctx: Ctx) -> Path:
    """A sound 3-class model: it loads, but cannot label a Gleason core (4 classes)."""
    from trainer.data.classes import ClassScheme
    from trainer.models import create_model

    model = create_model("pspnet", 3, encoder="resnet18")
    scheme = ClassScheme(("benign", "low", "high"), {0: 0, 1: 1, 2: 2}).to_dict()
    return _from_tiny_run(ctx, "three classes.pt", lambda p: p.update(
        model=model.state_dict(), model_config=dict(model.config), scheme=scheme))


def ckpt_newer_format(ctx: Ctx) -> Path:
    return _from_tiny_run(ctx, "newer.pt", lambda p: p.update(version=99))


def ckpt_truncated(ctx: Ctx) -> Path:
    data = (ctx.tiny_run / "best.pt").read_bytes()
    (ctx.tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return ctx.tmp / "cut.pt"


def ckpt_garbage(ctx: Ctx) -> Path:
    (ctx.tmp / "junk.pt").write_bytes(b"x" * 300)
    return ctx.tmp / "junk.pt"


def ckpt_foreign(ctx: Ctx) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, ctx.tmp / "foreign.pt")
    return ctx.tmp / "foreign.pt"


class _RunsCode:
    """Unpickled, this would create ``pwned`` in the test's folder (the nothing-written check sees it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def ckpt_pickle_payload(ctx: Ctx) -> Path:
    torch.save({"format": "napari-gleason/checkpoint", "model_config": {}, "model": _RunsCode(ctx.tmp / "pwned")},
               ctx.tmp / "evil.pt")
    return ctx.tmp / "evil.pt"


def ckpt_missing(ctx: Ctx) -> Path:
    return ctx.tmp / "missing.pt"


def ckpt_empty_run_folder(ctx: Ctx) -> Path:
    (ctx.tmp / "empty run").mkdir()
    return ctx.tmp / "empty run"


def tiny_best(ctx: Ctx) -> Path:
    return ctx.tiny_run / "best.pt"
