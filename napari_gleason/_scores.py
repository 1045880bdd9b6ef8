"""Per-core scores for the dataset browser, and their cache (headless, no Qt).

A core's scores, from its experts' masks:

- **disagreement**: the mean over the annotated pixels of the disagreement map
  (:func:`._analysis.disagreement_map`: the share of the experts present that differ from the vote);
- **agreement**: the mean over every pair of experts of Cohen's κ (all classes at once, pixels both
  labelled; what :func:`._analysis.agreement` gives, from one ``bincount`` per pair), and each pair's κ;
- **grade-group spread**: each expert's ISUP grade group (:func:`trainer.grading.grade_core`, the
  command line's rule and pattern floor, :mod:`._grades`), and the highest minus the lowest of them
  (0: every expert grades the core alike; 5: benign against 9-10), graded on the same grid (the
  shares move by a fraction of a percent). No tissue mask is needed: a grade does not depend on it.

All are NaN with fewer than two experts. They are computed on a regular grid of ``step`` pixels
(:func:`grid_step`: ``step = ⌈side / SCORE_GRID⌉``, 4 on a 5120² core, 1 up to 1280 px): each mask
is decoded once, checked in full (size against the image, mode, every value — the data check's
quick mode, so a core's problems come out of the same read) and then sampled on the grid (pixel
``(step·i, step·j)``, nearest: label values are never averaged). PNG has no reduced-resolution
decoding, so the decode itself is full; the grid saves copying the mask out of Pillow, the vote
and the confusion matrices. On
the Gleason 2019 maps, drawn with a coarse brush, the grid gives the full-resolution scores to
within :data:`GRID_TOLERANCE` (measured by ``benchmarks/bench_browser.py`` on 5120² cores, tested
against full resolution on small fakes).

:class:`ScoreCache` keeps each core's scores (and problems) keyed by its image's and masks'
resolved path, size and mtime_ns, in one JSON per dataset under :func:`default_score_folder`
(next to the data check's cache: same rules, atomic write, damaged or foreign file ignored and
rebuilt, files changed < 2 s ago not cached). :class:`DatasetScores` is what the browser uses:
``cached()`` lists what the cache holds at once; ``score(names)`` yields the rest as it goes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data.check import CheckCache, Problem, default_cache_folder
from trainer.data.classes import IGNORE_INDEX, ClassScheme
from trainer.data.core import natural_key, natural_sorted
from trainer.data.geojson import is_geojson
from trainer.data.io import image_header, open_decoded, read_mask_values, values_to_classes
from trainer.errors import InputError
from trainer.grading import grade_core, pattern_of_class
from trainer.metrics import cohen_kappa_from_confusion

from ._analysis import disagreement_map, vote
from ._grades import MIN_SHARE, RULE, grade_group_spread

#: Scores are computed on a grid of at most this many pixels per side (a 5120² core: step 4).
SCORE_GRID = 1280
#: What the grid may change, absolute: disagreement (0..1) and mean pairwise κ (−1..1).
GRID_TOLERANCE = {"disagreement": 0.01, "agreement": 0.02}
#: Bump when what an entry holds (or how a score is computed) changes: older entries are ignored.
SCORES_FORMAT = 2
#: While scoring, the cache file is written after this many newly scored cores (and at the end),
#: so a long first scoring that is interrupted keeps what it did.
SAVE_EVERY = 16


def grid_step(shape: tuple[int, ...], grid: int = SCORE_GRID) -> int:
    """Sampling step for a core of ``shape``: ``⌈max side / grid⌉`` (1 for small cores)."""
    return max(1, math.ceil(max(int(s) for s in shape[:2]) / grid))


def read_mask_grid(path: str | Path, scheme: ClassScheme, shape: tuple[int, int] | None, step: int) -> np.ndarray:
    """A mask's class indices at pixels ``(step·i, step·j)``; the whole mask checked as
    :func:`trainer.data.io.read_mask` does (size against the image, mode, every value).

    Grey and palette masks stay in Pillow: every value is checked through the image's histogram,
    and only the grid is sampled (an affine nearest-neighbour transform) and copied out; the full
    mask never becomes a NumPy array. Other modes go through :func:`read_mask_values`.
    """
    path = Path(path)
    if is_geojson(path):  # rasterised at the image's size, then sampled
        return values_to_classes(read_mask_values(path, shape, scheme), scheme, path)[::step, ::step].copy()
    img = open_decoded(path)  # the data check's reader: the same messages for a broken file
    if shape is not None and tuple(shape[:2]) != (img.height, img.width):
        return read_mask_values(path, shape)  # raises the size message, naming both sizes
    if img.mode not in ("L", "P"):
        return values_to_classes(read_mask_values(path, shape), scheme, path)[::step, ::step].copy()
    present = np.flatnonzero(np.asarray(img.histogram()[:256])).astype(np.uint8)
    values_to_classes(present, scheme, path)  # raises, naming the values found
    if step > 1:
        o = 0.5 - step / 2  # output pixel x samples input x·step exactly (Pillow maps pixel centres)
        img = img.transform((math.ceil(img.width / step), math.ceil(img.height / step)), Image.Transform.AFFINE,
                            (step, 0, o, 0, step, o), resample=Image.Resampling.NEAREST)
    return values_to_classes(np.asarray(img), scheme, path)


def score_masks(masks: Mapping[str, np.ndarray], num_classes: int) -> tuple[float, float, dict[str, float]]:
    """``(disagreement, mean pairwise κ, {"a|b": κ})`` of class maps (already on the grid)."""
    if len(masks) < 2:
        return math.nan, math.nan, {}
    v = vote(masks, num_classes)
    annotated = v != IGNORE_INDEX
    disagreement = float(disagreement_map(masks, v)[annotated].mean()) if annotated.any() else math.nan
    # class indices with "unlabelled" as one more symbol: a pair's confusion is one bincount of uint8 codes
    symbols = num_classes + 1
    coded = {e: np.minimum(np.asarray(m), num_classes).astype(np.uint8).ravel() for e, m in masks.items()}
    pairs = {}
    for a, b in combinations(natural_sorted(masks), 2):
        if symbols * symbols <= 256:
            code = coded[a] * np.uint8(symbols) + coded[b]
        else:
            code = coded[a].astype(np.int64) * symbols + coded[b]
        cm = np.bincount(code, minlength=symbols * symbols).reshape(symbols, symbols)[:num_classes, :num_classes]
        pairs[f"{a}|{b}"] = float(cohen_kappa_from_confusion(cm))
    finite = [k for k in pairs.values() if not math.isnan(k)]
    return disagreement, (float(np.mean(finite)) if finite else math.nan), pairs


def expert_grade_groups(masks: Mapping[str, np.ndarray], names) -> dict[str, int | None]:
    """Each expert's ISUP grade group of the core (``None``: left unlabelled); empty when the classes
    hold no Gleason pattern."""
    names = tuple(names)
    if not pattern_of_class(names):
        return {}
    return {e: grade_core(np.asarray(masks[e]), names, rule=RULE, min_share=MIN_SHARE).grade_group
            for e in natural_sorted(masks)}


@dataclass
class CoreScore:
    """One core's scores; ``problems`` non-empty means the core could not be scored."""

    name: str
    experts: tuple[str, ...]
    disagreement: float = math.nan
    agreement: float = math.nan
    pairs: dict[str, float] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    step: int = 1
    cached: bool = False
    grades: dict[str, int | None] = field(default_factory=dict)  # expert -> ISUP grade group

    def __post_init__(self) -> None:
        """Experts, pairs and grades in natural order (:func:`trainer.data.records.natural_key`),
        also for scores cached in another order; a pair names its two experts in that order too."""
        self.experts = tuple(natural_sorted(self.experts))
        pairs = {"|".join(natural_sorted(k.split("|", 1))): v for k, v in self.pairs.items()}
        self.pairs = {k: pairs[k] for k in sorted(pairs, key=lambda k: [natural_key(e) for e in k.split("|", 1)])}
        self.grades = {e: self.grades[e] for e in natural_sorted(self.grades)}

    @property
    def grade_spread(self) -> float:
        """Highest minus lowest of the experts' grade groups (NaN with fewer than two graded)."""
        return grade_group_spread(self.grades.values())

    @property
    def problem_text(self) -> str:
        """Every problem on a line of its own (file name: problem); empty when there is none."""
        return "\n".join(f"{p.path.name}: {p.problem}" for p in self.problems)

    def to_entry(self) -> dict:
        def num(x: float):
            return None if math.isnan(x) else float(x)

        return {"experts": list(self.experts), "disagreement": num(self.disagreement),
                "agreement": num(self.agreement), "pairs": {k: num(v) for k, v in self.pairs.items()},
                "problems": [[str(p.path), p.problem] for p in self.problems], "step": self.step,
                "grades": dict(self.grades)}

    @classmethod
    def from_entry(cls, name: str, entry: dict) -> CoreScore:
        """Raises ``KeyError``/``TypeError``/``ValueError`` for an entry that is not one of ours."""
        def num(x) -> float:
            return math.nan if x is None else float(x)

        return cls(name, tuple(str(e) for e in entry["experts"]), num(entry["disagreement"]),
                   num(entry["agreement"]), {str(k): num(v) for k, v in dict(entry["pairs"]).items()},
                   [Problem(Path(p), str(why), name) for p, why in entry["problems"]], int(entry["step"]),
                   cached=True, grades={str(k): (None if v is None else int(v)) for k, v in dict(entry["grades"]).items()})


