"""The benchmark's data: synthetic cores with known truth, the paper's split, and consensus datasets.

``out/data``    panel ``six``: Gleason 2019 layout, ``test_cores`` cores annotated by all six
                experts (the test set, paper §3.1), ``train_cores`` by the preset's training experts
                only. Panel ``noisy``: the generic layout of :mod:`trainer.synthetic.panel`, every
                core (test ones too) annotated by A, B and C or, for ``pair_fraction`` of them, by
                two of them; the first ``test_cores`` cores are the test set.
``out/staple``  the same training cores in the generic layout with one annotator, ``staple``:
                SimpleITK's MultiLabelSTAPLE over the training experts present (undecided → vote).
``out/single``  likewise with one training expert's labels (on the cores that expert annotated).
``split.json``  train/val/test of ``out/data``; ``split_train.json`` the same train/val for the
                STAPLE dataset, ``split_single.json`` for the single-expert one. The engine trains
                on the vote of a dataset's experts, so a dataset with one annotator trains on that
                annotator: no second code path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import open_dataset
from ..data.classes import GLEASON_CLASSES, GLEASON_SCHEME
from ..data.io import read_mask, read_mask_values
from ..data.records import load_core
from ..data.splits import Split, load_split, paper_split, save_split
from ..data.vote import majority_vote
from ..errors import InputError
from ..metrics import DiceAccumulator
from ..synthetic import EXPERT_BIASES, EXPERT_NAMES, FLAG_BORDERLINE_G3, GENERATOR_VERSION, write_dataset
from ..synthetic.panel import (
    PANEL_BIASES,
    PANEL_EXPERTS,
    PANEL_KIND_APPEARANCE,
    PANEL_VERSION,
    bias_area,
    panel_assignment,
    panel_error_kinds,
    tie_mask,
    write_panel_dataset,
)
from ..synthetic.writer import core_name
from .auroc import KIND_APPEARANCE_DEPENDENT, error_kinds
from .presets import Preset

NUM_CLASSES = len(GLEASON_CLASSES)


@dataclass
class BenchData:
    root: Path
    data: Path  # Gleason-layout dataset (vote variants and the test set)
    split_file: Path
    derived_split_file: Path
    staple: Path
    single: Path
    single_expert: str
    split: Split
    fingerprint: str  # hash of the training cores' names and image bytes, in training order
    figure_core: str
    label_quality: dict  # Dice of each label source against the truth on the test cores
    panel: str = "six"
    single_split_file: Path | None = None
    panel_statistics: dict | None = None  # noisy panel: κ, true confusion on biased areas (synthetic.json)

    def dataset_for(self, labels: str) -> tuple[Path, Path]:
        """(dataset folder, split file) a variant trains on."""
        if labels == "vote":
            return self.data, self.split_file
        if labels == "staple":
            return self.staple, self.derived_split_file
        return self.single, self.single_split_file or self.derived_split_file

    # --- what the panel's experts do wrong, for scoring and the report -------------------------

    def error_kinds(self, expert: str, label: np.ndarray, truth: np.ndarray, flags: np.ndarray) -> dict:
        """An expert's wrong pixels split by the bias that made them (see :mod:`.auroc`)."""
        if self.panel == "noisy":
            return panel_error_kinds(expert, label, truth, flags)
        return error_kinds(expert, label, truth, flags)

    def expert_info(self, expert: str) -> dict:
        return (PANEL_EXPERTS if self.panel == "noisy" else EXPERT_BIASES)[expert]

    def kind_appearance(self) -> dict[str, bool]:
        return dict(PANEL_KIND_APPEARANCE if self.panel == "noisy" else KIND_APPEARANCE_DEPENDENT)

    def biases(self) -> dict[str, dict]:
        """The noisy panel's systematic biases (flag, experts, true class, the class it is called)."""
        return PANEL_BIASES if self.panel == "noisy" else {}

    def bias_areas(self, truth: np.ndarray, flags: np.ndarray) -> dict[str, np.ndarray]:
        return {b: bias_area(b, truth, flags) for b in self.biases()}


