"""P3: data pipeline throughput at the paper's size (decode + resize + augment), images/s: decoding
every time, the disk cache of resized cores, the in-memory cache, and augmentation on the training
device (uint8 cores + seeds from the workers), against the step rate it must feed.

    python benchmarks/bench_data.py --core 5120 --size 1024 --workers 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import big_core, machine
from PIL import Image
from torch.utils.data import DataLoader

from trainer.data import open_dataset
from trainer.data.dataset import IterationSampler, MultiExpertDataset
from trainer.data.device_augment import augment_batch, seed_from_int64

EXPERTS = ("1", "3", "4")


def write_dataset(root: Path, n: int, core: int) -> None:
    (root / "Train Imgs").mkdir(parents=True)
    for k in EXPERTS:
        (root / f"Maps{k}_T").mkdir()
    for i in range(n):
        img = big_core(core, seed=i)
        name = f"slide001_core{i:03d}"
        Image.fromarray(img).save(root / "Train Imgs" / f"{name}.jpg", quality=90)
        mask = np.where(img.mean(2) < 200, 3, 1).astype(np.uint8)
        for k in EXPERTS:
            Image.fromarray(mask).save(root / f"Maps{k}_T" / f"{name}_classimg_nonconvex.png")


def rate(ds, workers: int, batches: int, batch: int, device: torch.device | None = None) -> float:
    """Images/s through a DataLoader; with ``device``, uint8 batches are augmented there too."""
    sampler = IterationSampler(len(ds), batch, 0, 0, batches)
    pin = device is not None and device.type == "cuda"
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=False, pin_memory=pin)
    t0 = time.perf_counter()
    n = 0
    for b in loader:
        if device is not None:
            seeds = [seed_from_int64(s) for s in b["seed"].tolist()]
            out = augment_batch(b["image"].to(device, non_blocking=pin), b["experts"].to(device, non_blocking=pin),
                                b["present"].to(device, non_blocking=pin), seeds, num_classes=4)
            n += out["image"].shape[0]
        else:
            n += b["image"].shape[0]
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def device_augment_ms(ds, device: torch.device, repeats: int, batch: int) -> float:
    """Milliseconds for augment_batch alone on a batch already on ``device`` (median)."""
    items = [ds[(i % len(ds), 1000 + i)] for i in range(batch)]
    image = torch.stack([it["image"] for it in items]).to(device)
    experts = torch.stack([it["experts"] for it in items]).to(device)
    present = torch.stack([it["present"] for it in items]).to(device)
    times = []
    for r in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        augment_batch(image, experts, present, [7 * r + k for k in range(batch)], num_classes=4)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if r:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--core", type=int, default=5120)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--cores", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--device", default="auto", help="where the device-augment rows run: auto, cpu or cuda")
    a = p.parse_args(argv)
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    print(f"# P3 data pipeline: {a.cores} cores of {a.core}² JPEG → {a.size}², batch 2, {a.workers} workers, "
          f"device rows on {dev}")
    print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        cache = Path(tmp) / "cache"
        write_dataset(root, a.cores, a.core)
        ds = open_dataset(root)
        recs = ds.cores

        def dataset(**kw):
            return MultiExpertDataset(ds, recs, EXPERTS, a.size, augment=True, **kw)

        rows.append((f"decode {a.core}² JPEG + resize + augment in workers ({a.workers} workers)",
                     rate(dataset(cache=False), a.workers, a.batches, 2)))
        t0 = time.perf_counter()
        filling = dataset(cache_dir=cache)
        for i in range(len(filling)):
            filling.load_planes(i)  # what the first epoch of the first run does once
        fill_s = (time.perf_counter() - t0) / len(filling)
        rows.append((f"disk-cached resized core (memory-mapped) + augment in workers ({a.workers} workers)",
                     rate(dataset(cache_dir=cache), a.workers, a.batches, 2)))
        warm = dataset(cache=True)
        raw = dataset(cache=True, device_augment=True)
        for i in range(len(warm)):
            warm.load_planes(i)
            raw.load_planes(i)
        rows.append(("in-memory cached core + augment in the main process", rate(warm, 0, a.batches, 2)))
        rows.append((f"in-memory cached core, uint8 → {dev} + device augment (main process)",
                     rate(raw, 0, a.batches, 2, device=dev)))
        rows.append((f"disk-cached core, uint8 → {dev} + device augment ({a.workers} workers)",
                     rate(dataset(cache_dir=cache, device_augment=True), a.workers, a.batches, 2, device=dev)))
        aug_ms = device_augment_ms(raw, dev, 5, 2)
        f32 = warm[(0, 1)]["image"].numel() * 4
        u8 = sum(raw[(0, 1)][k].numel() for k in ("image", "experts"))
        ref = sum(warm[(0, 1)][k].numel() * 8 for k in ("experts", "vote")) + f32
    print("| pipeline | images/s |")
    print("|---|---|")
    for name, r in rows:
        print(f"| {name} | {r:.2f} |")
    print(f"# first decode into the disk cache: {fill_s:.2f} s per core (once per core, size and expert set)")
    print(f"# augment_batch alone on {dev}, batch 2 at {a.size}²: {aug_ms:.1f} ms")
    print(f"# bytes per sample to pin and copy: {ref / 2**20:.1f} MiB as float32 image + int64 maps, "
          f"{u8 / 2**20:.1f} MiB as uint8")
    print("# one H100 step of HRNet18 + re-weighting at 1024² (batch 2) needs ≈ 2 / step_time images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