def _reason(exc: InputError) -> str:
    """The message without the ``path: `` prefix (the file is shown separately)."""
    text = " ".join(str(exc).split())
    prefix = f"{exc.path}: " if exc.path is not None else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def score_core(record, scheme: ClassScheme, step: int | None = None) -> CoreScore:
    """Scores of one dataset core (a :class:`~trainer.data.records.CoreRecord`), reading each mask
    once; any unreadable file becomes a problem of the core (every one of them, not only the first)."""
    problems: list[Problem] = []
    try:
        shape = image_header(record.image_path).shape
    except InputError as e:
        problems.append(Problem(Path(record.image_path), _reason(e), record.name))
        shape = None
    if step is None:
        step = grid_step(shape) if shape is not None else 1
    masks = {}
    for expert, path in record.masks.items():
        try:
            masks[expert] = read_mask_grid(path, scheme, shape, step)
        except InputError as e:
            problems.append(Problem(Path(path), _reason(e), record.name))
    out = CoreScore(record.name, tuple(record.masks), problems=problems, step=step)
    if not problems:
        out.disagreement, out.agreement, out.pairs = score_masks(masks, scheme.num_classes)
        out.grades = expert_grade_groups(masks, scheme.names)
    return out


def score_store_core(store, name: str) -> CoreScore:
    """Scores of a review store's core (its masks are read in full, then sampled; not cached)."""
    experts = tuple(store.experts_of(name))
    try:
        full = store.masks(name)
    except InputError as e:
        path = e.path or Path(store.root)
        return CoreScore(name, experts, problems=[Problem(path, _reason(e), name)])
    step = grid_step(next(iter(full.values())).shape) if full else 1
    out = CoreScore(name, experts, step=step)
    grid = {e: np.ascontiguousarray(m[::step, ::step]) for e, m in full.items()}
    out.disagreement, out.agreement, out.pairs = score_masks(grid, store.scheme.num_classes)
    out.grades = expert_grade_groups(grid, store.scheme.names)
    return out


