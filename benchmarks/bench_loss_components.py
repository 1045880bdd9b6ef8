"""What GAFL and re-weighting add to one step, component by component (P2's overhead, isolated).

Whole-step timings on a shared 2-core machine jitter by ±5–10 %, more than GAFL costs; this times
the added pieces alone against the segmentation network's forward+backward.

    python benchmarks/bench_loss_components.py --size 256 --model hrnet18
"""

from __future__ import annotations

import argparse
import time

from _common import machine

import torch

from trainer.losses import focal_loss_multi, roughness_map
from trainer.models import create_model
from trainer.reweighting import WeightingCNN, combine_losses


def clock_ms(fn, repeats: int) -> float:
    fn()
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--model", default="hrnet18")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    b, n, s = 2, 3, a.size
    x = torch.randn(b, 3, s, s)
    model = create_model(a.model, 4)
    wnet = WeightingCNN(n)
    wnet_half = WeightingCNN(n, input_scale=0.5)
    targets = torch.randint(0, 4, (b, n + 1, s, s))
    present = torch.ones(b, n, dtype=torch.bool)

    def seg():
        model(x).sum().backward()

    def focal_vote():
        logits = torch.randn(b, 4, s, s, requires_grad=True)
        focal_loss_multi(logits, targets[:, :1]).mean().backward()

    def gafl_heat():
        roughness_map(x)

    def n_plus_1():
        logits = torch.randn(b, 4, s, s, requires_grad=True)
        focal_loss_multi(logits, targets).mean().backward()

    def weighting(net):
        def run():
            w = net(x, present=present, size=(s, s))
            maps = torch.rand(b, n + 1, s, s)
            valid = torch.ones(b, n + 1, s, s, dtype=torch.bool)
            combine_losses(maps[:, 0], maps[:, 1:], w, present, valid[:, 0], valid[:, 1:], 0.5, 0.5)["total"].backward()
        return run

    rows = [
        ("segmentation net fwd+bwd (the focal baseline's bulk)", seg),
        ("focal loss on the vote fwd+bwd", focal_vote),
        ("GAFL heatmap, eq. (5) (added by GAFL)", gafl_heat),
        ("N+1 focal maps in one call fwd+bwd", n_plus_1),
        ("weighting CNN + eq. (3-4) fwd+bwd (added by re-weighting)", weighting(wnet)),
        ("weighting CNN at half input fwd+bwd", weighting(wnet_half)),
    ]
    print(f"# loss components, batch {b}, {s}², {a.model}, process CPU ms, {a.threads} thread(s)")
    print(f"# machine: {machine()}")
    print("| component | ms |")
    print("|---|---|")
    base = None
    for label, fn in rows:
        ms = clock_ms(fn, a.repeats)
        base = base or ms
        print(f"| {label} | {ms:.1f} ({ms / base:.1%} of the network) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
