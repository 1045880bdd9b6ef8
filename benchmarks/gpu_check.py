"""GPU check, one prepared run (≤ 8 min on one H100): CUDA results against CPU results on the same
inputs, then P1 (prediction), P2 (training step per loss variant) and P3 (data pipeline) on the GPU.

    bash benchmarks/gpu_check.sh            # or: python benchmarks/gpu_check.py --quick (CPU smoke run)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import machine

import torch

from trainer.data.classes import GLEASON_SCHEME
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
                     "--cores", "2", "--batches", "2" if a.quick else "8"])
    print(f"\n# total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
