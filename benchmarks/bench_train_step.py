"""Training-step time per model and loss variant, measured side by side in one run (P2).

Each variant builds the real training setup (trainer.training_setup) on the same data and times
full iterations (data → forward → N+1 losses → backward → SGD step) after warm-up iterations.

    python benchmarks/bench_train_step.py --size 256 --models hrnet18,unet --iters 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import build_run_config  # noqa: E402
from trainer.device import resolve_device  # noqa: E402
from trainer.engine import backward_and_step, step_losses  # noqa: E402
from trainer.training_setup import build_setup  # noqa: E402

CPU_CLOCK = False  # --cpu-time: process CPU seconds (robust to other load on a shared machine)

VARIANTS = {
    "focal": dict(loss="focal", reweight=False),
    "gafl": dict(loss="gafl", reweight=False),
    "reweight": dict(loss="focal", reweight=True),
    "both": dict(loss="gafl", reweight=True),
    "both-half": dict(loss="gafl", reweight=True, weight_input_scale=0.5),
    # Zhang et al.'s confusion heads on the segmentation network's decoder features (--confusion's default)
    "confusion": dict(loss="focal", reweight=False, confusion=True),
    # the same matrices from a separate ResNet-18 at output stride 8 (the earlier CPU presets' choice)
    "confusion-trunk": dict(loss="focal", reweight=False, confusion=True, confusion_form="trunk", weight_stride=8),
}


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    from trainer.ablation.report import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def make_variant(data: str, model: str, variant: str, size: int, batch: int, total: int, device: str):
    """The real training setup of one variant and an iterator over its batches."""
    cfg = build_run_config(overrides={"data": {"path": data, "size": size}, "model": {"name": model},
                                      "train": {"batch_size": batch, "device": device, "iters": total, "out": ""},
                                      "loss": dict(VARIANTS[variant])})
    torch.manual_seed(0)
    setup = build_setup(cfg, resolve_device(device))
    return setup, iter(setup.train_loader(0, total))


def time_step(setup, batches, i: int) -> float:
    """One full iteration (forward, N+1 losses, backward, SGD step) on the next batch."""
    dev = setup.device
    batch_ = next(batches)
    clock = time.process_time if CPU_CLOCK else time.perf_counter
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = clock()
    terms, _, _ = step_losses(setup, batch_, i)
    backward_and_step(setup, terms["total"])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return clock() - t0


def time_variants(data: str, model: str, variants: list[str], size: int, batch: int, iters: int, warmup: int,
                  device: str) -> dict[str, list[float]]:
    """Per variant, ``iters`` step times after ``warmup``, the variants *interleaved*: round r times
    step r of every variant in turn, so a change in the machine's load hits all of them alike
    instead of whichever variant happened to run then."""
    built = {v: make_variant(data, model, v, size, batch, warmup + iters, device) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for i in range(warmup + iters):
        for v in variants:
            t = time_step(*built[v], i)
            if i >= warmup:
                times[v].append(t)
    return times


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(root / "sample_data" / "gleason_synthetic"))
    p.add_argument("--models", default="hrnet18,hrnet48,unet,deeplabv3plus,pspnet")
    p.add_argument("--variants", default="focal,both")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--cpu-time", action="store_true", help="measure process CPU time instead of wall time")
    a = p.parse_args(argv)
    global CPU_CLOCK
    CPU_CLOCK = a.cpu_time
    if a.threads:
        torch.set_num_threads(a.threads)
    variants = a.variants.split(",")
    clock = "CPU seconds" if a.cpu_time else "wall seconds"
    print(f"# training step ({clock}), batch {a.batch_size}, {a.size}², median of {a.iters} after {a.warmup} warm-up, "
          "variants interleaved step by step")
    print(f"# machine: {machine()}; torch threads {torch.get_num_threads()}")
    print("| model | " + " | ".join(f"{v} s/it" for v in variants) + " | " +
          " | ".join(f"{v}/focal" for v in variants if v != "focal") + " |")
    print("|---" * (1 + 2 * len(variants) - ("focal" in variants)) + "|")
    for model in a.models.split(","):
        times = time_variants(a.data, model, variants, a.size, a.batch_size, a.iters, a.warmup, a.device)
        med = {v: statistics.median(t) for v, t in times.items()}
        ratios = [f"{med[v] / med['focal']:.2f}×" for v in variants if v != "focal" and "focal" in med]
        print(f"| {model} | " + " | ".join(f"{med[v]:.3f}" for v in variants) + " | " + " | ".join(ratios) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
