"""Train / validation / test split of paper §3.1, and explicit split files.

Paper: the 40 cores annotated by all six pathologists are the test set (a vote over more
experts is less biased); of the other 204 cores, the 195 annotated by pathologists 1, 3 and 4
are split into training and validation. Cores in neither group are left out (``excluded``).

A split file is JSON ``{"train": [...], "val": [...], "test": [...]}`` of core names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.data.records import MultiExpertSet
from trainer.errors import InputError

SPLIT_KEYS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class Split:
    """Core names per subset; ``excluded`` lists cores in none (not written to split files)."""

    train: list[str]
    val: list[str]
    test: list[str]
    excluded: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of cores per subset: ``{"train": n, "val": n, "test": n}``."""
        return {k: len(getattr(self, k)) for k in SPLIT_KEYS}

    def summary(self) -> str:
        """One line for printing, e.g. ``train 156 · val 39 · test 40 cores (9 excluded)``."""
        c = self.counts()
        text = f"train {c['train']} · val {c['val']} · test {c['test']} cores"
        return text + (f" ({len(self.excluded)} excluded)" if self.excluded else "")

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in SPLIT_KEYS}


def paper_split(
    ds: MultiExpertSet,
    train_experts: tuple[str, ...] = ("1", "3", "4"),
    val_fraction: float = 0.2,
    seed: int = 0,
    require_train: bool = True,
) -> Split:
    """Split as in paper §3.1.

    test = cores annotated by every expert of ``ds``; train/val = the other cores annotated by
    all of ``train_experts``, a seeded ``val_fraction`` of them (at least one when there are
    two or more) going to validation. Deterministic for a given dataset and ``seed``.
    ``require_train=False`` (evaluation) accepts a dataset with no core left to train on.
    """
    train_experts = tuple(train_experts)
    unknown = [e for e in train_experts if e not in ds.experts]
    if unknown:
        raise InputError(f"training experts {unknown} are not in this dataset (experts: {list(ds.experts)})", ds.root)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    test = sorted(c.name for c in ds.cores if c.has_experts(ds.experts))
    test_set = set(test)
    candidates = sorted(c.name for c in ds.cores if c.name not in test_set and c.has_experts(train_experts))
    if not candidates and require_train:
        raise InputError(
            f"no core outside the test set (cores annotated by all experts {list(ds.experts)}) "
            f"is annotated by all of {list(train_experts)}; nothing to train on",
            ds.root,
        )
    n = len(candidates)
    n_val = int(round(val_fraction * n))
    if n >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)  # keep at least one core on each side
    perm = np.random.default_rng(seed).permutation(n)
    val = sorted(candidates[i] for i in perm[:n_val])
    train = sorted(candidates[i] for i in perm[n_val:])
    used = test_set | set(candidates)
    excluded = sorted(c.name for c in ds.cores if c.name not in used)
    return Split(train, val, test, excluded)


def check_split(split: Split, ds: MultiExpertSet, path: str | Path | None = None) -> None:
    """Raise an :class:`InputError` when ``split`` names cores that ``ds`` lacks."""
    unknown = [n for k in SPLIT_KEYS for n in getattr(split, k) if n not in ds]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" … ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise InputError(f"split names cores not in the dataset at {ds.root}: {shown}", path or ds.root)


def load_split(path: str | Path, ds: MultiExpertSet | None = None) -> Split:
    """Read a split file; with ``ds``, also check every name is a core of ``ds``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read split file: {e}", path) from None
    if not isinstance(data, dict):
        raise InputError('expected {"train": [...], "val": [...], "test": [...]}', path)
    lists: dict[str, list[str]] = {}
    for key in SPLIT_KEYS:
        names = data.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{key!r} must be a list of core names", path)
        lists[key] = names
    seen: dict[str, str] = {}
    for key in SPLIT_KEYS:
        for name in lists[key]:
            if name in seen:
                raise InputError(f"core {name!r} is in both {seen[name]!r} and {key!r}", path)
            seen[name] = key
    split = Split(lists["train"], lists["val"], lists["test"])
    if ds is not None:
        check_split(split, ds, path)
        split.excluded = sorted(n for n in ds.names if n not in seen)
    return split


def save_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as JSON (UTF-8, names kept readable)."""
    path = Path(path)
    path.write_text(json.dumps(split.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
