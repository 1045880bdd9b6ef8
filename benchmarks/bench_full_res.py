"""Full-resolution (tiled) prediction of a 5120² core with six experts: time and peak RSS.

    .venv/bin/python benchmarks/bench_full_res.py [--size 5120] [--model hrnet18] [--workdir DIR]

Builds once (cached in ``--workdir``, shared with bench_open_core.py) the review store of a
Gleason-layout core of ``size``² with six experts, then, each in a fresh process so that its peak
RSS is its own:

- ``store``: what the predict widget does in "full resolution" for a core opened from a review
  store: the image is read tile by tile from the store and every output (class map, 4
  probabilities, 6 weight maps, learned consensus, roughness; pyramids) is written band by band
  into it (``trainer.prediction.predict`` with ``Tiled()`` and ``StoreSink``). Target: peak RSS ≤ 2 GB on the CPU.
- ``memory`` (``--with-memory``): the same tiled prediction returning full-size arrays, as for a
  core opened from image files; for comparison.

The model is randomly initialised (no weights can be downloaded here) with the paper's input
size 1024 and a weighting CNN over six experts; time does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

EXPERTS = ("1", "2", "3", "4", "5", "6")


def _predictor(model_name: str, size: int):
    import torch

    from trainer.data.classes import GLEASON_SCHEME
    from trainer.models import create_model
    from trainer.prediction.predictor import Predictor, ready_for_inference
    from trainer.reweighting import WeightingCNN

    torch.manual_seed(0)
    model = create_model(model_name, 4).eval()
    weighting = WeightingCNN(len(EXPERTS)).eval()
    return ready_for_inference(Predictor(model, weighting, GLEASON_SCHEME, EXPERTS, size, torch.device("cpu")))


def scenario(kind: str, store_path: str, model_name: str, size: int, overlap: int) -> dict:
    """Child process: predict the store's core at full resolution; time and peak RSS."""
    from bench_open_core import rss_peak_mb

    from trainer.data.core import role_prefix
    from trainer.prediction import StoreSink, Tiled, predict
    from trainer.review_store import ReviewStore

    pred = _predictor(model_name, size)
    store = ReviewStore.open(store_path)
    name = store.names[0]
    data = store.load(name)
    labels = {r.split(":", 1)[1]: v[0] for r, v in data.labels.items() if role_prefix(r) == "expert"}  # lazy zarr
    mode = Tiled(overlap=overlap)
    rss_ready = rss_peak_mb()
    t0 = time.perf_counter()
    if kind == "store":
        out = predict(pred, None, mode, StoreSink(store.path), core=name, experts=list(labels), labels=labels,
                      coding=store.coding, scheme=store.scheme)
        assert out.store and len(out.maps) == 4 + 6 + 1, sorted(out.maps)
    else:
        image = data.image[0]  # lazy (dask over the store's zarr): tiles are read as needed
        out = predict(pred, image, mode, core=name, experts=list(labels), scheme=store.scheme)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rss_ready_mb": rss_ready, "rss_peak_mb": rss_peak_mb(),
            "shape": list(data.shape), "experts": len(labels)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--model", default="hrnet18")
    p.add_argument("--input", type=int, default=1024, help="model input (tile) size")
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "napari-gleason-bench"))
    p.add_argument("--with-memory", action="store_true", help="also run the in-memory tiled path")
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.scenario:
        print(json.dumps(scenario(a.scenario, a.store, a.model, a.input, a.overlap)))
        return 0

    import os
    import shutil

    from _common import machine
    from bench_open_core import build_dataset, build_store

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    root = build_dataset(work, a.size)
    clean, _ = build_store(root, work)
    print(f"# full-resolution prediction of a {a.size}² core, six experts, {a.model} + weighting CNN, "
          f"{a.input}² tiles, overlap {a.overlap}")
    print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print("| path | seconds | RSS before (model loaded) | peak RSS | target |")
    print("|---|---|---|---|---|")
    kinds = ["store"] + (["memory"] if a.with_memory else [])
    for kind in kinds:
        path = work / f"predict_{kind}.zarr"
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(clean, path)  # each run writes into its own copy
        cmd = [sys.executable, __file__, "--scenario", kind, "--store", str(path), "--model", a.model,
               "--input", str(a.input), "--overlap", str(a.overlap)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"| {kind} | failed: {res.stderr.strip().splitlines()[-1:]} | | | |")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        target = "≤ 2048 MB" if kind == "store" else "—"
        what = "review store → review store (band by band)" if kind == "store" else "review store → full arrays in memory"
        print(f"| {what} | {r['seconds']:.1f} | {r['rss_ready_mb']:.0f} MB | {r['rss_peak_mb']:.0f} MB | {target} |",
              flush=True)
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
