"""Run the benchmark: every variant × model × seed through the one engine, then score it.

Training is :func:`trainer.engine.train` (no second loop): a variant is only a
:class:`~trainer.config.RunConfig` — which dataset (vote of the training experts, STAPLE, one
expert), focal or GAF loss, re-weighting on or off. Each finished run leaves ``result.json`` in
its folder; a rerun with the same ``--out`` reuses those whose config is unchanged, so an
interrupted benchmark continues where it stopped.

Scoring, on the test cores (all six experts, known truth): Dice per class (Table 2's columns)
against the truth and against the vote of all six (the paper's protocol); for re-weighting runs
the AUROC of ``1 − w_expert`` for every training expert's wrong pixels (:mod:`.auroc`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import events as ev
from ..config import RunConfig
from ..data import open_dataset
from ..data.classes import GLEASON_CLASSES
from ..data.io import read_image
from ..data.records import load_core
from ..data.splits import load_split
from ..data.vote import majority_vote
from ..engine import train
from ..metrics import DiceAccumulator
from ..training_setup import resolve_device
from ..synthetic import EXPERT_NAMES
from .auroc import AurocPool
from .data import NUM_CLASSES, BenchData, prepare_data, truth_and_flags
from .presets import VARIANTS, Preset, get_preset


@dataclass
class RunPlan:
    model: str
    encoder: str | None
    variant: str
    seed: int
    run_dir: Path
    cfg: RunConfig

    @property
    def label(self) -> str:
        return f"{self.model}/{self.variant}/seed{self.seed}"


def make_config(preset: Preset, variant: str, model: str, encoder: str | None, seed: int, data: BenchData,
                run_dir: Path, device: str) -> RunConfig:
    """The engine config of one run; everything but the dataset and the loss modules is shared."""
    v = VARIANTS[variant]
    path, split_file = data.dataset_for(v.labels)
    cfg = RunConfig()
    cfg.data.path, cfg.data.split_file, cfg.data.size = str(path), str(split_file), preset.size
    cfg.data.train_experts = list(preset.train_experts) if v.labels == "vote" else None
    cfg.data.val_fraction = preset.val_fraction
    cfg.model.name, cfg.model.encoder = model, encoder
    cfg.loss.loss, cfg.loss.reweight = v.loss, v.reweight
    cfg.loss.lambda_step, cfg.loss.weight_stride = preset.lambda_step, preset.weight_stride
    t = cfg.train
    t.iters, t.batch_size, t.lr, t.seed = preset.iters, preset.batch_size, preset.lr, seed
    t.device, t.amp = device, preset.amp
    t.val_every = t.checkpoint_every = min(preset.val_every, preset.iters)
    t.out = str(run_dir)
    cfg.validate()
    return cfg


def plan_runs(preset: Preset, data: BenchData, out: Path, device: str) -> list[RunPlan]:
    """Seed-major order, so a benchmark cut short still has every variant for its first seeds."""
    plans = []
    for seed in range(preset.seeds):
        for model, encoder in preset.models:
            for variant in preset.variants:
                run_dir = out / "runs" / model / variant / f"seed{seed}"
                cfg = make_config(preset, variant, model, encoder, seed, data, run_dir, device)
                plans.append(RunPlan(model, encoder, variant, seed, run_dir, cfg))
    return plans


def training_fingerprint(cfg: RunConfig) -> str:
    """Hash of the training cores' names and image bytes, in the order the sampler indexes them."""
    ds = open_dataset(cfg.data.path)
    split = load_split(cfg.data.split_file, ds)
    h = hashlib.sha256()
    for names in (split.train, split.val):
        part = hashlib.sha256()
        for name in names:
            part.update(name.encode())
            part.update(Path(ds.core(name).image_path).read_bytes())
        h.update(part.digest())
    return h.hexdigest()[:16]


