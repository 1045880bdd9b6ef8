"""Train / validation / test splits: the paper's (§3.1), a default for any dataset, split files.

Paper: the 40 cores annotated by all six pathologists are the test set (a vote over more
experts is less biased); of the other 204 cores, the 195 annotated by pathologists 1, 3 and 4
are split into training and validation. Cores in neither group are left out (``excluded``).

:func:`default_split` applies the paper's rule where it applies: some cores are annotated by
every expert *and* some cores outside them by every training expert. Otherwise (every core
annotated by everybody, a Gleason folder with only Maps1/3/4_T, crowdsourced patches with 1-4 of
4 annotators) it trains on every core with at least one training expert and holds out a seeded
test and validation fraction, stratified so that each subset sees every class where possible.
It returns the split and a one-line reason, printed by ``split`` and ``train``.

A split file is JSON ``{"train": [...], "val": [...], "test": [...]}`` of core names.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.atomic import atomic_write
from trainer.data.records import MultiExpertSet
from trainer.errors import InputError
from trainer.jsonsafe import read_document
from trainer.safe_paths import check_name

SPLIT_KEYS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class Split:
    """Core names per subset; ``excluded`` lists cores in none (not written to split files)."""

    train: list[str]
    val: list[str]
    test: list[str]
    excluded: list[str] = field(default_factory=list)
    #: Which rule chose this split and why, in one line (not written to split files).
    reason: str = field(default="", compare=False)

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


def default_train_experts(layout: str, experts: tuple[str, ...]) -> tuple[str, ...]:
    """The paper's training pathologists 1, 3, 4 on Gleason 2019 (when present); all experts otherwise."""
    if layout == "gleason2019" and {"1", "3", "4"} <= set(experts):
        return ("1", "3", "4")
    return tuple(experts)


def core_classes(ds: MultiExpertSet, names: list[str] | None = None) -> dict[str, frozenset[int]]:
    """Class indices found in each core's masks (all its experts), read from the mask files.

    Unreadable masks are skipped here (``python -m trainer check`` reports them).
    """
    from trainer.data.classes import IGNORE_INDEX
    from trainer.data.io import mask_classes

    out: dict[str, frozenset[int]] = {}
    for name in ds.names if names is None else names:
        found: set[int] = set()
        for path in ds.core(name).masks.values():
            try:
                found |= mask_classes(path, ds.scheme)
            except InputError:
                continue
        found.discard(IGNORE_INDEX)
        out[name] = frozenset(found)
    return out


