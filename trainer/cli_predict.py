"""The commands that use a trained model or grade cores: ``predict``, ``evaluate`` and
``summarize`` (their options are :mod:`trainer.cli`'s parser; exit codes as there)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import jsonsafe
from .atomic import atomic_write
from .errors import InputError


def cmd_predict(a: argparse.Namespace) -> int:
    from .data.io import MaskExistsError, read_image
    from .prediction import FileSink, predict
    from .prediction.dataset import experts_beside
    from .safe_paths import check_not_expert_file

    if a.data:
        return _predict_dataset(a)
    given = [f for f, v in (("--split", a.split), ("--split-file", a.split_file), ("--json", a.json), ("--store", a.store)) if v]
    if given:
        raise InputError(f"{', '.join(given)} go{'es' * (len(given) == 1)} with --data, not --image")
    if not a.out:
        raise InputError("--image needs --out: the folder the predictions are written to")
    predictor = _predictor(a)
    out = Path(a.out)
    # each mask in its dataset's convention (Gleason 2019: <core>_classimg_nonconvex.png; generic: <name>.png)
    sinks = [FileSink.for_image(out, p, predictor.scheme, overwrite=a.overwrite) for p in a.image]
    for image, sink in zip(a.image, sinks):  # fail before the expensive part, not after
        check_not_expert_file(sink.mask_path)  # a prediction never lands among an expert's masks
        if sink.mask_path.resolve() == Path(image).resolve():
            raise InputError("the prediction would replace its own image; choose another --out", sink.mask_path)
        if not a.overwrite and sink.mask_path.exists():
            raise MaskExistsError("file exists; refusing to overwrite it (use --overwrite)", sink.mask_path)
    mode = _predict_mode(a)
    for image_path, sink in zip(a.image, sinks):
        # an image inside a dataset folder: its experts' masks make the error maps "given the label"
        experts, labels = experts_beside(image_path, predictor.scheme)
        result = predict(predictor, read_image(image_path), mode, sink, core=sink.stem,
                         experts=experts or predictor.experts, labels=labels)
        print(f"{image_path}: {result.seconds:.2f} s on {result.device} ({result.precision}) -> {sink.mask_path}")
    return 0


def _predictor(a: argparse.Namespace):
    """The checkpoint on ``--device``; under torchrun ``cuda``/``auto`` mean this rank's GPU (LOCAL_RANK)."""
    import os

    from .device import resolve_device
    from .prediction.predictor import load_predictor

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(a.device, int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else None)
    return load_predictor(a.checkpoint, str(device), precision="fp32" if a.fp32 else "auto")


def _predict_mode(a: argparse.Namespace):
    from .prediction import Tiled, WholeCore

    if a.tiled or a.mode == "full":
        return Tiled(magnification=a.tiled or 1.0)
    return WholeCore(size=a.size)


def default_predict_out(checkpoint: str | Path, data: str | Path, mode_name: str = "paper") -> Path:
    """``--data``'s default ``--out``: ``<checkpoint's folder>/predictions/<dataset folder>-<checkpoint
    stem>[-full]``, beside the run that made them and never inside the dataset."""
    ck = Path(checkpoint)
    suffix = "" if mode_name == "paper" else f"-{mode_name}"
    return ck.parent / "predictions" / f"{Path(data).resolve().name}-{ck.stem}{suffix}"


def _predict_dataset(a: argparse.Namespace) -> int:
    from .data import open_dataset
    from .prediction.dataset import (gather_summaries, predict_dataset, predict_dataset_into_store, shard_env,
                                     split_cores, summary_dict)

    rank, world = shard_env()
    a.split = a.split or "all"
    say = print if rank == 0 else (lambda *_, **__: None)  # under torchrun only rank 0 reports
    ds = open_dataset(a.data)
    predictor = _predictor(a)
    cores, reason = split_cores(ds, a.split, a.split_file, tuple(predictor.experts or ()))
    if reason:
        say(reason)
    mode = _predict_mode(a)
    out = Path(a.out) if a.out else default_predict_out(a.checkpoint, a.data, mode.name)
    if a.store and a.out:
        raise InputError("give --out (files in the dataset's convention) or --store (a review store), not both")
    say(f"predicting the {a.split} split of {a.data}: {len(cores)} core{'s' * (len(cores) != 1)} "
        f"({mode.name} setting) -> {a.store or out}" + (f", {world} ranks" if world > 1 else ""))
    if a.store:
        out = Path(a.store)
        mine = predict_dataset_into_store(predictor, ds, cores, out, mode, rank=rank, world=world,
                                          overwrite=a.overwrite, progress=rank == 0 and sys.stderr.isatty())
    else:
        mine = predict_dataset(predictor, ds, cores, out, mode, rank=rank, world=world, overwrite=a.overwrite,
                               progress=rank == 0 and sys.stderr.isatty())
    summaries = gather_summaries(mine)
    if rank != 0:
        return 0
    summary = summary_dict(summaries, len(cores))
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"predicted {summary['predicted']} core{'s' * (summary['predicted'] != 1)}, skipped "
          f"{summary['skipped']} already predicted" + (" (--overwrite replaces them)" if summary["skipped"] else "")
          + f"; {summary['seconds']:.1f} s on {predictor.device}; " + (f"review store {out}" if a.store
                                                                         else f"files in {out}"))
    _write_json(a.json, summary, "the JSON summary")
    return 0


