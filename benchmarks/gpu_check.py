"""GPU check, one prepared run (≤ 8 min on one H100): CUDA results against CPU results on the same
inputs (networks, losses, and the device-augment path against the worker path), then P1 (prediction),
P2 (training step per loss variant), P3 (data pipeline) and a torch.compile'd training step on the GPU.

    bash benchmarks/gpu_check.sh            # or: python benchmarks/gpu_check.py --quick (CPU smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine

from trainer.data.augment import augment, normalise
from trainer.data.classes import IGNORE_INDEX
from trainer.data.device_augment import augment_batch
from trainer.data.vote import majority_vote
from trainer.losses import focal_loss_multi, roughness_map
from trainer.models import create_model
from trainer.reweighting import WeightingCNN


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


def check_against_cpu(dev: torch.device, size: int) -> None:
    print(f"## CUDA vs CPU (fp32, {size}², same weights and inputs): relative L2 error")
    print("| what | rel. error |")
    print("|---|---|")
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    for name in ("hrnet18", "unet", "deeplabv3plus", "pspnet"):
        m = create_model(name, 4).eval()
        with torch.no_grad():
            ref = m(x)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            out = m.to(dev)(x.to(dev)).cpu()
        print(f"| {name} logits | {rel_err(out, ref):.2e} |")
    w = WeightingCNN(3).eval()
    present = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        ref = w(x, present=present, size=(size, size))
        out = w.to(dev)(x.to(dev), present=present.to(dev), size=(size, size)).cpu()
    print(f"| weighting CNN weights | {rel_err(out, ref):.2e} |")
    logits = torch.randn(2, 4, size, size)
    targets = torch.randint(0, 4, (2, 4, size, size))
    ref = focal_loss_multi(logits, targets, gamma=0.1) * roughness_map(x)[:, None]
    out = (focal_loss_multi(logits.to(dev), targets.to(dev), gamma=0.1) * roughness_map(x.to(dev))[:, None]).cpu()
    print(f"| GAF loss maps (N+1) | {rel_err(out, ref):.2e} |")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True


def check_device_augment(dev: torch.device, size: int, samples: int = 16) -> bool:
    """Device-augment path on ``dev`` against the numpy worker path, on the same cores and seeds."""
    print(f"\n## device augmentation on {dev} vs the worker path (numpy), {samples} samples at {size}²")
    rng = np.random.default_rng(0)
    worst, mask_bad, vote_bad = 0.0, 0, 0
    for start in range(0, samples, 4):
        images = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)
        masks = rng.integers(0, 4, (4, 3, size, size), dtype=np.uint8)
        masks[:, 2, : size // 3] = IGNORE_INDEX
        present = np.ones((4, 3), bool)
        present[0, 1] = False
        masks[0, 1] = IGNORE_INDEX
        seeds = [1000 + start + k for k in range(4)]
        out = augment_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(dev),
                            torch.from_numpy(masks).to(dev), torch.from_numpy(present).to(dev), seeds, 4)
        for k, seed in enumerate(seeds):
            img, m = augment(normalise(images[k]), masks[k], np.random.default_rng(seed), image_fill=0.0)
            worst = max(worst, float(np.abs(out["image"][k].cpu().numpy() - img.transpose(2, 0, 1)).max()))
            mask_bad += int((out["experts"][k].cpu().numpy() != m).sum())
            vote_bad += int((out["vote"][k].cpu().numpy() != majority_vote(m, 4)).sum())
    ok = worst < 1e-3 and mask_bad == 0 and vote_bad == 0
    print("| what | result |")
    print("|---|---|")
    print(f"| image, max abs difference (normalised units) | {worst:.2e} |")
    print(f"| expert masks, differing pixels | {mask_bad} |")
    print(f"| vote, differing pixels | {vote_bad} |")
    print(f"# device augmentation {'matches' if ok else 'DOES NOT MATCH'} the worker path")
    return ok


def time_compiled_step(data: str, dev: torch.device, model: str, size: int, iters: int, warmup: int,
                       backend: str) -> None:
    """Training step (GAFL + re-weighting) eager vs torch.compile'd, same data, one process."""
    import statistics

    from trainer.config import build_run_config
    from trainer.engine import backward_and_step, step_losses
    from trainer.training_setup import build_setup

    print(f"\n## torch.compile ({backend}): {model} + re-weighting, GAFL, {size}², batch 2, device augmentation")
    print("| step | first iteration s | median s/it | 10k iterations |")
    print("|---|---|---|---|")
    base = None
    for compiled in (False, True):
        cfg = build_run_config(overrides={"data": {"path": data, "size": size}, "model": {"name": model},
                                          "train": {"device": str(dev), "iters": warmup + iters, "compile": compiled,
                                                    "compile_backend": backend, "out": ""}})
        torch.manual_seed(0)
        setup = build_setup(cfg, dev)
        times = []
        for i, batch in enumerate(setup.train_loader(0, warmup + iters)):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            terms, _, _ = step_losses(setup, batch, i)
            backward_and_step(setup, terms["total"])
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times[warmup:])
        ratio = "" if base is None else f" ({base / med:.2f}× eager)"
        base = med if base is None else base
        print(f"| {'compiled' if compiled else 'eager'} | {times[0]:.1f} | {med:.3f}{ratio} | "
              f"{med * 10_000 / 60:.1f} min |", flush=True)
        del setup
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run of this script)")
    a = p.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"# GPU check — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
    if dev.type != "cuda" and not a.quick:
        print("no CUDA device: nothing to check here (use --quick for a CPU smoke run)")
        return 1
    size = 64 if a.quick else 512
    t0 = time.perf_counter()
    check_against_cpu(dev, size)
    augment_ok = check_device_augment(dev, 48 if a.quick else 1024, samples=8 if a.quick else 16)

    import bench_data
    import bench_predict
    import bench_train_step

    from trainer.synthetic import write_dataset

    print("\n## P1")
    bench_predict.main(["--core", "512" if a.quick else "5120", "--input", "64" if a.quick else "1024",
                        "--repeats", "1" if a.quick else "5", "--device", str(dev)])
    print("\n## P2")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        write_dataset(data, cores=6, size=128 if a.quick else 1024, seed=1)
        bench_train_step.main(["--data", str(data), "--models", "hrnet18" if a.quick else "hrnet18,hrnet48",
                               "--variants", "focal,gafl,reweight,both,both-half",
                               "--size", "64" if a.quick else "1024", "--iters", "2" if a.quick else "20",
                               "--warmup", "1" if a.quick else "5", "--device", str(dev)])
        print("# 10k-iteration run time = 10,000 × the 'both' s/it above")
        print("\n## P3")
        bench_data.main(["--core", "512" if a.quick else "5120", "--size", "64" if a.quick else "1024",
                         "--cores", "2", "--batches", "2" if a.quick else "8", "--device", str(dev)])
        # Last, as it may take the longest: inductor compiles HRNet18 + ResNet-18 forward and backward.
        # On the CPU smoke run aot_eager stands in (same tracing, no C++ build).
        spent = time.perf_counter() - t0
        if a.quick or spent < 270:
            time_compiled_step(str(data), dev, "hrnet18", 64 if a.quick else 1024, 2 if a.quick else 10,
                               2 if a.quick else 3, "aot_eager" if a.quick else "inductor")
        else:
            print(f"\n## torch.compile: skipped, {spent:.0f} s spent already (the script must end within 8 min)")
    print(f"\n# total {time.perf_counter() - t0:.0f} s")
    return 0 if augment_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
