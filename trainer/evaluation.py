"""Evaluation in Table 2's format, plus agreement between experts and with the model.

Dice per class and their mean against the majority vote of the experts present on each core
(the paper's protocol), accumulated over the whole set (see :mod:`trainer.metrics`); per-expert
Dice and Cohen's κ of the model against each expert; pairwise κ between experts.
:func:`validation_dice` is the training run's periodic check on its validation cores.
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext
from typing import Iterable

import numpy as np
import torch

from .data.core import natural_key, natural_sorted
from .data.records import CoreRecord, MultiExpertSet, load_core
from .data.vote import majority_vote
from .grading import grade_core, pattern_of_class
from .metrics import (DiceAccumulator, cohen_kappa_from_confusion, cohen_kappa_ratings, confusion_matrix,
                      fleiss_kappa_ratings, mean_ignoring_nan)
from .prediction import ArraySink, WholeCore, predict
from .prediction.pipeline import check_compatible
from .prediction.predictor import Predictor


def is_gleason_scheme(names) -> bool:
    """Whether the classes include Gleason patterns 3-5, so that a core has a grade group."""
    return set(pattern_of_class(names).values()) >= {3, 4, 5}


def _dice_dict(names, values) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, values)}


def evaluate(predictor: Predictor, ds: MultiExpertSet, cores: Iterable[CoreRecord], size: int | None = None,
             tie: str = "highest", reference: dict[str, np.ndarray] | None = None) -> dict:
    """Evaluate ``predictor`` on ``cores`` in the paper setting (:func:`trainer.prediction.predict`,
    :class:`~trainer.prediction.WholeCore` at ``size``, default the training size). ``reference``
    (core name → class map) replaces the vote, e.g. the known truth of synthetic cores."""
    check_compatible(predictor, ds.scheme, ds.root)  # Dice of foreign classes would mean nothing
    names = ds.scheme.names
    c = ds.scheme.num_classes
    vote_acc = DiceAccumulator(c)
    expert_acc: dict[str, DiceAccumulator] = {}
    pair_cm: dict[tuple[str, str], np.ndarray] = {}
    per_core = []
    graded = is_gleason_scheme(names)
    grades: list[dict[str, int | None]] = []
    n = 0
    for record in cores:
        core = load_core(record, ds.scheme)
        stack = np.stack([core.masks[e] for e in natural_sorted(core.masks)])
        ref = reference[record.name] if reference is not None else majority_vote(stack, c, tie=tie)
        # the one prediction path, as the CLI and the widget run it; no experts: Dice needs the class
        # map only, so the annotator model is not run. The map the pipeline writes as the mask: the
        # model's resolution brought to the core's shape (nearest), scored against masks at that shape.
        out = predict(predictor, core.image, WholeCore(size=size), ArraySink(), core=record.name, experts=(),
                      scheme=ds.scheme)
        classes = out.classes_full()
        vote_acc.update(ref, classes)
        if graded:  # the core's grade group by each expert and by the model (trainer.grading)
            grades.append({"model": grade_core(classes, names).grade_group,
                           **{e: grade_core(m, names).grade_group for e, m in core.masks.items()}})
        core_acc = DiceAccumulator(c)
        core_acc.update(ref, classes)
        per_core.append({"core": record.name, "experts": natural_sorted(core.masks),
                         "dice": _dice_dict(names, core_acc.dice()), "mean_dice": core_acc.mean_dice()})
        for e, mask in core.masks.items():
            expert_acc.setdefault(e, DiceAccumulator(c)).update(mask, classes)
        for a, b in itertools.combinations(natural_sorted(core.masks), 2):
            cm = confusion_matrix(core.masks[a], core.masks[b], c)
            pair_cm[(a, b)] = pair_cm.get((a, b), 0) + cm
        n += 1
    return {
        "cores": n,
        "reference": "given" if reference is not None else "vote",
        "dice": _dice_dict(names, vote_acc.dice()),
        "mean_dice": vote_acc.mean_dice(),
        "kappa": vote_acc.kappa(),
        "model_vs_expert": {
            e: {"dice": _dice_dict(names, acc.dice()), "mean_dice": acc.mean_dice(), "kappa": acc.kappa()}
            for e, acc in sorted(expert_acc.items(), key=lambda kv: natural_key(kv[0]))
        },
        "expert_pairs_kappa": {f"{a}-{b}": cohen_kappa_from_confusion(pair_cm[(a, b)])
                               for a, b in sorted(pair_cm, key=lambda ab: (natural_key(ab[0]), natural_key(ab[1])))},
        "grade_groups": grade_group_agreement(grades) if graded else None,
        "per_core": per_core,
    }


def grade_group_agreement(grades: list[dict[str, int | None]]) -> dict:
    """Agreement on the cores' ISUP grade groups (0 benign, 1-5; :mod:`trainer.grading`), the way the
    Gleason 2019 challenge compared pathologists: quadratic-weighted Cohen's κ for every pair of
    experts and of the model with each expert (over the cores both graded), and Fleiss' κ over all
    experts. ``grades``: per core, rater → grade group (``None`` or absent: not graded)."""
    experts = natural_sorted({r for g in grades for r in g} - {"model"})
    groups = list(range(6))

    def kappa(a: str, b: str) -> float:
        return cohen_kappa_ratings([g.get(a) for g in grades], [g.get(b) for g in grades], groups)

    return {
        "expert_pairs_kappa_quadratic": {f"{a}-{b}": kappa(a, b) for a, b in itertools.combinations(experts, 2)},
        "model_vs_expert_kappa_quadratic": {e: kappa("model", e) for e in experts},
        "fleiss_kappa_experts": fleiss_kappa_ratings([[g.get(e) for e in experts] for g in grades], groups),
        "per_core": grades,
    }


@torch.no_grad()
def validation_dice(model: torch.nn.Module, val_set, class_names, device: torch.device,
                    amp_dtype: torch.dtype | None = None) -> tuple[dict[str, float], float] | None:
    """Set-level Dice per class and their mean on a training run's validation cores (paper: every
    1k iterations), against each core's vote at the training size; None without validation cores.

    ``val_set`` is a :class:`~trainer.data.dataset.MultiExpertDataset` without augmentation; the
    model runs in eval mode (under autocast to ``amp_dtype`` on CUDA) and is put back in train mode.
    """
    if val_set is None or len(val_set) == 0:
        return None
    was_training = model.training
    model.eval()
    acc = DiceAccumulator(len(class_names))
    autocast = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    try:
        for i in range(len(val_set)):
            item = val_set[(i, 0)]
            with autocast:
                pred = model(item["image"][None].to(device)).argmax(1)[0].cpu().numpy()
            acc.update(item["vote"].numpy(), pred)
    finally:
        model.train(was_training)
    return _dice_dict(class_names, acc.dice()), acc.mean_dice()


def table2_row(result: dict, names: tuple[str, ...], label: str = "model") -> str:
    """One row in Table 2's layout (percent): mean Dice, then each class."""
    cells = [f"{100 * result['mean_dice']:.2f}"] + [
        "—" if np.isnan(result["dice"][n]) else f"{100 * result['dice'][n]:.2f}" for n in names
    ]
    return f"| {label} | " + " | ".join(cells) + " |"


def table2_header(names: tuple[str, ...]) -> str:
    head = "| method | mean Dice | " + " | ".join(names) + " |"
    return head + "\n|" + "---|" * (len(names) + 2)


__all__ = ["evaluate", "validation_dice", "table2_row", "table2_header", "mean_ignoring_nan"]
