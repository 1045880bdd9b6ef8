"""Run the benchmark: every variant × model × seed through the one engine, then score it.

Training is :func:`trainer.engine.train` (no second loop): a variant is only a
:class:`~trainer.config.RunConfig` — which dataset (vote of the training experts, STAPLE, one
expert), focal or GAF loss, re-weighting on or off. Each finished run leaves ``result.json`` in
its folder; a rerun with the same ``--out`` reuses those whose config is unchanged, so an
interrupted benchmark continues where it stopped.

Scoring, on the test cores (known truth), from one prediction per core through the one pipeline
(:func:`trainer.prediction.predict`, the path a user's click takes): Dice per class (Table 2's
columns) against the truth (all pixels, and the tie pixels where the vote of the core's experts is
a tie) and against the vote of every expert of the core (all six: the paper's protocol). For every
annotator-model run, the AUROC of each detector of every training expert's wrong pixels, split by
kind of error, on all tissue and against same-true-class negatives (:mod:`.auroc`): ``1 − w`` for
re-weighting runs; for confusion runs the given-label and image-only error maps and those of a
global (image-independent) matrix per expert fitted on the run's training cores with the same
checkpoint (:mod:`trainer.annotators.global_confusion`); for both, the baselines
``1 − p(label written)`` and ``1 − max p`` of the segmentation network alone. For confusion runs,
the estimated against the true confusion matrices on the whole tissue and on each biased area, for
the pixel-wise and the global model (:mod:`.matrices`).
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
from ..config import RunConfig, build_run_config
from ..data import open_dataset
from ..data.classes import GLEASON_CLASSES
from ..data.io import read_image
from ..data.splits import load_split
from ..data.vote import majority_vote
from ..engine import train
from ..metrics import DiceAccumulator
from ..device import resolve_device
from ..annotators.global_confusion import global_error_map
from .auroc import BASELINES, DETECTORS, AurocPool, network_baselines  # noqa: F401  (DETECTORS re-exported)
from .data import NUM_CLASSES, BenchData, prepare_data, test_core_labels
from .matrices import ConfusionPool, global_rows
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
    every = min(preset.val_every, preset.iters)
    return build_run_config(overrides={  # a continued study reuses its run folders: resume=True
        "data": {"path": str(path), "split_file": str(split_file), "size": preset.size,
                 "train_experts": list(preset.train_experts) if v.labels == "vote" else None,
                 "val_fraction": preset.val_fraction},
        "model": {"name": model, "encoder": encoder},
        "loss": {"loss": v.loss, "reweight": v.reweight, "confusion": v.confusion, "lambda_step": preset.lambda_step,
                 "weight_stride": preset.weight_stride, "weight_input_scale": preset.weight_input_scale,
                 **dict(v.loss_options)},
        "train": {"iters": preset.iters, "batch_size": preset.batch_size, "lr": preset.lr, "seed": seed,
                  "device": device, "amp": preset.amp, "val_every": every, "checkpoint_every": every,
                  "out": str(run_dir)}}, resume=True)


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
                n = len(trace["iteration"])
                trace["iteration"].append(event.iteration)
                trace["lambda2"].append(event.lambda2)
                # A per-expert term is logged only when the batch holds that expert (two-expert
                # cores): NaN keeps every list aligned with "iteration".
                for k in event.losses.keys() - trace.keys():
                    trace[k] = [float("nan")] * n
                for k in trace.keys() - {"iteration", "lambda2"}:
                    trace[k].append(event.losses.get(k, float("nan")))
            if event.iteration % say_every == 0:
                w = " ".join(f"{k}={v:.3f}" for k, v in event.losses.items() if k.startswith(("weight/", "error/")))
                log(f"  {plan.label} iter {event.iteration}/{iters} total={event.losses['total']:.4f} "
                    f"λ2={event.lambda2:.3f} {w} ({event.seconds:.2f} s/it)")
        elif isinstance(event, ev.RunFinished):
            finished = event
    return {"counts": started.counts, "experts": started.experts, "iterations": finished.iteration,
            "train_seconds": finished.seconds, "last": finished.last_path, "best": finished.best_path,
            "trace": trace}


def evaluate_run(checkpoint: str, data: BenchData, device: str, figure_path: Path | None = None) -> dict:
    """Score one checkpoint on the test cores (see the module docstring for what)."""
    from ..prediction.predictor import load_predictor, predict_core
    from ..prediction.tissue import tissue_mask

    predictor = load_predictor(checkpoint, device)
    ds = open_dataset(data.data)
    vs_truth, vs_vote, on_ties = (DiceAccumulator(NUM_CLASSES) for _ in range(3))
    annotator = "reweight" if predictor.weighting is not None else (
        "confusion" if getattr(predictor, "confusion", None) is not None else None)
    pool = AurocPool(tuple(predictor.experts), data.error_kinds) if annotator else None
    matrices = ConfusionPool(NUM_CLASSES) if annotator == "confusion" else None
    global_matrices = global_pool = None
    if annotator == "confusion":  # the image-independent baseline, fitted with this checkpoint
        global_matrices = fit_global_matrices(predictor, ds, data.split.train)
        global_pool = ConfusionPool(NUM_CLASSES)
    for name in data.split.test:
        t = test_core_labels(data.data, ds, name)
        masks, truth, flags, tissue = t["masks"], t["truth"], t["flags"], t["tissue"]
        image = read_image(ds.core(name).image_path)
        present = [e for e in predictor.experts if e in masks] if annotator else []
        out, probs = predict_test_core(predictor, image, name, masks, present, annotator, ds.scheme)
        if out.classes.shape != truth.shape:  # the benchmark's cores are at the training size
            raise ValueError(f"core {name}: prediction {out.classes.shape} but labels {truth.shape}; the "
                             f"benchmark's cores must be at the checkpoint's input size {predictor.size}")
        vs_truth.update(truth, out.classes)
        on_ties.update(truth[t["ties"]], out.classes[t["ties"]])
        vs_vote.update(majority_vote(np.stack(list(masks.values())), NUM_CLASSES), out.classes)
        if pool is None:
            continue
        maps = detector_maps(annotator, probs, {e: masks[e] for e in present}, weights=out.weights,
                             errors=out.errors, errors_prior=out.errors_prior, global_matrices=global_matrices)
        for e in present:
            pool.add(e, maps[e], masks[e], truth, flags, tissue, out.classes)
        if matrices is not None:
            # whole tissue: the one prediction's per-core matrices, averaged over the tissue mask it
            # computed from the image (the same mask here, for the rows' probability mass)
            model_tissue = tissue_mask(image)
            for e in present:
                matrices.add("tissue", e, out.confusion.matrices[e], probs, tissue, truth, masks[e],
                             estimate_mask=model_tissue)
                global_pool.add("tissue", e, global_rows(global_matrices[e]), probs, tissue, truth, masks[e])
            for area_name, area in data.bias_areas(truth, flags).items():
                area &= tissue
                mine = [e for e in data.biases()[area_name]["experts"] if e in present]
                if area.sum() == 0 or not mine:
                    continue
                # the pipeline averages the matrices over its own tissue mask and hands back no
                # per-pixel A: a biased area's average needs one more pass over the area
                on_area = predict_core(predictor, image, experts=tuple(mine), tissue=area)
                for e in mine:
                    matrices.add(area_name, e, on_area.confusion[e], on_area.probabilities, area, truth, masks[e])
                    global_pool.add(area_name, e, global_rows(global_matrices[e]), probs, area, truth, masks[e])
        if figure_path is not None and name == data.figure_core:
            names = list(maps[present[0]])
            np.savez_compressed(figure_path, image=image, truth=truth, tissue=tissue, prediction=out.classes,
                                experts=np.array(present), labels=np.stack([masks[e] for e in present]),
                                map_names=np.array(names),
                                maps=np.stack([np.stack([maps[e][n] for n in names]) for e in present]),
                                core=name, annotator=annotator)
    names = list(GLEASON_CLASSES)
    return {
        "dice_truth": dict(zip(names, map(float, vs_truth.dice()))), "mean_dice_truth": vs_truth.mean_dice(),
        "dice_truth_ties": dict(zip(names, map(float, on_ties.dice()))), "mean_dice_truth_ties": on_ties.mean_dice(),
        "dice_vote6": dict(zip(names, map(float, vs_vote.dice()))), "mean_dice_vote6": vs_vote.mean_dice(),
        "auroc": pool.result() if pool is not None else None,
        "confusion_matrices": matrices.result() if matrices is not None else None,
        "confusion_matrices_global": global_pool.result() if global_pool is not None else None,
        "global_matrices": ({e: m.tolist() for e, m in global_matrices.items()}
                            if global_matrices is not None else None),
    }


def predict_test_core(predictor, image: np.ndarray, name: str, masks: dict, present: list[str],
                      annotator: str | None, scheme) -> tuple:
    """One prediction of a core through the one pipeline (:func:`trainer.prediction.predict`), with
    the expert labels when the checkpoint has a confusion model (given-label and image-only maps
    both come from this one call). Returns ``(PredictOutput, C×H×W float32 probabilities)``."""
    from ..prediction import ArraySink, WholeCore, predict

    labels = {e: masks[e] for e in present} if annotator == "confusion" else None
    out = predict(predictor, image, WholeCore(), ArraySink(), core=name, experts=tuple(masks), labels=labels,
                  scheme=scheme)
    probs = np.stack([np.asarray(out.maps[f"probability:{c}"], np.float32) for c in predictor.classes])
    return out, probs


def fit_global_matrices(predictor, ds, train: list[str]) -> dict[str, np.ndarray]:
    """Each of the checkpoint's experts' global confusion matrix ``M[i, j]`` (label i, truth j),
    fitted on the training cores ``train`` by one soft-count pass with this checkpoint's
    probabilities, over the tissue mask the pipeline computes from the image (no truth is used)."""
    from ..annotators.global_confusion import fit_global_confusion
    from ..data.records import load_core
    from ..prediction import ArraySink, WholeCore, predict
    from ..prediction.tissue import tissue_mask

    probs: dict[str, list] = {e: [] for e in predictor.experts}
    labels: dict[str, list] = {e: [] for e in predictor.experts}
    tissues: dict[str, list] = {e: [] for e in predictor.experts}
    for name in train:
        masks = load_core(ds.core(name), ds.scheme).masks
        mine = [e for e in predictor.experts if e in masks]
        if not mine:
            continue
        image = read_image(ds.core(name).image_path)
        # no experts: the pipeline stops after the segmentation network (probabilities are all it needs)
        out = predict(predictor, image, WholeCore(), ArraySink(), core=name, scheme=ds.scheme)
        p = np.stack([np.asarray(out.maps[f"probability:{c}"], np.float32) for c in predictor.classes])
        if p.shape[1:] != image.shape[:2]:
            raise ValueError(f"core {name}: probabilities {p.shape[1:]} but image {image.shape[:2]}")
        tissue = tissue_mask(image)
        for e in mine:
            probs[e].append(p)
            labels[e].append(masks[e])
            tissues[e].append(tissue)
    return {e: fit_global_confusion(probs[e], labels[e], NUM_CLASSES, masks=tissues[e]) for e in predictor.experts}


def detector_maps(annotator: str, probabilities: np.ndarray, labels: dict[str, np.ndarray], *,
                  weights: dict | None = None, errors: dict | None = None, errors_prior: dict | None = None,
                  global_matrices: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """expert → detector name (:data:`DETECTORS`) → H×W map, high where the expert is believed wrong.

    ``labels``: the experts scored and their class maps; ``probabilities``: the network's ``C×H×W``;
    ``weights`` (re-weighting) or ``errors`` / ``errors_prior`` (confusion: given-label and
    image-only maps of one prediction) and ``global_matrices`` (expert → ``M[i, j]``).
    """
    out = {}
    for e, label in labels.items():
        m: dict[str, np.ndarray] = {}
        if annotator == "reweight":
            m["1 − w"] = 1.0 - np.asarray(weights[e])
        elif annotator == "confusion":
            m["error (given the label)"] = np.asarray(errors[e])
            m["error (image only)"] = np.asarray(errors_prior[e])
            if global_matrices is not None:
                m["global: error (given the label)"] = global_error_map(probabilities, global_matrices[e], label)
                m["global: error (image only)"] = global_error_map(probabilities, global_matrices[e])
        m.update(network_baselines(probabilities, label))
        out[e] = m
    return out


#: Bumped when what evaluate_run scores changes: a finished run scored by another version is scored
#: again from its checkpoint (no retraining). 2: AUROC on all tissue and same-class beside the
#: network baselines and the global-matrix model; whole-tissue matrices; prediction through predict().
SCORING_VERSION = 2


def same_config(a: dict, b: dict) -> bool:
    """Whether two run configs are the same (a finished run is then reused)."""
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
        figure = (plan.run_dir / "figure_core.npz"
                  if plan.seed == 0 and VARIANTS[plan.variant].annotator != "none" else None)
        if result_path.exists():
            old = json.loads(result_path.read_text())
            if same_config(old.get("config", {}), plan.cfg.to_dict()):
                if old.get("scoring_version") == SCORING_VERSION:
                    log(f"[{i + 1}/{len(plans)}] {plan.label}: reusing {result_path}")
                    runs.append(old)
                    continue
                ckpt = plan.run_dir / str(old.get("checkpoint"))
                if ckpt.is_file():  # trained with these settings, scored the old way: score it again
                    log(f"[{i + 1}/{len(plans)}] {plan.label}: scoring {ckpt} again (scoring version "
                        f"{old.get('scoring_version')} → {SCORING_VERSION})")
                    te = time.perf_counter()
                    scores = evaluate_run(str(ckpt), data, device, figure)
                    record = {**old, "eval_seconds": time.perf_counter() - te, **scores,
                              "scoring_version": SCORING_VERSION}
                    result_path.write_text(json.dumps(clean(record), indent=1) + "\n")
                    runs.append(json.loads(result_path.read_text()))
                    continue
        if plan.run_dir.exists():
            shutil.rmtree(plan.run_dir)  # a run cut short, or from other settings
        log(f"[{i + 1}/{len(plans)}] {plan.label}: training {plan.cfg.train.iters} iterations")
        trained = train_one(plan, log)
        ckpt = trained["best"] if preset.checkpoint == "best" and trained["best"] else trained["last"]
        te = time.perf_counter()
        scores = evaluate_run(ckpt, data, device, figure)
        record = {"model": plan.model, "encoder": plan.encoder, "variant": plan.variant, "seed": plan.seed,
                  "config": plan.cfg.to_dict(), "data_fingerprint": training_fingerprint(plan.cfg),
                  "checkpoint": Path(ckpt).name, **{k: v for k, v in trained.items() if k not in ("last", "best")},
                  "eval_seconds": time.perf_counter() - te, **scores, "scoring_version": SCORING_VERSION}
        result_path.write_text(json.dumps(clean(record), indent=1) + "\n")
        runs.append({**json.loads(result_path.read_text()), "trained_now": True})
        done = time.perf_counter() - t0
        log(f"[{i + 1}/{len(plans)}] {plan.label}: mean Dice vs truth {scores['mean_dice_truth']:.4f} "
            f"(tie pixels {scores['mean_dice_truth_ties']:.4f}), vs the vote of the test experts "
            f"{scores['mean_dice_vote6']:.4f}; {trained['train_seconds']:.0f} s train; "
            f"{done / 60:.1f} min so far")
    return write_report(out, preset, data, runs, command=command, wall_seconds=time.perf_counter() - t0)


__all__ = ["BASELINES", "DETECTORS", "SCORING_VERSION", "RunPlan", "detector_maps", "evaluate_run",
           "fit_global_matrices", "make_config", "plan_runs", "predict_test_core", "run_benchmark", "train_one",
           "training_fingerprint"]