def _subset_sizes(n: int, test_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) sizes: test a fraction of n, val a fraction of the rest; train ≥ 1.

    With three or more cores each non-zero fraction gets at least one core; with two, test does.
    """
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, max(n - 1, 0))
    rest = n - n_test
    n_val = int(round(val_fraction * rest))
    if val_fraction > 0 and n >= 3:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(rest - 1, 0))
    return rest - n_val, n_val, n_test


def stratified_split(
    names: list[str],
    classes: Mapping[str, frozenset[int] | set[int]],
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[str], list[str], list[str]]:
    """Seeded (train, val, test) of ``names`` that lets each subset see every class where possible.

    Sizes come from :func:`_subset_sizes`. Classes are visited from the rarest; each subset in
    the order train, test, val that still lacks the class and has room takes one (seeded) random
    unassigned core holding it. The remaining cores fill the remaining room at random.
    """
    names = sorted(names)
    sizes = dict(zip(("train", "val", "test"), _subset_sizes(len(names), test_fraction, val_fraction)))
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    assigned: dict[str, str] = {}
    chosen: dict[str, list[str]] = {k: [] for k in sizes}
    seen: dict[str, set[int]] = {k: set() for k in sizes}

    def put(name: str, subset: str) -> None:
        assigned[name] = subset
        chosen[subset].append(name)
        seen[subset] |= set(classes.get(name, ()))

    all_classes = sorted({c for n in names for c in classes.get(n, ())})
    frequency = {c: sum(c in classes.get(n, ()) for n in names) for c in all_classes}
    for c in sorted(all_classes, key=lambda c: (frequency[c], c)):
        for subset in ("train", "test", "val"):
            if c in seen[subset] or len(chosen[subset]) >= sizes[subset]:
                continue
            holders = [n for n in order if n not in assigned and c in classes.get(n, ())]
            if not holders:
                break
            put(holders[0], subset)
    for name in order:
        if name not in assigned:
            subset = max(sizes, key=lambda k: (sizes[k] - len(chosen[k]), k == "train"))
            put(name, subset)
    _improve_by_swaps(chosen, classes, all_classes)
    return sorted(chosen["train"]), sorted(chosen["val"]), sorted(chosen["test"])


def _improve_by_swaps(chosen: dict[str, list[str]], classes: Mapping, all_classes: list[int]) -> None:
    """Swap cores between subsets while that lets more subsets see more classes (train first).

    Score: classes train sees, then (subset, class) pairs seen. Counts per subset and class make
    each swap's effect a few lookups; stops when no swap helps (a local optimum).
    """
    if not all_classes:
        return
    index = {c: i for i, c in enumerate(all_classes)}
    keys = list(chosen)
    counts = {k: np.zeros(len(all_classes), np.int64) for k in keys}
    vec = {}
    for k in keys:
        for n in chosen[k]:
            v = np.zeros(len(all_classes), np.int64)
            v[[index[c] for c in classes.get(n, ())]] = 1
            vec[n] = v
            counts[k] += v

    def score(k: str, cnt: np.ndarray) -> int:
        seen = int((cnt > 0).sum())
        return seen * (len(all_classes) * 4 + 1) if k == "train" else seen

    improved = True
    while improved:
        improved = False
        if all((counts[k] > 0).all() for k in keys if chosen[k]):
            return  # every subset already sees every class
        for a, b in itertools.combinations(keys, 2):
            # a swap helps only if a subset gains a class: x brings b one it lacks, or y brings a one
            gives_b = [bool((vec[x] * (counts[b] == 0)).any()) for x in chosen[a]]
            gives_a = [bool((vec[y] * (counts[a] == 0)).any()) for y in chosen[b]]
            for i, x in enumerate(list(chosen[a])):
                for j, y in enumerate(list(chosen[b])):
                    if not (gives_b[i] or gives_a[j]) or np.array_equal(vec[x], vec[y]):
                        continue
                    ca, cb = counts[a] - vec[x] + vec[y], counts[b] - vec[y] + vec[x]
                    if score(a, ca) + score(b, cb) > score(a, counts[a]) + score(b, counts[b]):
                        chosen[a][i], chosen[b][j] = y, x
                        counts[a], counts[b] = ca, cb
                        improved = True
                        break
                if improved:
                    break
            if improved:
                break


def default_split(
    ds: MultiExpertSet,
    train_experts: tuple[str, ...] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    classes: Mapping[str, frozenset[int] | set[int]] | Callable[[list[str]], Mapping] | None = None,
    require_train: bool = True,
) -> Split:
    """The split for ``ds`` when no split file is given; ``Split.reason`` says which rule and why.

    The paper's rule (:func:`paper_split`) when some cores are annotated by every expert and
    some cores outside them by every one of ``train_experts`` (default
    :func:`default_train_experts`). Otherwise every core with at least one training expert is
    split by :func:`stratified_split` (``test_fraction`` held out for testing, ``val_fraction``
    of the rest for validation). ``classes`` (core -> class indices, e.g. from
    :func:`trainer.data.check.check_dataset`) saves reading the masks again; without it they are
    read only when the stratified rule applies.
    """
    experts = tuple(train_experts) if train_experts else default_train_experts(ds.layout, ds.experts)
    unknown = [e for e in experts if e not in ds.experts]
    if unknown:
        raise InputError(f"training experts {unknown} are not in this dataset (experts: {list(ds.experts)})", ds.root)
    for what, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{what} must be in [0, 1), got {value}")
    everyone = [c.name for c in ds.cores if c.has_experts(ds.experts)]
    outside = [c.name for c in ds.cores if not c.has_experts(ds.experts) and c.has_experts(experts)]
    who = ", ".join(experts)
    if everyone and outside:
        split = paper_split(ds, experts, val_fraction=val_fraction, seed=seed)
        split.reason = (f"split: the paper's rule — {len(everyone)} cores annotated by all {len(ds.experts)} "
                        f"experts are the test set; train/val from the {len(outside)} others annotated by "
                        f"all of {who}")
        return split
    candidates = sorted(c.name for c in ds.cores if any(e in c.masks for e in experts))
    if not candidates:
        if require_train:
            raise InputError(f"no core is annotated by any of the training experts {list(experts)}; "
                             "nothing to train on", ds.root)
        return Split([], [], [], sorted(ds.names), reason="split: no core has a training expert")
    if callable(classes):
        classes = classes(candidates)
    elif classes is None:
        classes = core_classes(ds, candidates)
    train, val, test = stratified_split(candidates, classes, test_fraction, val_fraction, seed)
    if not everyone:
        why = f"no core is annotated by all {len(ds.experts)} experts"
    elif len(everyone) == len(ds):
        why = "every core is annotated by every expert"
    else:
        why = f"no core outside those annotated by all {len(ds.experts)} experts is annotated by all of {who}"
    reason = (f"split: stratified by class — {why}, so the paper's rule does not apply; every core with "
              f"at least one of {who} is used, {test_fraction:.0%} held out for testing and {val_fraction:.0%} "
              f"of the rest for validation (seed {seed})")
    used = set(candidates)
    return Split(train, val, test, sorted(n for n in ds.names if n not in used), reason=reason)


def check_split(split: Split, ds: MultiExpertSet, path: str | Path | None = None) -> None:
    """Raise an :class:`InputError` when ``split`` names cores that ``ds`` lacks."""
    unknown = [n for k in SPLIT_KEYS for n in getattr(split, k) if n not in ds]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" … ({len(unknown)} in all)" if len(unknown) > 10 else "")
        raise InputError(f"split names cores not in the dataset at {ds.root}: {shown}", path or ds.root)


def load_split(path: str | Path, ds: MultiExpertSet | None = None) -> Split:
    """Read a split file; with ``ds``, also check every name is a core of ``ds``."""
    path = Path(path)
    data = read_document(path, "split file", dict, 'expected {"train": [...], "val": [...], "test": [...]}')
    lists: dict[str, list[str]] = {}
    for key in SPLIT_KEYS:
        names = data.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{key!r} must be a list of core names", path)
        for name in names:  # a split file may come from anyone: a name never reaches outside a folder
            check_name(name, "core name", path)
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
    """Write ``split`` as JSON (UTF-8, names kept readable), atomically: a full disk raises
    :class:`~trainer.errors.InputError` naming the file, and an earlier split there is kept."""
    path = Path(path)
    with atomic_write(path, "w", what="the split") as f:
        f.write(json.dumps(split.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path
