"""The ``cpu-real`` benchmark: real phase-contrast images, ten real experts, a gold standard never trained on.

Data: BU-BIL dataset 1 (D. Gurari et al., "How to Collect Segmentations for Biomedical Images? A
Benchmark Evaluating the Performance of Experts, Crowdsourced Non-Experts, and Algorithms", WACV
2015; :mod:`trainer.data.bubil`): 35 images, five people × two tools, a gold standard fused from the
experts. A seeded split puts about two thirds of the images in training and the rest in test; the
same split serves every run. Runs (one engine, :func:`trainer.engine.train`): the pixel-wise
confusion model (``loss.confusion = True``, its defaults) and focal on the vote of the ten experts,
a small UNet-ResNet-18 on one CPU thread, for each seed. Training reads the experts' masks only.

Evaluation goes through :func:`trainer.prediction.predict` (whole image at the model's size, every
expert's labels given) and compares everything at the model's resolution (gold and masks resized
with the training's nearest rule, :func:`trainer.resample.resize_nearest`):

- Dice vs gold (per class and mean) of each run, of each expert and of the vote of the ten;
- for every expert, the AUROC of its error maps — given its label, and image-only — against its
  real departures from gold (label ≠ gold), on all pixels and with negatives of the same gold class
  only, beside ``1 − p(label written)``, ``1 − max p`` (the segmentation network alone) and a global
  per-expert confusion matrix (image-independent, :mod:`trainer.annotators.global_confusion`)
  fitted on the training images;
- whether the model ranks the experts' reliability right: Spearman ρ between each expert's mean
  image-only predicted error and its true error rate vs gold.

Every figure is given on the test images and, labelled as such, on the training images (the
annotator model is meant to explain the annotations it was trained on; gold was never seen).
An expert with no departure from gold (in the published set Person2's masks *are* the gold
standard) has no AUROC (null).

Output: ``results.json`` (strict JSON, null for undefined) and ``table.md`` in the out folder, with
the command, git commit, CPU, date and wall time. Each finished run keeps ``result.json`` in its
folder; a rerun with the same settings reuses it (and only re-scores a run whose evaluation
changed).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import events as ev
from ..config import RunConfig, build_run_config
from ..errors import InputError
from .real_report import render_markdown, summarise
from .report import clean, git_commit, machine
from .run import same_config

PRESET_NAME = "cpu-real"
#: Bump when what :func:`evaluate_run` computes changes: finished runs are then re-scored, not retrained.
EVAL_VERSION = 1
CITATION = ("D. Gurari et al., \"How to Collect Segmentations for Biomedical Images? A Benchmark Evaluating the "
            "Performance of Experts, Crowdsourced Non-Experts, and Algorithms\", WACV 2015 (BU-BIL dataset 1)")


@dataclass(frozen=True)
class RealVariant:
    title: str
    confusion: bool


VARIANTS: dict[str, RealVariant] = {
    "confusion": RealVariant("confusion model (pixel-wise, its defaults)", True),
    "focal": RealVariant("focal on the vote (baseline)", False),
}


@dataclass(frozen=True)
class RealPreset:
    """What a ``cpu-real`` run depends on, apart from the device."""

    name: str = PRESET_NAME
    model: str = "unet"
    encoder: str | None = "resnet18"
    size: int = 224
    iters: int = 300
    batch_size: int = 2
    lr: float = 0.01
    seeds: int = 3
    train_fraction: float = 2 / 3
    split_seed: int = 0
    cpu_threads: int = 1
    variants: tuple[str, ...] = ("confusion", "focal")

    def replace(self, **changes) -> RealPreset:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError(f"unknown cpu-real settings {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        if not 0 < self.train_fraction < 1:
            raise InputError(f"train_fraction must be in (0, 1), not {self.train_fraction}")
        for name in ("iters", "batch_size", "seeds", "size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise InputError(f"unknown cpu-real variants {bad} (valid: {', '.join(VARIANTS)})")


def default_data() -> Path:
    """``$NAPARI_GLEASON_BUBIL``, else ``shared/data/bu-bil-dataset1`` beside the checkout."""
    env = os.environ.get("NAPARI_GLEASON_BUBIL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "bu-bil-dataset1"


# --- split and configs ------------------------------------------------------------------------------------
def split_images(names: list[str], train_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded split of image names: (train, test), each sorted; both non-empty."""
    names = sorted(names)
    if len(names) < 2:
        raise InputError(f"cpu-real needs at least 2 images, found {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    n_train = min(len(names) - 1, max(1, round(train_fraction * len(names))))
    train = sorted(names[i] for i in order[:n_train])
    test = sorted(names[i] for i in order[n_train:])
    return train, test


def make_config(preset: RealPreset, variant: str, seed: int, data: Path, split_file: Path, run_dir: Path,
                device: str) -> RunConfig:
    """The engine config of one run: the experts' masks of the training images, no validation."""
    return build_run_config(overrides={
        "data": {"path": str(data), "split_file": str(split_file), "size": preset.size, "val_fraction": 0.0},
        "model": {"name": preset.model, "encoder": preset.encoder},
        "loss": {"loss": "focal", "reweight": False, "confusion": VARIANTS[variant].confusion},
        "train": {"iters": preset.iters, "batch_size": preset.batch_size, "lr": preset.lr, "seed": seed,
                  "device": device, "val_every": preset.iters, "checkpoint_every": preset.iters,
                  "out": str(run_dir)}}, resume=True)


def train_run(cfg: RunConfig, label: str, log=print) -> dict:
    """Run the engine for one config; what the record keeps of it."""
    from ..engine import train

    iters, say_every = cfg.train.iters, max(1, cfg.train.iters // 5)
    finished = None
    for event in train(cfg):
        if isinstance(event, ev.IterationDone) and event.iteration % say_every == 0:
            log(f"  {label} iter {event.iteration}/{iters} total={event.losses['total']:.4f} "
                f"λ2={event.lambda2:.3f} ({event.seconds:.2f} s/it)")
        elif isinstance(event, ev.RunFinished):
            finished = event
    return {"iterations": finished.iteration, "train_seconds": finished.seconds, "last": finished.last_path}


# --- references: the experts, the vote, gold -----------------------------------------------------------------
@dataclass
class CoreRef:
    """One image at the model's size: the image itself, gold and each expert's labels (class maps)."""

    name: str
    image: np.ndarray  # full size, uint8 H×W×3 (predict resizes it)
    full_masks: dict[str, np.ndarray]  # at the image's size: what ``predict`` is given
    gold: np.ndarray  # model size
    masks: dict[str, np.ndarray]  # model size
    full_errors: dict[str, tuple[int, int]]  # expert -> (pixels ≠ gold, pixels) at the image's size


def load_refs(ds, names: list[str], size: int) -> list[CoreRef]:
    from ..data import load_core
    from ..data.bubil import gold_standard
    from ..resample import resize_nearest

    refs = []
    for name in names:
        core = load_core(ds.core(name), ds.scheme)
        gold = gold_standard(ds.root, name, core.image.shape[:2])
        experts = list(core.masks)
        small = resize_nearest(np.stack([gold, *(core.masks[e] for e in experts)]), size)
        full_errors = {e: (int((m != gold).sum()), int(m.size)) for e, m in core.masks.items()}
        refs.append(CoreRef(name, core.image, core.masks, small[0], dict(zip(experts, small[1:])), full_errors))
    return refs


def _dice(acc, classes) -> dict:
    d = acc.dice()
    return {"per_class": dict(zip(classes, map(float, d))), "mean": float(acc.mean_dice())}


def reference_scores(refs: list[CoreRef], experts: tuple[str, ...], classes: tuple[str, ...]) -> dict:
    """Each expert's and the vote's Dice vs gold, and each expert's error rate vs gold (pooled pixels)."""
    from ..data.vote import majority_vote
    from ..metrics import DiceAccumulator

    n = len(classes)
    per_expert = {e: DiceAccumulator(n) for e in experts}
    wrong = {e: [0, 0] for e in experts}
    wrong_full = {e: [0, 0] for e in experts}
    vote = DiceAccumulator(n)
    for r in refs:
        for e, m in r.masks.items():
            per_expert[e].update(r.gold, m)
            wrong[e][0] += int((m != r.gold).sum())
            wrong[e][1] += int(m.size)
            wrong_full[e][0] += r.full_errors[e][0]
            wrong_full[e][1] += r.full_errors[e][1]
        vote.update(r.gold, majority_vote(np.stack(list(r.masks.values())), n))
    rate = {e: (w / t if t else float("nan")) for e, (w, t) in wrong.items()}
    return {
        "experts": {e: {"dice": _dice(per_expert[e], classes), "error_rate": rate[e],
                        "error_rate_full_size": (wrong_full[e][0] / wrong_full[e][1]
                                                 if wrong_full[e][1] else float("nan")),
                        "images": sum(e in r.masks for r in refs)} for e in experts},
        "vote": {"dice": _dice(vote, classes)},
    }


# --- one run's evaluation ---------------------------------------------------------------------------------
@dataclass
class CorePred:
    probs: np.ndarray  # C×h×w
    classes: np.ndarray
    errors: dict[str, np.ndarray]  # given the label
    errors_prior: dict[str, np.ndarray]  # image only


def predict_refs(predictor, ds, refs: list[CoreRef]) -> list[CorePred]:
    """The one prediction path, every expert's labels given."""
    from ..prediction import ArraySink, WholeCore, predict

    out = []
    for r in refs:
        experts = tuple(r.full_masks)
        p = predict(predictor, r.image, WholeCore(), ArraySink(), core=r.name, experts=experts,
                    labels=r.full_masks, scheme=ds.scheme)
        probs = np.stack([np.asarray(p.maps[f"probability:{c}"], np.float32) for c in predictor.classes])
        if probs.shape[1:] != r.gold.shape:
            raise RuntimeError(f"{r.name}: prediction {probs.shape[1:]} is not at the model size {r.gold.shape}")
        out.append(CorePred(probs, np.asarray(p.classes), {e: np.asarray(m, np.float32) for e, m in p.errors.items()},
                            {e: np.asarray(m, np.float32) for e, m in p.errors_prior.items()}))
    return out


DETECTOR_GIVEN = "error map, given the label"
DETECTOR_PRIOR = "error map, image only"
GLOBAL_GIVEN = "global matrix, given the label"
GLOBAL_PRIOR = "global matrix, image only"


def fit_global(refs: list[CoreRef], preds: list[CorePred], experts: tuple[str, ...], num_classes: int) -> dict:
    """Expert -> its global (image-independent) confusion matrix ``M[label, truth]``, fitted on these images."""
    from ..annotators.global_confusion import fit_global_confusion

    out = {}
    for e in experts:
        pairs = [(p.probs, r.masks[e]) for r, p in zip(refs, preds) if e in r.masks]
        out[e] = fit_global_confusion([a for a, _ in pairs], [b for _, b in pairs], num_classes)
    return out


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan")
    return float(spearmanr(x[keep], y[keep]).statistic)


def score_subset(refs: list[CoreRef], preds: list[CorePred], experts: tuple[str, ...], classes: tuple[str, ...],
                 global_m: dict) -> dict:
    """Dice vs gold of the run, and per expert the AUROC of every detector and the ranking (Spearman ρ)."""
    from ..annotators.global_confusion import global_error_map
    from ..metrics import DiceAccumulator
    from .auroc import BASELINE_LABEL, BASELINE_MAX, auroc, auroc_within_classes, network_baselines

    dice = DiceAccumulator(len(classes))
    for r, p in zip(refs, preds):
        dice.update(r.gold, p.classes)
    per_expert: dict[str, dict] = {}
    for e in experts:
        maps: dict[str, list[np.ndarray]] = {}
        wrong, gold = [], []
        for r, p in zip(refs, preds):
            if e not in r.masks:
                continue
            label = r.masks[e]
            wrong.append((label != r.gold).ravel())
            gold.append(r.gold.ravel())
            found = dict(network_baselines(p.probs, label))
            if e in p.errors:
                found[DETECTOR_GIVEN] = p.errors[e]
            if e in p.errors_prior:
                found[DETECTOR_PRIOR] = p.errors_prior[e]
            found[GLOBAL_GIVEN] = global_error_map(p.probs, global_m[e], label)
            found[GLOBAL_PRIOR] = global_error_map(p.probs, global_m[e])
            for k, m in found.items():
                maps.setdefault(k, []).append(np.asarray(m, np.float32).ravel())
        if not wrong:
            continue
        positive, strata = np.concatenate(wrong), np.concatenate(gold)
        scores = {k: np.concatenate(v) for k, v in maps.items() if len(v) == len(wrong)}
        per_expert[e] = {
            "error_rate": float(positive.mean()),
            "wrong_pixels": int(positive.sum()),
            "pixels": int(positive.size),
            "mean_predicted_error": (float(scores[DETECTOR_PRIOR].mean()) if DETECTOR_PRIOR in scores else None),
            "mean_global_error": float(scores[GLOBAL_PRIOR].mean()),
            "auroc_all": {k: auroc(s, positive) for k, s in scores.items()},
            "auroc_same_gold_class": {k: auroc_within_classes(s, positive, strata) for k, s in scores.items()},
        }
    names = list(per_expert)
    true_rate = [per_expert[e]["error_rate"] for e in names]
    has_model = all(per_expert[e]["mean_predicted_error"] is not None for e in names) and names
    return {
        "images": len(refs),
        "dice": _dice(dice, classes),
        "experts": per_expert,
        "global_matrices": {e: np.asarray(m).tolist() for e, m in global_m.items()},
        "spearman": {
            "error map, image only": (_spearman([per_expert[e]["mean_predicted_error"] for e in names], true_rate)
                                      if has_model else None),
            "global matrix, image only": _spearman([per_expert[e]["mean_global_error"] for e in names], true_rate),
        },
        "detectors": {"baselines": [BASELINE_LABEL, BASELINE_MAX, GLOBAL_GIVEN, GLOBAL_PRIOR],
                      "model": [DETECTOR_GIVEN, DETECTOR_PRIOR]},
    }


def evaluate_run(checkpoint: str, ds, refs: dict[str, list[CoreRef]], device: str) -> dict:
    """Score one checkpoint: the training images first (the global matrices are fitted there), then test."""
    from ..prediction.predictor import load_predictor

    predictor = load_predictor(checkpoint, device)
    classes = tuple(ds.scheme.names)
    experts = tuple(ds.experts)
    train_preds = predict_refs(predictor, ds, refs["train"])
    global_m = fit_global(refs["train"], train_preds, experts, len(classes))
    out = {"train": score_subset(refs["train"], train_preds, experts, classes, global_m)}
    del train_preds
    test_preds = predict_refs(predictor, ds, refs["test"])
    out["test"] = score_subset(refs["test"], test_preds, experts, classes, global_m)
    out["annotator_model"] = getattr(predictor, "confusion", None) is not None
    return out


# --- the benchmark ---------------------------------------------------------------------------------------
def run_real_benchmark(preset: str | RealPreset, out: str | Path, seeds: int | None = None, device: str = "auto",
                       command: str | None = None, log=print, data: str | Path | None = None, **overrides) -> dict:
    """Run (or continue) ``cpu-real`` in ``out``; writes ``results.json`` and ``table.md`` and returns the results.

    The call of :func:`trainer.ablation.run.run_benchmark` (``preset`` is ``"cpu-real"`` or a
    :class:`RealPreset`); ``data``: the BU-BIL folder (default :func:`default_data`); ``overrides``
    change preset fields (``size``, ``iters``, ``variants``, …), e.g. for a smoke test.
    """
    import torch

    from ..data import open_dataset
    from ..device import resolve_device

    if isinstance(preset, str):
        if preset != PRESET_NAME:
            raise InputError(f"unknown preset {preset!r} for the real-data benchmark (valid: {PRESET_NAME})")
        preset = RealPreset()
    preset = preset.replace(**overrides)
    if seeds is not None:
        preset = preset.replace(seeds=int(seeds))
    preset.validate()
    t0 = time.perf_counter()
    data = Path(data) if data is not None else default_data()
    if not data.is_dir():
        raise InputError("BU-BIL dataset 1 not found (set NAPARI_GLEASON_BUBIL or put it in shared/data/)", data)
    ds = open_dataset(data)
    if ds.layout != "bubil":
        raise InputError(f"cpu-real needs BU-BIL dataset 1 (RawImages/, ExpertsAnnotations/); this is {ds.layout}",
                         data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if preset.cpu_threads and resolve_device(device).type == "cpu":
        torch.set_num_threads(preset.cpu_threads)
    train_names, test_names = split_images(ds.names, preset.train_fraction, preset.split_seed)
    split_file = out / "split.json"
    split = {"train": train_names, "val": [], "test": test_names}
    if not split_file.is_file() or json.loads(split_file.read_text()) != split:
        split_file.write_text(json.dumps(split, indent=1) + "\n")
    log(f"cpu-real: {len(train_names)} training and {len(test_names)} test images of {data}; "
        f"{len(ds.experts)} experts")
    refs = {"train": load_refs(ds, train_names, preset.size), "test": load_refs(ds, test_names, preset.size)}
    classes = tuple(ds.scheme.names)
    reference = {k: reference_scores(v, tuple(ds.experts), classes) for k, v in refs.items()}
    runs = []
    plans = [(seed, v) for seed in range(preset.seeds) for v in preset.variants]
    for i, (seed, variant) in enumerate(plans):
        label = f"{variant}/seed{seed}"
        run_dir = out / "runs" / variant / f"seed{seed}"
        cfg = make_config(preset, variant, seed, data, split_file, run_dir, device)
        result_path = run_dir / "result.json"
        old = json.loads(result_path.read_text()) if result_path.is_file() else None
        if old is not None and same_config(old.get("config", {}), cfg.to_dict()):
            if old.get("eval_version") == EVAL_VERSION:
                log(f"[{i + 1}/{len(plans)}] {label}: reusing {result_path}")
                runs.append(old)
                continue
            if (run_dir / old["checkpoint"]).is_file():
                log(f"[{i + 1}/{len(plans)}] {label}: re-scoring {run_dir / old['checkpoint']}")
                scores = evaluate_run(str(run_dir / old["checkpoint"]), ds, refs, device)
                old.update(eval_version=EVAL_VERSION, **scores)
                result_path.write_text(json.dumps(clean(old), indent=1) + "\n")
                runs.append(json.loads(result_path.read_text()))
                continue
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a run cut short, or from other settings
        log(f"[{i + 1}/{len(plans)}] {label}: training {preset.iters} iterations")
        trained = train_run(cfg, label, log)
        te = time.perf_counter()
        scores = evaluate_run(trained["last"], ds, refs, device)
        record = {"variant": variant, "title": VARIANTS[variant].title, "seed": seed, "config": cfg.to_dict(),
                  "checkpoint": Path(trained["last"]).name, "iterations": trained["iterations"],
                  "train_seconds": trained["train_seconds"], "eval_seconds": time.perf_counter() - te,
                  "eval_version": EVAL_VERSION, **scores}
        result_path.write_text(json.dumps(clean(record), indent=1) + "\n")
        runs.append(json.loads(result_path.read_text()))
        t = record["test"]
        log(f"[{i + 1}/{len(plans)}] {label}: test mean Dice vs gold {t['dice']['mean']:.4f} "
            f"(cell {t['dice']['per_class'].get('cell', float('nan')):.4f}); "
            f"{trained['train_seconds']:.0f} s train; {(time.perf_counter() - t0) / 60:.1f} min so far")
    wall = time.perf_counter() - t0
    results = {
        "preset": dataclasses.asdict(preset),
        "command": command or f"python -m trainer ablation --preset {PRESET_NAME} --out {out}",
        "git_commit": git_commit(),
        "cpu": machine(),
        "machine": f"torch threads: {torch.get_num_threads()}",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "wall_seconds_this_invocation": wall,
        "train_seconds_all_runs": sum(r.get("train_seconds") or 0.0 for r in runs),
        "data": {"root": str(data), "citation": CITATION, "experts": list(ds.experts), "classes": list(classes),
                 "split": {"train": train_names, "test": test_names, "seed": preset.split_seed},
                 "notes": list(ds.notes)},
        "reference": reference,
        "runs": runs,
        "summary": summarise(runs, tuple(ds.experts)),
    }
    results = clean(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    (out / "table.md").write_text(render_markdown(results))
    return results


__all__ = ["PRESET_NAME", "RealPreset", "VARIANTS", "default_data", "evaluate_run", "load_refs", "make_config",
           "reference_scores", "run_real_benchmark", "score_subset", "split_images"]
