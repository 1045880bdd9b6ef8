"""The generators the train widget runs in a worker thread (headless; tests call them directly).

They all end in :func:`trainer.engine.train`, the one training loop, and pass its events through
unchanged; the stop signal goes straight into the engine, which checks it every iteration and
saves ``last.pt`` before it ends. :func:`finetune_job` is the human-in-the-loop step: it writes
the corrected core's labels as a mask PNG in the dataset's values, then fine-tunes the
checkpoint on the dataset plus that core. Training shares the process politely (:mod:`._gentle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer import events as ev
from trainer.data.classes import ClassScheme

from ._cpu_sharing import gc_frozen, torch_threads_sparing_gui
from ._llvm_guard import guard_triton
from ._train_settings import finetune_config


def training_job(cfg, stop=None):
    """Train ``cfg`` (a RunConfig) in this thread, yielding the engine's events."""
    guard_triton()  # before torchvision/timm import torch._dynamo (see _llvm_guard)
    from trainer.engine import train

    with torch_threads_sparing_gui(cfg.train.device), gc_frozen():  # see _gentle: what stalled the GUI
        yield from train(cfg, stop=stop)


@dataclass
class CorrectedCore:
    """A core whose labels a pathologist corrected, snapshot on the GUI thread."""

    name: str
    classes: np.ndarray  # uint8 class indices (IGNORE_INDEX where unlabelled), the image's shape
    scheme: ClassScheme
    image_path: str | None = None  # the core's image file, when it came from one
    image: Any = None  # else the pixels (H×W×3 uint8, array-like), written to a PNG here


def export_corrected(core: CorrectedCore, folder: str | Path) -> dict:
    """Write the corrected mask (dataset values, via the exporter) and, if needed, the image.

    Returns the ``{"name", "image", "mask"}`` entry of ``data.corrected``. The files live in the
    run folder, so the run's config.json keeps pointing at what it was trained on.
    """
    from PIL import Image

    from ._export import export_mask

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mask = export_mask(np.asarray(core.classes, np.uint8), core.name, core.scheme, folder,
                       ask_overwrite=lambda _p: True)
    image = Path(core.image_path) if core.image_path else None
    if image is None or not image.is_file():
        if core.image is None:
            raise ValueError(f"corrected core {core.name}: neither an image file nor its pixels")
        image = folder / f"{core.name}_image.png"
        Image.fromarray(np.asarray(core.image)[..., :3].astype(np.uint8)).save(image)
    return {"name": core.name, "image": str(image), "mask": str(mask)}


def finetune_job(checkpoint: str | Path, core: CorrectedCore, *, iters: int, lr: float, device: str,
                 out: str | Path, data: str | None = None, stop=None):
    """Fine-tune ``checkpoint`` on its dataset (or ``data``) plus the corrected ``core``."""
    guard_triton()
    from trainer.checkpoint import load_checkpoint
    from trainer.engine import train

    payload = load_checkpoint(checkpoint)
    corrected = [export_corrected(core, Path(out) / "corrected")]
    cfg = finetune_config(payload.get("config") or {}, checkpoint=checkpoint, corrected=corrected, iters=iters,
                          lr=lr, device=device, out=out, data=data)
    yield ev.Message(f"fine-tuning {Path(checkpoint).name} on {cfg.data.path} + corrected core {core.name} "
                     f"({corrected[0]['mask']})")
    with torch_threads_sparing_gui(device), gc_frozen():
        yield from train(cfg, stop=stop)
