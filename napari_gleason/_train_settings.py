"""From what the train widget shows to a :class:`trainer.config.RunConfig` (no Qt).

:class:`TrainSettings` is a snapshot of the widget's fields taken on the GUI thread;
:meth:`TrainSettings.to_run_config` is the only place those fields meet the trainer's config.
:func:`finetune_config` builds the human-in-the-loop run: the checkpoint's own configuration
(same architecture, classes and losses, so its weights load) on the dataset plus the corrected core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from trainer.config import RunConfig
from trainer.errors import InputError

#: The five models of Table 2 and the encoder each uses by default (HRNets have a fixed backbone).
MODEL_ENCODERS: dict[str, str | None] = {
    "hrnet18": None, "hrnet48": None, "unet": "resnet34", "deeplabv3plus": "resnet50", "pspnet": "resnet50",
}
ENCODER_CHOICES = ("resnet18", "resnet34", "resnet50", "resnet101")


def device_choices() -> list[str]:
    """``auto``, ``cuda`` (only when a CUDA device exists) and ``cpu``."""
    import torch

    return ["auto", "cuda", "cpu"] if torch.cuda.is_available() else ["auto", "cpu"]


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def every(iters: int) -> int:
    """Validation/checkpoint interval: the paper's 1000, or ~10 points on a short run's plot."""
    return max(1, min(1000, iters // 10))


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
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise InputError("the output is a file, not a folder; choose a new folder", self.out)
        if (Path(self.out) / "last.pt").exists():
            raise InputError("this output folder already holds a run (last.pt); choose a new folder", self.out)
        if self.model not in MODEL_ENCODERS:
            raise InputError(f"unknown model {self.model!r}; choose one of: {', '.join(MODEL_ENCODERS)}")
        if self.init and not Path(self.init).is_file():
            raise InputError("start checkpoint not found", self.init)
        cfg = RunConfig()
        cfg.data.path = str(self.data)
        cfg.data.size = int(self.size)
        cfg.model.name = self.model
        cfg.model.encoder = None if MODEL_ENCODERS[self.model] is None else (self.encoder or MODEL_ENCODERS[self.model])
        cfg.loss.loss = "gafl" if self.gafl else "focal"
        cfg.loss.reweight = bool(self.reweight)
        cfg.loss.confusion = bool(self.confusion)
        cfg.train.iters = int(self.iters)
        cfg.train.batch_size = int(self.batch_size)
        cfg.train.lr = float(self.lr)
        cfg.train.device = self.device
        cfg.train.out = str(self.out)
        cfg.train.init = self.init or None
        cfg.train.val_every = cfg.train.checkpoint_every = every(cfg.train.iters)
        cfg.validate()
        return cfg


def finetune_config(checkpoint_config: dict, *, checkpoint: str | Path, corrected: list[dict], iters: int,
                    lr: float, device: str, out: str | Path, data: str | None = None) -> RunConfig:
    """The checkpoint's run configuration, re-aimed at fine-tuning on ``corrected`` cores.

    The model, classes, losses and input size stay the checkpoint's (its weights must load:
    ``train.init``); data is ``data`` (the widget's dataset) or the checkpoint's own dataset, plus
    the corrected cores; it validates once, at the end, which also writes ``best.pt``.
    """
    cfg = RunConfig.from_dict(checkpoint_config or {})
    if data:
        cfg.data.path = str(data)
    if not cfg.data.path or not Path(cfg.data.path).is_dir():
        raise InputError("fine-tuning needs the dataset the model was trained on; choose it as training data",
                         cfg.data.path or None)
    cfg.data.corrected = list(corrected)
    cfg.data.corrected_repeat = 0  # default: about a quarter of the samples are the corrected core(s)
    cfg.train.init = str(checkpoint)
    cfg.train.iters = int(iters)
    cfg.train.lr = float(lr)
    cfg.train.device = device
    cfg.train.out = str(out)
    cfg.train.val_every = cfg.train.checkpoint_every = max(1, int(iters))
    cfg.validate()
    return cfg