def train_one(plan: RunPlan, log=print) -> dict:
    """Run the engine for one plan; keep a thinned trace of λ2, the loss terms and mean weights."""
    iters = plan.cfg.train.iters
    every = max(1, iters // 100)
    say_every = max(1, iters // 5)
    trace: dict[str, list] = {"iteration": [], "lambda2": []}
    started = finished = None
    for event in train(plan.cfg):
        if isinstance(event, ev.RunStarted):
            started = event
        elif isinstance(event, ev.IterationDone):
            if event.iteration % every == 0 or event.iteration in (1, iters):
                trace["iteration"].append(event.iteration)
                trace["lambda2"].append(event.lambda2)
                for k, v in event.losses.items():
                    trace.setdefault(k, []).append(v)
            if event.iteration % say_every == 0:
                w = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items() if k.startswith("weight/"))
                log(f"  {plan.label} iter {event.iteration}/{iters} total={event.losses['total']:.4f} "
                    f"λ2={event.lambda2:.3f} {w} ({event.seconds:.2f} s/it)")
        elif isinstance(event, ev.RunFinished):
            finished = event
    return {"counts": started.counts, "experts": started.experts, "iterations": finished.iteration,
            "train_seconds": finished.seconds, "last": finished.last_path, "best": finished.best_path,
            "trace": trace}


def evaluate_run(checkpoint: str, data: BenchData, device: str, figure_path: Path | None = None) -> dict:
    """Dice vs truth and vs the vote of six on the test cores; AUROC of 1 − w per training expert."""
    from ..inference import load_predictor, predict_core

    predictor = load_predictor(checkpoint, device)
    ds = open_dataset(data.data)
    vs_truth, vs_vote = DiceAccumulator(NUM_CLASSES), DiceAccumulator(NUM_CLASSES)
    pool = AurocPool(tuple(predictor.experts)) if predictor.weighting is not None else None
    for name in data.split.test:
        record = ds.core(name)
        masks = load_core(record, ds.scheme).masks
        truth, flags, tissue = truth_and_flags(data.data, name)
        pred = predict_core(predictor, read_image(record.image_path))
        vs_truth.update(truth, pred.classes)
        vs_vote.update(majority_vote(np.stack([masks[e] for e in EXPERT_NAMES]), NUM_CLASSES), pred.classes)
        if pool is not None and pred.weights:
            for e, w in pred.weights.items():
                pool.add(e, w, masks[e], truth, flags, tissue, pred.classes)
            if figure_path is not None and name == data.figure_core:
                np.savez_compressed(figure_path, image=read_image(record.image_path), truth=truth, tissue=tissue,
                                    prediction=pred.classes, experts=np.array(list(pred.weights)),
                                    labels=np.stack([masks[e] for e in pred.weights]),
                                    weights=np.stack(list(pred.weights.values())), core=name)
    names = list(GLEASON_CLASSES)
    return {
        "dice_truth": dict(zip(names, map(float, vs_truth.dice()))), "mean_dice_truth": vs_truth.mean_dice(),
        "dice_vote6": dict(zip(names, map(float, vs_vote.dice()))), "mean_dice_vote6": vs_vote.mean_dice(),
        "auroc": pool.result() if pool is not None else None,
    }


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def run_benchmark(preset: str | Preset, out: str | Path, seeds: int | None = None, device: str = "auto",
                  command: str | None = None, log=print, **overrides) -> dict:
    """Run (or continue) a benchmark in ``out`` and write ``results.json``, ``table.md`` and figures.

    ``overrides`` change preset fields (``size``, ``iters``, ``models``, ...), e.g. for a smoke test.
    """
    from .report import clean, write_report

    preset = get_preset(preset).replace(**overrides)
    if seeds is not None:
        preset = preset.replace(seeds=int(seeds))
    preset.validate()
    out = Path(out)
    t0 = time.perf_counter()
    if preset.cpu_threads and resolve_device(device).type == "cpu":
        import torch

        torch.set_num_threads(preset.cpu_threads)
    data = prepare_data(out, preset, log)
    plans = plan_runs(preset, data, out, device)
    runs = []
    for i, plan in enumerate(plans):
        result_path = plan.run_dir / "result.json"
        if result_path.exists():
            old = json.loads(result_path.read_text())
            if _same(old.get("config", {}), plan.cfg.to_dict()):
                log(f"[{i + 1}/{len(plans)}] {plan.label}: reusing {result_path}")
                runs.append(old)
                continue
        if plan.run_dir.exists():
            shutil.rmtree(plan.run_dir)  # a run cut short, or from other settings
        log(f"[{i + 1}/{len(plans)}] {plan.label}: training {plan.cfg.train.iters} iterations")
        trained = train_one(plan, log)
        ckpt = trained["best"] if preset.checkpoint == "best" and trained["best"] else trained["last"]
        te = time.perf_counter()
        figure = plan.run_dir / "figure_core.npz" if plan.seed == 0 and VARIANTS[plan.variant].reweight else None
        scores = evaluate_run(ckpt, data, device, figure)
        record = {"model": plan.model, "encoder": plan.encoder, "variant": plan.variant, "seed": plan.seed,
                  "config": plan.cfg.to_dict(), "data_fingerprint": training_fingerprint(plan.cfg),
                  "checkpoint": Path(ckpt).name, **{k: v for k, v in trained.items() if k not in ("last", "best")},
                  "eval_seconds": time.perf_counter() - te, **scores}
        result_path.write_text(json.dumps(clean(record), indent=1) + "\n")
        runs.append({**json.loads(result_path.read_text()), "trained_now": True})
        done = time.perf_counter() - t0
        log(f"[{i + 1}/{len(plans)}] {plan.label}: mean Dice vs truth {scores['mean_dice_truth']:.4f}, "
            f"vs vote of six {scores['mean_dice_vote6']:.4f}; {trained['train_seconds']:.0f} s train; "
            f"{done / 60:.1f} min so far")
    return write_report(out, preset, data, runs, command=command, wall_seconds=time.perf_counter() - t0)


__all__ = ["RunPlan", "make_config", "plan_runs", "run_benchmark", "train_one", "evaluate_run",
           "training_fingerprint"]