def _key(preset: Preset) -> dict:
    key = {"size": preset.size, "train_cores": preset.train_cores, "test_cores": preset.test_cores,
           "data_seed": preset.data_seed, "train_experts": list(preset.train_experts),
           "val_fraction": preset.val_fraction, "single_expert": preset.single_expert,
           "generator": GENERATOR_VERSION}
    if preset.panel != "six":  # only then, so earlier benchmark folders stay reusable
        key.update(panel=preset.panel, pair_fraction=preset.pair_fraction, generator=PANEL_VERSION)
    return key


def staple(masks: list[np.ndarray]) -> np.ndarray:
    """Multi-label STAPLE (Warfield et al. 2004, via SimpleITK) of class maps; undecided → vote.
    The code base's one STAPLE (:func:`trainer.data.staple.staple`), on every pixel."""
    from trainer.data.staple import staple as staple_consensus

    return staple_consensus(masks, NUM_CLASSES, max_pixels=None)


def truth_and_flags(data: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth class map, appearance flags, tissue mask) of a synthetic core."""
    values = read_mask_values(data / "truth" / f"{name}_classimg_nonconvex.png")
    truth = read_mask(data / "truth" / f"{name}_classimg_nonconvex.png", GLEASON_SCHEME)
    flags = np.asarray(read_mask_values(data / "appearance" / f"{name}_flags.png"))
    return truth, flags, np.asarray(values) != 0  # Gleason value 0 is glass


def _write_generic(root: Path, ds, names: list[str], annotator: str, labels: dict[str, np.ndarray]) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks" / annotator).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": list(GLEASON_CLASSES)}, indent=2) + "\n")
    for name in names:
        src = ds.core(name).image_path
        shutil.copyfile(src, root / "images" / f"{name}{src.suffix}")  # same bytes as the vote variants
        Image.fromarray(labels[name]).save(root / "masks" / annotator / f"{name}.png")


def _fingerprint(ds, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        h.update(Path(ds.core(name).image_path).read_bytes())
    return h.hexdigest()[:16]


def prepare_data(root: str | Path, preset: Preset, log=print) -> BenchData:
    """Write (or reuse, when ``root`` already holds the same preset's data) the benchmark's data."""
    root = Path(root)
    meta_path = root / "data.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["key"] != _key(preset):
            raise InputError("folder holds a benchmark with other data settings; choose a new --out", root)
        log(f"reusing the benchmark data in {root}")
    else:
        if root.exists() and any(root.iterdir()):
            raise InputError("output folder exists, is not empty and holds no benchmark; choose a new one", root)
        meta = _write(root, preset, log)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    split = load_split(root / "split.json")
    single_split = root / "split_single.json"
    stats = None
    if preset.panel == "noisy":
        stats = json.loads((root / "data" / "synthetic.json").read_text())["statistics"]
    return BenchData(root, root / "data", root / "split.json", root / "split_train.json", root / "staple",
                     root / "single", meta["single_expert"], split, meta["fingerprint"], meta["figure_core"],
                     meta["label_quality"], preset.panel, single_split if single_split.exists() else None, stats)


def _write(root: Path, preset: Preset, log) -> dict:
    if preset.panel == "noisy":
        return _write_noisy(root, preset, log)
    n_test, n_train = preset.test_cores, preset.train_cores
    assignment = [list(EXPERT_NAMES)] * n_test + [list(preset.train_experts)] * n_train
    log(f"writing {n_test} test + {n_train} training synthetic cores of {preset.size}² to {root / 'data'}")
    write_dataset(root / "data", cores=n_test + n_train, size=preset.size, seed=preset.data_seed,
                  assignment=assignment)
    ds = open_dataset(root / "data")
    split = paper_split(ds, train_experts=preset.train_experts, val_fraction=preset.val_fraction,
                        seed=preset.data_seed)
    save_split(split, root / "split.json")
    save_split(Split(split.train, split.val, []), root / "split_train.json")
    trainval = split.train + split.val
    experts = list(preset.train_experts)

    masks = {n: load_core(ds.core(n), ds.scheme).masks for n in trainval}
    votes = {n: majority_vote(np.stack([masks[n][e] for e in experts]), NUM_CLASSES) for n in trainval}
    single = preset.single_expert
    agreement = {e: float(np.mean([(masks[n][e] == votes[n]).mean() for n in trainval])) for e in experts}
    if single == "auto":  # what a user could pick without the truth: the expert closest to the vote
        single = max(experts, key=lambda e: agreement[e])
    elif single not in experts:
        raise InputError(f"single_expert {single!r} is not a training expert {experts}")
    log(f"STAPLE of experts {experts} on {len(trainval)} cores; single expert {single} "
        f"(agreement with the vote: {agreement})")
    _write_generic(root / "staple", ds, trainval, "staple",
                   {n: staple([masks[n][e] for e in experts]) for n in trainval})
    _write_generic(root / "single", ds, trainval, single, {n: masks[n][single] for n in trainval})
    save_split(Split(split.train, split.val, []), root / "split_single.json")
    quality, figure_core = _label_quality(root / "data", ds, split.test, experts)
    return {"key": _key(preset), "single_expert": single, "agreement_with_vote": agreement,
            "fingerprint": _fingerprint(ds, split.train) + "-" + _fingerprint(ds, split.val),
            "figure_core": figure_core, "label_quality": quality, "split_counts": split.counts()}


def _label_quality(data: Path, ds, test: list[str], train_experts: list[str]) -> tuple[dict, str]:
    """Dice against the truth of every label source on the test cores; the figure's core.

    The figure's core is the test core with the most borderline-G3 pixels that expert 3 calls G4
    (an appearance-dependent error) — chosen from the labels, not from any model.
    """
    accs: dict[str, DiceAccumulator] = {}
    best, best_count = test[0], -1
    for name in test:
        masks = load_core(ds.core(name), ds.scheme).masks
        truth, flags, _ = truth_and_flags(data, name)
        sources = dict(masks)
        sources["vote of training experts"] = majority_vote(np.stack([masks[e] for e in train_experts]), NUM_CLASSES)
        sources["STAPLE of training experts"] = staple([masks[e] for e in train_experts])
        sources["vote of all six"] = majority_vote(np.stack([masks[e] for e in EXPERT_NAMES]), NUM_CLASSES)
        for key, labels in sources.items():
            accs.setdefault(key, DiceAccumulator(NUM_CLASSES)).update(truth, labels)
        count = int((((flags & FLAG_BORDERLINE_G3) > 0) & (masks["3"] != truth)).sum())
        if count > best_count:
            best, best_count = name, count
    quality = {k: {"dice": dict(zip(GLEASON_CLASSES, map(float, a.dice()))), "mean_dice": a.mean_dice()}
               for k, a in accs.items()}
    return quality, best


def _split_trainval(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded validation share, as :func:`~trainer.data.splits.paper_split` draws it."""
    n = len(names)
    n_val = int(round(val_fraction * n))
    if n >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(names[i] for i in perm[n_val:]), sorted(names[i] for i in perm[:n_val])


def _write_noisy(root: Path, preset: Preset, log) -> dict:
    """The noisy panel's data: test cores first, every core by A, B, C or a pair of them."""
    n_test, n_train = preset.test_cores, preset.train_cores
    n = n_test + n_train
    experts = list(preset.train_experts)
    assignment = panel_assignment(n, preset.data_seed, preset.pair_fraction)
    # Only the training experts annotate (a preset may train on two of the three).
    assignment = [[e for e in a if e in experts] or [experts[0]] for a in assignment]
    log(f"writing {n_test} test + {n_train} training noisy-panel cores of {preset.size}² to {root / 'data'} "
        f"({sum(len(a) == 2 for a in assignment)} by two experts)")
    info = write_panel_dataset(root / "data", cores=n, size=preset.size, seed=preset.data_seed, assignment=assignment)
    log(f"pairwise Cohen's κ on tissue: {info['statistics']['pairwise_kappa']}")
    ds = open_dataset(root / "data")
    names = [core_name(i) for i in range(n)]
    test = sorted(names[:n_test])
    train, val = _split_trainval(names[n_test:], preset.val_fraction, preset.data_seed)
    split = Split(train, val, test)
    save_split(split, root / "split.json")
    save_split(Split(train, val, []), root / "split_train.json")
    trainval = train + val

    masks = {c: load_core(ds.core(c), ds.scheme).masks for c in trainval}
    votes = {c: majority_vote(np.stack(list(masks[c].values())), NUM_CLASSES) for c in trainval}
    single = preset.single_expert
    agreement, accuracy = {}, {}
    for e in experts:
        mine = [c for c in trainval if e in masks[c]]
        agreement[e] = float(np.mean([(masks[c][e] == votes[c]).mean() for c in mine]))
        hits = total = 0
        for c in mine:
            truth, _, tissue = truth_and_flags(root / "data", c)
            hits += int((masks[c][e] == truth)[tissue].sum())
            total += int(tissue.sum())
        accuracy[e] = hits / max(total, 1)
    if single == "auto":
        single = max(experts, key=lambda e: agreement[e])
    elif single == "oracle":  # the best single expert: known here only because the truth is
        single = max(experts, key=lambda e: accuracy[e])
    log(f"STAPLE of the experts present on {len(trainval)} cores; single expert {single} "
        f"(agreement with the vote {agreement}, accuracy on tissue {accuracy})")
    _write_generic(root / "staple", ds, trainval, "staple",
                   {c: staple(list(masks[c].values())) for c in trainval})
    mine = [c for c in trainval if single in masks[c]]
    _write_generic(root / "single", ds, mine, single, {c: masks[c][single] for c in mine})
    save_split(Split([c for c in train if c in mine], [c for c in val if c in mine], []), root / "split_single.json")
    quality = _noisy_label_quality(root / "data", ds, test, experts)
    figure_core = _noisy_figure_core(root / "data", ds, test)
    return {"key": _key(preset), "single_expert": single, "agreement_with_vote": agreement,
            "accuracy_on_tissue": accuracy,
            "fingerprint": _fingerprint(ds, split.train) + "-" + _fingerprint(ds, split.val),
            "figure_core": figure_core, "label_quality": quality, "split_counts": split.counts()}


def test_core_labels(data: Path, ds, name: str) -> dict:
    """What scoring needs of a test core: masks of the experts present, truth, flags, tissue, ties."""
    masks = load_core(ds.core(name), ds.scheme).masks
    truth, flags, tissue = truth_and_flags(data, name)
    return {"masks": masks, "truth": truth, "flags": flags, "tissue": tissue,
            "ties": tie_mask(masks) & tissue if len(masks) > 1 else np.zeros_like(tissue)}


def _noisy_label_quality(data: Path, ds, test: list[str], experts: list[str]) -> dict:
    """Dice to the truth of each label source on the test cores: all tissue and the tie pixels."""
    accs: dict[str, DiceAccumulator] = {}
    ties: dict[str, DiceAccumulator] = {}
    n_ties = n_tissue = 0
    for name in test:
        t = test_core_labels(data, ds, name)
        truth, tissue, tie = t["truth"], t["tissue"], t["ties"]
        present = {e: m for e, m in t["masks"].items() if e in experts}
        sources = dict(present)
        sources["vote of the experts present"] = majority_vote(np.stack(list(present.values())), NUM_CLASSES)
        sources["STAPLE of the experts present"] = staple(list(present.values()))
        for key, labels in sources.items():
            accs.setdefault(key, DiceAccumulator(NUM_CLASSES)).update(truth, labels)  # glass too, as the models
            ties.setdefault(key, DiceAccumulator(NUM_CLASSES)).update(truth[tie], labels[tie])
        n_ties += int(tie.sum())
        n_tissue += int(tissue.sum())

    def table(a: dict) -> dict:
        return {k: {"dice": dict(zip(GLEASON_CLASSES, map(float, acc.dice()))), "mean_dice": acc.mean_dice()}
                for k, acc in a.items()}

    return {**table(accs), "on tie pixels": table(ties), "tie_fraction_of_tissue": n_ties / max(n_tissue, 1)}


def _noisy_figure_core(data: Path, ds, test: list[str]) -> str:
    """The test core annotated by all three with the largest single-expert biased areas."""
    best, best_count = test[0], -1
    for name in test:
        masks = load_core(ds.core(name), ds.scheme).masks
        truth, flags, _ = truth_and_flags(data, name)
        count = sum(int(bias_area(b, truth, flags).sum()) for b, v in PANEL_BIASES.items() if not v["shared"])
        count += 10**9 * (len(masks) == len(PANEL_EXPERTS))  # prefer a core every expert annotated
        if count > best_count:
            best, best_count = name, count
    return best


__all__ = ["BenchData", "prepare_data", "staple", "test_core_labels", "truth_and_flags"]
