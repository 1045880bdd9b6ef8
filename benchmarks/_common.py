"""Shared helpers for the benchmark scripts: machine description and a big synthetic core."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def machine() -> str:
    import torch

    from trainer.ablation.report import cpu_model

    cpu = cpu_model()
    desc = f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        desc = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}); host {desc}"
    return desc


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_core(size: int = 5120, seed: int = 0, base: int = 512) -> np.ndarray:
    """A synthetic H&E core of ``size``² (generated at ``base``² and upsampled: texture is coarse,
    cost is what matters here)."""
    from skimage.transform import resize

    from trainer.synthetic import make_core

    core = make_core(np.random.default_rng(seed), base)
    return (resize(core.image, (size, size), order=1, preserve_range=True, anti_aliasing=False)
            .astype(np.uint8))
