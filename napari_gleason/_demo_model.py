"""The demo's small model: how the shipped ``sample_data/demo_model.pt`` was trained, and how to
train it again (``python -m napari_gleason.demo --make-model``). No GUI here."""

from __future__ import annotations

import sys
from pathlib import Path

from . import sample_data

DEMO_MODEL = sample_data.DEMO_MODEL
#: How it was made (:func:`make_demo_model`): 40 synthetic cores of the sample generator (seed 1, so
#: the demo's sample core, seed 3, is not among them), then a CPU run of a 600-iteration schedule
#: stopped after iteration :data:`DEMO_STOP_AT` (validation Dice 0.600, 0.646, 0.664 at 100, 200, 300).
DEMO_SYNTH = {"cores": 40, "size": 256, "seed": 1}
DEMO_RUN = {
    "data": {"size": 128},
    "model": {"name": "pspnet", "encoder": "mobilenet_v2"},
    # --confusion's defaults: Zhang et al.'s heads on PSPNet's decoder features and their objective
    "loss": {"loss": "focal", "reweight": False, "confusion": True},
    "train": {"iters": 600, "batch_size": 2, "lr": 0.01, "seed": 0, "val_every": 100, "checkpoint_every": 100,
              "device": "cpu"},
}
DEMO_STOP_AT = 300


def slim_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` (a checkpoint or run folder) as a small predict-only checkpoint at ``dst``.

    Drops what only training needs (optimiser state, RNG state) and stores the networks' floating
    weights as float16 (they are loaded into float32 modules; predictions differ by ~1e-3): the
    demo model stays a few MB in the repository.
    """
    import torch

    from trainer.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(src)
    for key in ("optimizer", "rng", "format", "version"):
        payload.pop(key, None)
    for key in ("model", "weighting", "confusion"):
        state = payload.get(key)
        if state:
            payload[key] = {k: v.half() if torch.is_floating_point(v) else v for k, v in state.items()}
    return save_checkpoint(dst, payload)


def make_demo_model(out: str | Path = DEMO_MODEL, work: str | Path | None = None) -> Path:
    """Rebuild the demo checkpoint: synthetic cores (:data:`DEMO_SYNTH`), the training run
    :data:`DEMO_RUN` stopped after iteration :data:`DEMO_STOP_AT` (the engine's stop flag, as the
    Stop button), then :func:`slim_checkpoint` of its best checkpoint. Same recipe, same seeds;
    bit-identical weights are not promised across machines and thread counts."""
    import tempfile

    from trainer import events as ev
    from trainer.config import build_run_config
    from trainer.engine import train
    from trainer.synthetic import write_dataset

    work = Path(work or tempfile.mkdtemp(prefix="napari-gleason-demo-model-"))
    data, run = work / "synthetic", work / "run"
    if not data.exists():
        write_dataset(data, **DEMO_SYNTH)
    cfg = build_run_config(DEMO_RUN, {"data": {"path": str(data)}, "train": {"out": str(run)}})
    done = 0
    for event in train(cfg, stop=lambda: done >= DEMO_STOP_AT):
        if isinstance(event, ev.IterationDone):
            done = event.iteration
            if done % 20 == 0:
                print(f"iteration {done}/{DEMO_STOP_AT}", file=sys.stderr, flush=True)
    return slim_checkpoint(run, out)
