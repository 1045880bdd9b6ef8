"""Benchmark: the dataset browser at Gleason 2019 scale — scoring every core, listing again from
the score cache, peak RSS, and what scoring on the grid changes.

    .venv/bin/python benchmarks/bench_browser.py [--cores 8] [--size 5120] [--experts 6] [--workdir DIR]
    .venv/bin/python benchmarks/bench_browser.py --cores 244          # the full challenge count

1. Builds once (kept in ``--workdir``) a Gleason 2019 layout of ``--cores`` cores of ``--size``²
   (default 8; the challenge has 244 of 5120²), each annotated by all ``--experts`` (default 6, the
   worst case): JPEG images in ``Train Imgs/``, PNG maps in ``Maps{k}_T/`` in Gleason values. The
   trainer's synthetic sample core and its six simulated experts, drawn at 1024² and scaled up
   (image bilinear, maps nearest), give four variants (flips / transposes); further cores are
   byte copies of those (decoding costs the same; the scores repeat).
2. In a fresh process with an empty score cache: list the folder and **score** every core as the
   browser's worker does (:meth:`napari_gleason._scores.DatasetScores.score`) — seconds per core
   and the process's peak RSS (VmHWM).
3. In another fresh process: open the folder again and **list** it from the cache
   (:meth:`DatasetScores.cached`) — seconds for the whole dataset, every core found in the cache;
   and in a third, the browser widget listing it (offscreen Qt): ``set_source`` until the table
   is filled, every row scored, no scoring worker started.
4. In a last process: the first core's scores at full resolution (step 1) against the grid's
   (step 4 at 5120²): the absolute differences, against :data:`GRID_TOLERANCE`.

Targets (the browser at Gleason 2019 scale): ≤ 2 s per core to score, ≤ 1 s to list a
scored dataset again, peak RSS ≤ 1.5 GB. One ✓/✗ line per target at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGETS = {"score_s_per_core": 2.0, "list_s": 1.0, "peak_rss_mb": 1536.0}
VARIANTS = 4


def rss_peak_mb() -> float:
    """Peak RSS of this process (VmHWM: not inherited from the parent, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _variant(a: np.ndarray, k: int) -> np.ndarray:
    """Variant ``k`` of a core (image or map): identity, flipped, transposed, both."""
    if k & 1:
        a = a[:, ::-1]
    if k & 2:
        a = a.swapaxes(0, 1)
    return np.ascontiguousarray(a)


def build_dataset(workdir: Path, cores: int, size: int, experts: int) -> Path:
    """The Gleason-layout folder (kept between runs: a ``done.json`` marks it complete)."""
    from PIL import Image

    from trainer.resample import resize_image
    from trainer.synthetic import sample_core, to_gleason_values

    root = workdir / f"gleason_{cores}x{size}_{experts}e"
    marker = root / "done.json"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    t = time.perf_counter()
    image, _truth, maps = sample_core(seed=3, size=1024)
    names = list(maps)[:experts]
    (root / "Train Imgs").mkdir(parents=True)
    for e in names:
        (root / f"Maps{e}_T").mkdir()
    first: dict[int, list[Path]] = {}
    for i in range(cores):
        core = f"slide{i // 6 + 1:03d}_core{i % 6 + 1:03d}"
        files = [root / "Train Imgs" / f"{core}.jpg"] + \
                [root / f"Maps{e}_T" / f"{core}_classimg_nonconvex.png" for e in names]
        k = i % VARIANTS
        if k in first:  # a byte copy of an earlier variant
            for src, dst in zip(first[k], files):
                shutil.copyfile(src, dst)
            continue
        Image.fromarray(_variant(resize_image(image, size), k)).save(files[0], quality=90)
        tissue = np.ones((size, size), bool)
        for e, path in zip(names, files[1:]):
            up = np.asarray(Image.fromarray(maps[e]).resize((size, size), Image.Resampling.NEAREST))
            Image.fromarray(_variant(to_gleason_values(up, tissue), k)).save(path)
        first[k] = files
    old = time.time() - 60  # the score cache skips files changed in the last 2 s
    for p in root.rglob("*.*"):
        os.utime(p, (old, old))
    marker.write_text(json.dumps({"cores": cores, "size": size, "experts": experts,
                                  "build_s": round(time.perf_counter() - t, 1)}))
    return root


# --- the measured scenarios, each in a fresh process -------------------------------------------
def scenario_score(root: Path) -> dict:
    from napari_gleason._scores import DatasetScores
    from trainer.data import open_dataset

    t = time.perf_counter()
    ds = open_dataset(root)
    scores = DatasetScores(ds)
    assert not scores.cached(), "the score cache was not empty"
    results = list(scores.score(ds.names))
    seconds = time.perf_counter() - t
    bad = [s.name for s in results if s.problems]
    return {"cores": len(results), "seconds": seconds, "s_per_core": seconds / max(1, len(results)),
            "problems": bad, "workers": scores.workers, "peak_rss_mb": rss_peak_mb(),
            "disagreement": [round(s.disagreement, 4) for s in results[:4]],
            "agreement": [round(s.agreement, 4) for s in results[:4]]}


def scenario_list(root: Path) -> dict:
    from napari_gleason._scores import DatasetScores
    from trainer.data import open_dataset

    t = time.perf_counter()
    ds = open_dataset(root)
    cached = DatasetScores(ds).cached()
    seconds = time.perf_counter() - t
    return {"cores": len(ds.names), "cached": len(cached), "seconds": seconds, "peak_rss_mb": rss_peak_mb()}


def scenario_list_widget(root: Path) -> dict:
    """The browser widget listing the folder (offscreen Qt, a viewer model without a window)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from napari.components import ViewerModel
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from napari_gleason._core_sources import open_source
    from napari_gleason._qt.browser import BrowserWidget

    widget = BrowserWidget(ViewerModel())
    t = time.perf_counter()
    widget.set_source(open_source(root), load_first=False)
    app.processEvents()
    seconds = time.perf_counter() - t
    pending = [widget.table.item(r, 2).text() for r in range(widget.table.rowCount())].count("…")
    return {"cores": widget.table.rowCount(), "cached": widget.table.rowCount() - pending, "seconds": seconds,
            "worker": widget._score_worker is not None, "peak_rss_mb": rss_peak_mb()}


def scenario_grid(root: Path) -> dict:
    from napari_gleason._scores import GRID_TOLERANCE, score_core
    from trainer.data import open_dataset

    ds = open_dataset(root)
    record = ds.core(ds.names[0])
    t = time.perf_counter()
    grid = score_core(record, ds.scheme)
    t_grid = time.perf_counter() - t
    t = time.perf_counter()
    full = score_core(record, ds.scheme, step=1)
    t_full = time.perf_counter() - t
    return {"step": grid.step, "grid_s": t_grid, "full_s": t_full,
            "d_disagreement": abs(grid.disagreement - full.disagreement),
            "d_agreement": abs(grid.agreement - full.agreement),
            "disagreement": full.disagreement, "agreement": full.agreement, "tolerance": GRID_TOLERANCE}


SCENARIOS = {"score": scenario_score, "list": scenario_list, "list-widget": scenario_list_widget,
             "grid": scenario_grid}


def run_scenario(name: str, root: Path, cache: Path) -> dict:
    env = dict(os.environ, NAPARI_GLEASON_CACHE=str(cache), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--scenario", name, "--root", str(root)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"scenario {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cores", type=int, default=8)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--experts", type=int, default=6, choices=range(2, 7))
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "napari-gleason-bench-browser")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.scenario:
        print(json.dumps(SCENARIOS[args.scenario](args.root)))
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    root = build_dataset(args.workdir, args.cores, args.size, args.experts)
    print(f"dataset: {root} ({args.cores} cores of {args.size}², {args.experts} experts each; "
          f"ready in {time.perf_counter() - t:.1f} s)")
    print(f"machine: {os.cpu_count()} CPU cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-browser-cache-") as cache:
        score = run_scenario("score", root, Path(cache))
        listing = run_scenario("list", root, Path(cache))
        widget = run_scenario("list-widget", root, Path(cache))
    with tempfile.TemporaryDirectory(prefix="bench-browser-cache-") as cache:
        grid = run_scenario("grid", root, Path(cache))
    print(f"score: {score['cores']} cores in {score['seconds']:.1f} s = {score['s_per_core']:.2f} s/core "
          f"({score['workers']} threads), peak RSS {score['peak_rss_mb']:.0f} MB, "
          f"cores with problems: {len(score['problems'])}")
    print(f"list again: {listing['cached']}/{listing['cores']} cores from the cache in {listing['seconds']:.3f} s, "
          f"peak RSS {listing['peak_rss_mb']:.0f} MB")
    print(f"list again in the browser widget: {widget['cached']}/{widget['cores']} rows scored at once in "
          f"{widget['seconds']:.3f} s (a scoring worker started: {widget['worker']}; "
          f"peak RSS with napari and Qt {widget['peak_rss_mb']:.0f} MB)")
    tol = grid["tolerance"]
    print(f"grid (step {grid['step']}, {grid['grid_s']:.2f} s) vs full resolution ({grid['full_s']:.2f} s) "
          f"on one core: "
          f"|Δ disagreement| = {grid['d_disagreement']:.2e} (≤ {tol['disagreement']}), "
          f"|Δ mean κ| = {grid['d_agreement']:.2e} (≤ {tol['agreement']}) "
          f"[full: disagreement {grid['disagreement']:.4f}, mean κ {grid['agreement']:.4f}]")
    peak = max(score["peak_rss_mb"], listing["peak_rss_mb"])
    rows = [
        (score["s_per_core"] <= TARGETS["score_s_per_core"],
         f"score: {score['s_per_core']:.2f} s per core (target ≤ {TARGETS['score_s_per_core']:.0f} s)"),
        (max(listing["seconds"], widget["seconds"]) <= TARGETS["list_s"] and listing["cached"] == listing["cores"]
         and widget["cached"] == widget["cores"] and not widget["worker"],
         f"list a scored dataset again: {listing['seconds']:.3f} s for {listing['cores']} cores, "
         f"{widget['seconds']:.3f} s in the browser (target ≤ {TARGETS['list_s']:.0f} s)"),
        (peak <= TARGETS["peak_rss_mb"], f"peak RSS: {peak:.0f} MB (target ≤ {TARGETS['peak_rss_mb']:.0f} MB)"),
        (grid["d_disagreement"] <= tol["disagreement"] and grid["d_agreement"] <= tol["agreement"],
         f"grid vs full resolution within tolerance: Δ {grid['d_disagreement']:.2e} / {grid['d_agreement']:.2e}"),
    ]
    for ok, text in rows:
        print(f"{'✓' if ok else '✗'} {text}")
    return 0 if all(ok for ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
