"""P1: one-click prediction of a core at the paper's setting (whole core → 1024² model input,
outputs at model resolution), per model. Times the same call the predict widget and the CLI make
(:func:`trainer.prediction.predict` with :class:`~trainer.prediction.WholeCore`).

    python benchmarks/bench_predict.py --core 5120 --input 1024 --repeats 3 [--precision fp32]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import big_core, machine

import torch

from trainer.data.classes import GLEASON_SCHEME
from trainer.prediction.predictor import PRECISIONS, Predictor, ready_for_inference
from trainer.prediction import WholeCore, predict
from trainer.models import create_model
from trainer.reweighting import WeightingCNN


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="hrnet18,hrnet48,unet,deeplabv3plus,pspnet")
    p.add_argument("--core", type=int, default=5120)
    p.add_argument("--input", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-weights", action="store_true", help="leave out the weighting CNN")
    p.add_argument("--weight-stride", type=int, default=4, help="the weighting CNN's output stride (4: the authors')")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    image = big_core(a.core)
    print(f"# P1 prediction: {a.core}² core, {a.input}² model input, median of {a.repeats} after 1 warm-up")
    print(f"# machine: {machine()}; device {dev}; precision {a.precision}")
    print("| model | seconds per core | with weighting CNN |")
    print("|---|---|---|")
    for name in a.models.split(","):
        model = create_model(name, 4)
        weighting = None if a.no_weights else WeightingCNN(3, stride=a.weight_stride)
        pred = ready_for_inference(Predictor(model, weighting, GLEASON_SCHEME, ("1", "3", "4"), a.input, dev,
                                             precision=a.precision))
        predict(pred, image, WholeCore(), experts=pred.experts)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            predict(pred, image, WholeCore(), experts=pred.experts)
            times.append(time.perf_counter() - t0)
        print(f"| {name} | {statistics.median(times):.3f} | {'no' if a.no_weights else 'yes'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