def default_score_folder() -> Path:
    """``scores/`` beside the data check's cache folder (``$NAPARI_GLEASON_CACHE/scores`` or
    ``~/.cache/napari-gleason/scores``)."""
    return default_cache_folder().parent / "scores"


class ScoreCache(CheckCache):
    """The scores of one dataset's cores, one entry per core keyed by its files (see the module docstring)."""

    def __init__(self, folder: str | Path, root: str | Path, scheme: ClassScheme):
        super().__init__(folder, root, scheme, full=False)
        self.ident = json.dumps(["scores", SCORES_FORMAT, str(Path(root).resolve()), scheme.to_dict(), SCORE_GRID],
                                sort_keys=True)
        self.path = self.folder / f"{hashlib.sha1(self.ident.encode()).hexdigest()[:20]}.json"

    def core_key(self, record) -> str | None:
        """The key of a core: its name and every file's key; ``None`` if any file cannot be keyed."""
        keys = [self.key("image", Path(record.image_path))]
        keys += [self.key(f"mask:{e}", Path(p)) for e, p in sorted(record.masks.items())]
        if any(k is None for k in keys):
            return None
        return json.dumps([record.name, keys])


class DatasetScores:
    """The scores of a dataset's cores: cached ones at once, the others computed as they go.

    ``cache``: ``True`` for :func:`default_score_folder`, a folder, or ``False`` for none.
    """

    def __init__(self, ds, cache: str | Path | bool = True, workers: int | None = None):
        self.ds = ds
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.cache = None
        if cache:
            folder = default_score_folder() if cache is True else Path(cache)
            self.cache = ScoreCache(folder, ds.root, ds.scheme).load()

    def cached(self, names: Iterable[str] | None = None) -> dict[str, CoreScore]:
        """Core name -> its scores, for the cores whose files have not changed since they were scored."""
        out: dict[str, CoreScore] = {}
        if self.cache is None:
            return out
        for name in self.ds.names if names is None else names:
            entry = self.cache.get(self.cache.core_key(self.ds.core(name)))
            if entry is not None:
                try:
                    out[name] = CoreScore.from_entry(name, entry)
                except (KeyError, TypeError, ValueError):
                    pass  # not one of ours: scored again
        return out

    def score(self, names: Iterable[str]) -> Iterator[CoreScore]:
        """Score ``names`` (a few threads: decoding releases the GIL), yielding each as it is done,
        in no particular order; the cache is written every :data:`SAVE_EVERY` cores and at the end
        (also when the consumer stops early)."""
        names = list(names)
        done = 0
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="napari-gleason-scores")
        try:
            futures = {pool.submit(self._score_one, n): n for n in names}
            for fut in as_completed(futures):
                key, result = fut.result()
                if self.cache is not None:  # the cache is touched from this thread only
                    self.cache.put(key, result.to_entry())
                yield result
                done += 1
                if self.cache is not None and done % SAVE_EVERY == 0:
                    self.cache.save()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a dropped scoring does not wait for its last cores
            if self.cache is not None:
                self.cache.save()

    def _score_one(self, name: str) -> tuple[str | None, CoreScore]:
        record = self.ds.core(name)
        # the key is taken before the files are read: one changed meanwhile is scored again next time
        key = self.cache.core_key(record) if self.cache is not None else None
        return key, score_core(record, self.ds.scheme)

    def all(self) -> dict[str, CoreScore]:
        """Every core's scores (cached or computed), in dataset order."""
        found = self.cached()
        found.update({s.name: s for s in self.score([n for n in self.ds.names if n not in found])})
        return {n: found[n] for n in self.ds.names}
