"""P3: data pipeline throughput at the paper's size (decode + resize + augment), images/s, with
and without the in-memory cache of resized cores, against the step rate it must feed.

    python benchmarks/bench_data.py --core 5120 --size 1024 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import big_core, machine

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from trainer.data import open_dataset
from trainer.data.dataset import IterationSampler, MultiExpertDataset


def write_dataset(root: Path, n: int, core: int) -> None:
    (root / "Train Imgs").mkdir(parents=True)
    for k in (1, 3, 4):
        (root / f"Maps{k}_T").mkdir()
    for i in range(n):
        img = big_core(core, seed=i)
        name = f"slide001_core{i:03d}"
        Image.fromarray(img).save(root / "Train Imgs" / f"{name}.jpg", quality=90)
        mask = np.where(img.mean(2) < 200, 3, 1).astype(np.uint8)
        for k in (1, 3, 4):
            Image.fromarray(mask).save(root / f"Maps{k}_T" / f"{name}_classimg_nonconvex.png")


def rate(ds, workers: int, batches: int, batch: int) -> float:
    sampler = IterationSampler(len(ds), batch, 0, 0, batches)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=False)
    t0 = time.perf_counter()
    n = sum(b["image"].shape[0] for b in loader)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--core", type=int, default=5120)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--cores", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=8)
    a = p.parse_args(argv)
    print(f"# P3 data pipeline: {a.cores} cores of {a.core}² JPEG → {a.size}², batch 2, {a.workers} workers")
    print(f"# machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_dataset(root, a.cores, a.core)
        ds = open_dataset(root)
        recs = ds.cores
        cold = MultiExpertDataset(ds, recs, ("1", "3", "4"), a.size, augment=True, cache=False)
        warm = MultiExpertDataset(ds, recs, ("1", "3", "4"), a.size, augment=True, cache=True)
        for i in range(len(warm)):
            warm.load_resized(i)  # what the first epoch does once
        r_cold = rate(cold, a.workers, a.batches, 2)
        r_warm = rate(warm, 0, a.batches, 2)
    print("| pipeline | images/s |")
    print("|---|---|")
    print(f"| decode {a.core}² JPEG + resize + augment ({a.workers} workers) | {r_cold:.2f} |")
    print(f"| cached resized core + augment (main process) | {r_warm:.2f} |")
    print(f"# one H100 step of HRNet18 + re-weighting at 1024² (batch 2) needs ≈ 2 / step_time images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
