"""Fine-tuning on a corrected core, the human-in-the-loop step (headless; tests call it directly).

:func:`finetune_job` is a generator the train widget runs in a worker thread: it writes the
corrected core's labels as a mask PNG in the dataset's values (the exporter, in this process),
builds the fine-tuning configuration from the checkpoint's own (``data.corrected``,
``train.init``), and trains it in a child process like any run (:func:`._child_run.run_in_child`),
passing the engine's events through; the stop flag stops the child (it still saves ``last.pt``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer import events as ev
from trainer.data.core import Core

from ._child_run import run_in_child
from ._llvm_guard import guard_triton
from ._train_settings import finetune_config

#: The role of a core's corrected class map (``Core.extras``) that fine-tuning trains on.
CORRECTED = "corrected"


def export_corrected(core: Core, folder: str | Path) -> dict:
    """Write ``core``'s corrected class map (``extras["corrected"]``, snapshot on the GUI thread) as
    a mask in the dataset's values (via the exporter) and, unless the core's ``origin`` names its
    image file, the image.

    Returns the ``{"name", "image", "mask"}`` entry of ``data.corrected``. The files live in the
    run folder, so the run's config.json keeps pointing at what it was trained on.
    """
    from PIL import Image

    from ._export import export_mask

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mask = export_mask(np.asarray(core.extras[CORRECTED], np.uint8), core.name, core.scheme, folder,
                       ask_overwrite=lambda _p: True)
    source = core.origin.get("source")
    image = Path(source) if source else None
    if image is None or not image.is_file():
        if core.image is None:
            raise ValueError(f"corrected core {core.name}: neither an image file nor its pixels")
        image = folder / f"{core.name}_image.png"
        Image.fromarray(np.asarray(core.image)[..., :3].astype(np.uint8)).save(image)
    return {"name": core.name, "image": str(image), "mask": str(mask)}


def finetune_job(checkpoint: str | Path, core: Core, *, iters: int, lr: float, device: str,
                 out: str | Path, data: str | None = None, stop=None):
    """Fine-tune ``checkpoint`` on its dataset (or ``data``) plus the corrected ``core``, in a child process."""
    guard_triton()
    from trainer.checkpoint import load_checkpoint, run_config_of  # the checkpoint's own configuration only

    payload = load_checkpoint(checkpoint)
    corrected = [export_corrected(core, Path(out) / "corrected")]
    cfg = finetune_config(run_config_of(payload), checkpoint=checkpoint, corrected=corrected, iters=iters,
                          lr=lr, device=device, out=out, data=data)
    del payload
    yield ev.Message(f"fine-tuning {Path(checkpoint).name} on {cfg.data.path} + corrected core {core.name} "
                     f"({corrected[0]['mask']})")
    yield from run_in_child(cfg, 1, stop)
