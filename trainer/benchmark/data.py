"""The benchmark's data: synthetic cores with known truth, the paper's split, and consensus datasets.

``out/data``    Gleason 2019 layout: ``test_cores`` cores annotated by all six experts (the test
                set, paper §3.1), ``train_cores`` annotated by the preset's training experts only.
``out/staple``  the same training cores in the generic layout with one annotator, ``staple``:
                SimpleITK's MultiLabelSTAPLE over the training experts (undecided pixels → vote).
``out/single``  likewise with one training expert's labels.
``split.json``  train/val/test of ``out/data``; ``split_train.json`` the same train/val for the
                consensus datasets. The engine trains on the vote of a dataset's experts, so a
                dataset with one annotator trains on that annotator: no second code path.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import open_dataset
from ..data.classes import GLEASON_CLASSES, GLEASON_SCHEME, IGNORE_INDEX
from ..data.io import read_mask, read_mask_values
from ..data.records import load_core
from ..data.splits import Split, load_split, paper_split, save_split
from ..data.vote import majority_vote
from ..errors import InputError
from ..metrics import DiceAccumulator
from ..synthetic import EXPERT_NAMES, FLAG_BORDERLINE_G3, GENERATOR_VERSION, write_dataset
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

    def dataset_for(self, labels: str) -> tuple[Path, Path]:
        """(dataset folder, split file) a variant trains on."""
        if labels == "vote":
            return self.data, self.split_file
        return (self.staple if labels == "staple" else self.single), self.derived_split_file


def _key(preset: Preset) -> dict:
    return {"size": preset.size, "train_cores": preset.train_cores, "test_cores": preset.test_cores,
            "data_seed": preset.data_seed, "train_experts": list(preset.train_experts),
            "val_fraction": preset.val_fraction, "single_expert": preset.single_expert,
            "generator": GENERATOR_VERSION}


def staple(masks: list[np.ndarray]) -> np.ndarray:
    """Multi-label STAPLE (Warfield et al. 2004, via SimpleITK) of class maps; undecided → vote."""
    import SimpleITK as sitk

    images = [sitk.GetImageFromArray(np.ascontiguousarray(m, dtype=np.uint8)) for m in masks]
    filt = sitk.MultiLabelSTAPLEImageFilter()
    filt.SetLabelForUndecidedPixels(IGNORE_INDEX)
    out = sitk.GetArrayFromImage(filt.Execute(*images)).astype(np.uint8)
    undecided = out == IGNORE_INDEX
    if undecided.any():
        out[undecided] = majority_vote(np.stack(masks), NUM_CLASSES)[undecided]
    return out


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
    return BenchData(root, root / "data", root / "split.json", root / "split_train.json", root / "staple",
                     root / "single", meta["single_expert"], split, meta["fingerprint"], meta["figure_core"],
                     meta["label_quality"])


def _write(root: Path, preset: Preset, log) -> dict:
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


__all__ = ["BenchData", "prepare_data", "staple", "truth_and_flags"]