def run_name(checkpoint: str | Path) -> str:
    """The name of the run a checkpoint comes from (its run folder, as training wrote it), else the
    file's own name: a shipped ``demo_model.pt`` is not named after the folder it lies in."""
    from .checkpoint import load_checkpoint, run_config_of

    out = (run_config_of(load_checkpoint(checkpoint)).get("train") or {}).get("out")
    return Path(out).name if out else Path(checkpoint).stem


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .data import open_dataset
    from .evaluation import evaluate, table2_header, table2_row
    from .prediction.predictor import load_predictor
    from .prediction.dataset import split_cores

    predictor = load_predictor(a.checkpoint, a.device)
    ds = open_dataset(a.data)
    # with no split file, the split train chose by default: the same rule, with the checkpoint's experts
    cores, reason = split_cores(ds, a.split, a.split_file, tuple(predictor.experts or ()))
    if reason:
        print(reason)
    result = evaluate(predictor, ds, cores, size=a.size)
    result.update({"checkpoint": str(a.checkpoint), "run": run_name(a.checkpoint), "data": str(a.data),
                   "split": a.split})
    print(table2_header(ds.scheme.names))
    print(table2_row(result, ds.scheme.names, result["run"]))
    g = result.get("grade_groups")
    if g:
        def mean(d):
            vals = [v for v in d.values() if v == v]
            return f"{sum(vals) / len(vals):.3f}" if vals else "—"
        print(f"grade groups (ISUP, per core), quadratic-weighted κ: expert pairs {mean(g['expert_pairs_kappa_quadratic'])}, "
              f"model vs each expert {mean(g['model_vs_expert_kappa_quadratic'])}; Fleiss' κ over the experts "
              f"{g['fleiss_kappa_experts']:.3f}")
    _write_json(a.json, result, "the JSON result")
    return 0


def cmd_summarize(a: argparse.Namespace) -> int:
    import csv
    import io
    import itertools

    import numpy as np

    from .data import load_core, open_dataset
    from .data.staple import staple
    from .data.vote import majority_vote
    from .grading import grade_core, grade_row, pattern_of_class
    from .metrics import cohen_kappa_ratings, fleiss_kappa_ratings
    from .prediction.tissue import tissue_mask

    if not 0 <= a.min_share < 1:
        raise InputError(f"--min-share must be in [0, 1), got {a.min_share}")
    ds = open_dataset(a.data)
    names = ds.scheme.names
    if not pattern_of_class(names):
        raise InputError(f"summarize grades Gleason patterns (classes G3, G4, G5); this dataset's classes are "
                         f"{', '.join(names)}", a.data)
    predictor = None
    if a.checkpoint:  # only then is a model loaded
        from .prediction import ArraySink, WholeCore, check_compatible, predict

        predictor = _predictor(a)
        check_compatible(predictor, ds.scheme, ds.root)
    rows, groups = [], {}  # groups[rater][core] = grade group (None: unlabelled)
    for record in ds.cores:
        core = load_core(record, ds.scheme)
        tissue = tissue_mask(core.image)
        maps = {e: core.masks[e] for e in ds.experts if e in core.masks}
        stack = np.stack(list(maps.values()))
        maps["vote"] = majority_vote(stack, len(names))
        if a.staple:  # of one expert: that expert
            maps["staple"] = staple(list(stack), len(names), fallback=maps["vote"])
        if predictor is not None:
            out = predict(predictor, core.image, WholeCore(size=a.size), ArraySink(), core=record.name,
                          experts=(), scheme=ds.scheme)
            maps["model"] = out.classes_full()
        for rater, class_map in maps.items():
            grade = grade_core(class_map, names, tissue, rule=a.rule, min_share=a.min_share)
            rows.append(grade_row(record.name, rater, grade, names))
            groups.setdefault(rater, {})[record.name] = grade.grade_group
    categories = range(6)  # grade groups, 0 = benign
    cores = ds.names

    def gg(rater):
        return [groups.get(rater, {}).get(c) for c in cores]

    experts = [e for e in ds.experts if e in groups]
    print(f"{len(cores)} core{'s' * (len(cores) != 1)}, experts {', '.join(experts)}; rule {a.rule}, "
          f"patterns from {100 * a.min_share:g} % of the core")
    pairs = {f"{x}-{y}": cohen_kappa_ratings(gg(x), gg(y), categories)
             for x, y in itertools.combinations(experts, 2)}
    pairs = {k: v for k, v in pairs.items() if not np.isnan(v)}
    if pairs:
        print("grade-group κ (quadratic) between experts: " + ", ".join(f"{k} {v:.3f}" for k, v in pairs.items())
              + f"; mean {np.mean(list(pairs.values())):.3f}")
    fleiss = fleiss_kappa_ratings([[groups[e].get(c) for e in experts] for c in cores], categories)
    print(f"Fleiss' κ over the experts' grade groups: {'—' if np.isnan(fleiss) else f'{fleiss:.3f}'}")
    if predictor is not None:
        vs = {e: cohen_kappa_ratings(gg("model"), gg(e), categories) for e in experts + ["vote"]}
        print("grade-group κ (quadratic) model vs " + ", ".join(
            f"{e} {'—' if np.isnan(v) else f'{v:.3f}'}" for e, v in vs.items()))
    if a.out and rows:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        with atomic_write(a.out, "wb", what="the grade table") as f:  # a full disk: one line, no partial file
            f.write(table.getvalue().encode("utf-8"))
        print(f"wrote {len(rows)} rows to {a.out}")
    return 0


def _write_json(path: str | None, obj: dict, what: str) -> None:
    """``--json PATH``: ``obj`` as strict JSON (null for undefined numbers), written atomically."""
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", what=what) as f:
        f.write(jsonsafe.dumps(obj, indent=2))
    print(f"wrote {path}")
