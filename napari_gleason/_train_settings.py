"""From what the train widget shows to a :class:`trainer.config.RunConfig` (no Qt).

:class:`TrainSettings` is a snapshot of the widget's fields taken on the GUI thread;
:meth:`TrainSettings.to_run_config` is the only place those fields meet the trainer's config, through
:func:`trainer.config.build_run_config` (the CLI's builder, with the engine's run-folder rule).
:func:`finetune_config` builds the human-in-the-loop run: the checkpoint's own configuration
(same architecture, classes and losses, so its weights load) on the dataset plus the corrected core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from trainer.config import RunConfig, build_run_config, interval_of
from trainer.errors import InputError
from trainer.model_registry import SUGGESTED_ENCODERS, TABLE2_MODELS

#: The five models of Table 2 and the encoder each uses by default (HRNets have a fixed backbone).
MODEL_ENCODERS = TABLE2_MODELS  # the trainer's registry (no torch); None: a fixed backbone
ENCODER_CHOICES = SUGGESTED_ENCODERS


def device_choices() -> list[str]:
    """The device menu: ``auto``, the CUDA devices that exist, ``cpu`` (:mod:`trainer.device`'s policy)."""
    from trainer.device import device_choices as choices  # imports torch: only when a widget is built

    return choices()


def cuda_device_count() -> int:
    from trainer.device import cuda_device_count as count

    return count()


def default_out(root: str | Path | None, model: str) -> Path:
    """A fresh run folder ``<root or ~/napari-gleason-runs>/<model>-<date-time>``."""
    base = Path(root) if root else Path.home() / "napari-gleason-runs"
    return base / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class TrainSettings:
    data: str
    out: str
    model: str = "hrnet18"
    encoder: str | None = None
    gafl: bool = True
    reweight: bool = True
    confusion: bool = False  # annotator confusion matrices in place of the re-weighting
    iters: int = 1000
    batch_size: int = 2
    size: int = 1024
    lr: float = 0.01
    device: str = "auto"
    init: str | None = None  # start checkpoint (fine-tuning)

    def to_run_config(self) -> RunConfig:
        """The run configuration; raises :class:`InputError` for values the trainer would refuse."""
        if not self.data:
            raise InputError("choose the training data: the opened dataset or a dataset folder")
        if not Path(self.data).is_dir():
            raise InputError("training data folder does not exist", self.data)
        if not self.out:
            raise InputError("choose an output folder for the run")
        if self.model not in MODEL_ENCODERS:
            raise InputError(f"unknown model {self.model!r}; choose one of: {', '.join(MODEL_ENCODERS)}")
        if self.init and not Path(self.init).is_file():
            raise InputError("start checkpoint not found", self.init)
        n = interval_of(None, int(self.iters))  # ~10 points on the Dice plot, as the CLI
        return build_run_config(overrides={
            "data": {"path": str(self.data), "size": int(self.size)},
            "model": {"name": self.model,
                      "encoder": None if MODEL_ENCODERS[self.model] is None else (self.encoder or MODEL_ENCODERS[self.model])},
            "loss": {"loss": "gafl" if self.gafl else "focal", "reweight": bool(self.reweight),
                     "confusion": bool(self.confusion)},
            "train": {"iters": int(self.iters), "batch_size": int(self.batch_size), "lr": float(self.lr),
                      "device": self.device, "out": str(self.out), "init": self.init or None,
                      "val_every": n, "checkpoint_every": n}})


def finetune_config(checkpoint_config: dict, *, checkpoint: str | Path, corrected: list[dict], iters: int,
                    lr: float, device: str, out: str | Path, data: str | None = None) -> RunConfig:
    """The checkpoint's run configuration, re-aimed at fine-tuning on ``corrected`` cores.

    The model, classes, losses and input size stay the checkpoint's (its weights must load:
    ``train.init``); data is ``data`` (the widget's dataset) or the checkpoint's own dataset, plus
    the corrected cores; it validates once, at the end, which also writes ``best.pt``. The data
    check stays on: it reads its cached results (:mod:`trainer.data.check`), so an unchanged
    dataset checked by an earlier run costs one ``stat`` per file, and a file changed since is
    still checked before the first iteration.
    """
    data = str(data) if data else ((checkpoint_config or {}).get("data") or {}).get("path")
    if not data or not Path(data).is_dir():
        raise InputError("fine-tuning needs the dataset the model was trained on; choose it as training data",
                         data or None)
    return build_run_config(checkpoint_config, {
        "data": {"path": data, "corrected": list(corrected),
                 "corrected_repeat": 0},  # about a quarter of the samples are the corrected core(s)
        "train": {"init": str(checkpoint), "iters": int(iters), "lr": float(lr), "device": device, "out": str(out),
                  "val_every": max(1, int(iters)),  # validate once, at the end
                  "checkpoint_every": interval_of(None, int(iters))}})  # a crash leaves one to resume
