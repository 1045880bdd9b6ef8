"""Checking a whole dataset before training: every core, every mask, all problems at once.

:func:`check_dataset` opens every core's image and every expert's mask and returns a
:class:`CheckReport`: the problems (file, problem), the classes each core's masks hold (which
:func:`~trainer.data.splits.default_split` uses to stratify) and notes on usable files that hold
something a layout does not expect (a BU-BIL mask with values besides 0 and 255:
:func:`trainer.data.bubil.stray_values_note`). Masks are always decoded (their
values and size matter); images are checked by their header only (size, pixel mode, readable
format) unless ``full=True`` decodes them too, which also finds truncated files.

``python -m trainer check --data DIR [--full]`` prints the report as a table; ``train`` runs the
quick check before its first iteration (``--no-check`` skips it) and refuses data with problems
(:class:`DataProblemsError`). :func:`problems_by_core` is the per-core view a dataset browser uses.
The dataset's files are opened read-only.

Each file's result is cached (:class:`CheckCache`), keyed by the file's resolved path, byte size
and modification time (ns), in one JSON file per dataset folder under the cache folder
(:func:`default_cache_folder`, shared by ``check``, ``train`` and the plugin's runs). A
second check of an unchanged Gleason 2019 set (~1000 masks, ~0.2 s each to decode) reads no mask
again; a touched, edited or replaced file is checked anew. The cache file is written atomically;
a damaged or foreign one is ignored and rebuilt; a cache folder that cannot be written (full,
read-only) only costs the speed-up, with a :class:`~trainer.errors.CacheWarning` that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from trainer.atomic import atomic_write
from trainer.data.classes import IGNORE_INDEX
from trainer.data.io import image_header, read_image, read_mask_value_set, values_to_classes
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.data.splits import Split, default_split, load_split
from trainer.errors import CacheWarning, InputError


@dataclass(frozen=True)
class Problem:
    """One file that cannot be used, and why (the reason without the file's name)."""

    path: Path
    problem: str
    core: str | None = None


@dataclass
class CheckReport:
    """What :func:`check_dataset` found: ``problems`` in dataset order, ``classes`` per core."""

    root: Path
    full: bool
    cores: int = 0
    files: int = 0
    problems: list[Problem] = field(default_factory=list)
    classes: dict[str, frozenset[int]] = field(default_factory=dict)
    #: usable files worth a word (e.g. stray mask values and how they are read); not problems
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def by_core(self) -> dict[str, list[Problem]]:
        """Core name -> its problems (only cores with problems)."""
        out: dict[str, list[Problem]] = {}
        for p in self.problems:
            out.setdefault(p.core or "", []).append(p)
        return out

    def shown_path(self, path: Path) -> str:
        """``path`` relative to the dataset folder when it lies inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def table(self) -> str:
        """The problems as a two-column text table (file, problem); empty when there are none."""
        if not self.problems:
            return ""
        rows = [(self.shown_path(p.path), p.problem) for p in self.problems]
        width = min(max(len("file"), *(len(f) for f, _ in rows)), 80)
        lines = [f"{'file':<{width}}  problem", f"{'-' * width}  {'-' * 7}"]
        lines += [f"{f:<{width}}  {why}" for f, why in rows]
        return "\n".join(lines)

    #: How :meth:`summary` names what was checked: the kind of folder, the unit counted, and how
    #: (with ``full``, without); a review store's report says "arrays" and "chunks".
    KIND, UNIT, HOW = "", "files", ("images decoded", "image headers")

    def note_text(self, note: Problem) -> str:
        return f"{self.shown_path(note.path)}: {note.problem}"

    def summary(self) -> str:
        """One line: what was checked and how many problems were found; then one ``note:`` line per note."""
        how = self.HOW[0] if self.full else self.HOW[1]
        found = f"{len(self.problems)} problem{'s' * (len(self.problems) != 1)}" if self.problems else "no problems"
        lines = [f"{self.root}: {self.KIND}{self.cores} cores, {self.files} {self.UNIT} checked ({how}): {found}"]
        lines += [f"note: {self.note_text(n)}" for n in self.notes]
        return "\n".join(lines)


class DataProblemsError(InputError):
    """The data has problems; ``report`` lists them all. One line: the first problem and the count."""

    def __init__(self, report: CheckReport):
        self.report = report
        first = report.problems[0]
        if len(report.problems) == 1:
            super().__init__(first.problem, first.path)
        else:
            more = len(report.problems) - 1
            super().__init__(f"{first.problem} — and {more} more problem{'s' * (more != 1)} in {report.root} "
                             f"(python -m trainer check --data DIR lists them all)", first.path)


def problem_text(exc: InputError) -> str:
    """An :class:`InputError`'s message without the ``path: `` prefix it starts with."""
    text = " ".join(str(exc).split())
    prefix = f"{exc.path}: " if exc.path is not None else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


#: Bump when what an entry holds changes: older cache files are then ignored (and rebuilt).
CACHE_FORMAT = 2  # 2: mask entries hold their raw values too
#: A file modified less than this many seconds ago is checked but not cached.
RACY_SECONDS = 2
#: Cache files (one per dataset folder) kept in the cache folder; the least recently written go first.
CACHE_FILES_KEPT = 64


def default_cache_folder() -> Path:
    """``$NAPARI_GLEASON_CACHE/check``, else ``check/`` in the user's cache folder of this OS
    (platformdirs: ``$XDG_CACHE_HOME/napari-gleason`` or ``~/.cache/napari-gleason`` on Linux,
    ``~/Library/Caches/napari-gleason`` on macOS, ``%LOCALAPPDATA%\\napari-gleason\\Cache`` on Windows)."""
    base = os.environ.get("NAPARI_GLEASON_CACHE")
    if base:
        return Path(base) / "check"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-gleason", appauthor=False)) / "check"


class CheckCache:
    """The check results of one dataset's files, keyed by (kind, resolved path, size, mtime_ns, context).

    ``load`` ignores a missing, damaged or foreign file; ``save`` writes only the entries used in
    this check (so deleted files drop out), atomically, and never raises (a failed write warns).
    """

    def __init__(self, folder: str | Path, root: str | Path, scheme, full: bool):
        ident = json.dumps([str(Path(root).resolve()), scheme.to_dict(), bool(full)], sort_keys=True)
        self.folder = Path(folder)
        self.path = self.folder / f"{hashlib.sha1(ident.encode()).hexdigest()[:20]}.json"
        self.ident = ident
        self._old: dict[str, dict] = {}
        self._new: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def load(self) -> CheckCache:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") == CACHE_FORMAT and data.get("ident") == self.ident and \
                    isinstance(data.get("entries"), dict):
                self._old = {k: v for k, v in data["entries"].items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError):
            self._old = {}
        return self

    @staticmethod
    def key(kind: str, path: Path, context: object = None) -> str | None:
        """The entry's key, or ``None`` for a file that cannot be stat'ed or was changed in the last
        :data:`RACY_SECONDS` (checked, never cached: a second change within the file system's
        timestamp granularity, same size, would otherwise go unseen)."""
        try:
            st = os.stat(path)
            resolved = str(Path(path).resolve())
        except (OSError, RuntimeError):
            return None
        if time.time_ns() - st.st_mtime_ns < RACY_SECONDS * 1_000_000_000:
            return None
        return json.dumps([kind, resolved, st.st_size, st.st_mtime_ns, context])

    def get(self, key: str | None) -> dict | None:
        if key is None:
            return None
        with self._lock:
            entry = self._old.get(key)
            if entry is not None:
                self._new[key] = entry
                self.hits += 1
            return entry

    def put(self, key: str | None, entry: dict) -> None:
        if key is not None:
            with self._lock:
                self._new[key] = entry

    def save(self) -> None:
        if self._new == self._old:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path, "w", what="the data check's cache") as f:
                json.dump({"format": CACHE_FORMAT, "ident": self.ident, "entries": self._new}, f)
            files = sorted(self.folder.glob("*.json"), key=lambda f: f.stat().st_mtime_ns)
            for old in files[:-CACHE_FILES_KEPT]:
                old.unlink(missing_ok=True)
        except (OSError, InputError) as exc:  # a read-only or full cache folder: the next check decodes again
            warnings.warn(f"{exc}; the next check reads every file again" if isinstance(exc, InputError) else
                          f"{self.folder}: cannot write the data check's cache ({exc.strerror or exc}); "
                          "the next check reads every file again", CacheWarning, stacklevel=2)


def _cached(cache: CheckCache | None, kind: str, path: Path, context, compute: Callable[[], dict]) -> dict:
    """``compute()``'s entry for ``path`` ({"problem": ...} or the result), from ``cache`` when it holds one."""
    key = cache.key(kind, path, context) if cache is not None else None
    entry = cache.get(key) if cache is not None else None
    if entry is None:
        try:
            entry = compute()
        except InputError as exc:
            entry = {"problem": problem_text(exc)}
        if cache is not None:
            cache.put(key, entry)
    return entry


def _mask_entry(path: Path, scheme, shape: tuple[int, int] | None) -> dict:
    """A mask's cache entry: the classes it holds and its distinct raw values."""
    values = read_mask_value_set(path, shape, scheme)
    classes = values_to_classes(values, scheme, path)
    return {"classes": sorted({int(c) for c in classes.tolist()}), "values": [int(v) for v in values.tolist()]}


def _value_notes(layout: str | None) -> Callable[[list[int]], str | None] | None:
    """The layout's rule for a note on a usable mask's raw values, if it has one."""
    if layout == "bubil":
        from trainer.data.bubil import stray_values_note

        return stray_values_note
    return None


def check_core(record: CoreRecord, scheme, full: bool = False, cache: CheckCache | None = None,
               notes: list[Problem] | None = None,
               value_note: Callable[[list[int]], str | None] | None = None,
               ) -> tuple[list[Problem], frozenset[int], int]:
    """Problems of one core, the classes its readable masks hold, and the number of files checked.

    ``value_note(raw values)`` (a layout's rule) may return a note for a usable mask; it is
    appended to ``notes``.
    """
    problems: list[Problem] = []

    def image() -> dict:
        shape = read_image(record.image_path).shape[:2] if full else image_header(record.image_path).shape
        return {"shape": [int(shape[0]), int(shape[1])]}

    entry = _cached(cache, "image-full" if full else "image", Path(record.image_path), None, image)
    shape = tuple(entry["shape"]) if "shape" in entry else None
    if "problem" in entry:
        problems.append(Problem(record.image_path, str(entry["problem"]), record.name))
    found: set[int] = set()
    for path in record.masks.values():
        # the mask's result depends on the image's size too: it is part of the key
        entry = _cached(cache, "mask", Path(path), None if shape is None else list(shape),
                        lambda p=path: _mask_entry(p, scheme, shape))
        if "problem" in entry:
            problems.append(Problem(path, str(entry["problem"]), record.name))
        else:
            found |= {int(c) for c in entry.get("classes", ())}
            note = value_note(entry.get("values", [])) if value_note is not None else None
            if note and notes is not None:
                notes.append(Problem(path, note, record.name))
    found.discard(IGNORE_INDEX)
    return problems, frozenset(found), 1 + len(record.masks)


def check_dataset(
    ds: MultiExpertSet,
    names: Iterable[str] | None = None,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    cache: str | Path | bool | None = True,
) -> CheckReport:
    """Check every core of ``ds`` (or those in ``names``); ``progress(done, total)`` after each core.

    Cores are checked by a few threads (decoding releases the GIL); the report keeps dataset order.
    ``cache``: ``True`` the :func:`default_cache_folder`, a folder, or ``False``/``None`` to decode
    every file (see the module docstring).
    """
    records = [ds.core(n) for n in (ds.names if names is None else names)]
    report = CheckReport(Path(ds.root), full)
    workers = workers or min(4, os.cpu_count() or 1)
    results: list = [None] * len(records)
    store = None
    if cache:
        folder = default_cache_folder() if cache is True else Path(cache)
        store = CheckCache(folder, ds.root, ds.scheme, full).load()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        value_note = _value_notes(getattr(ds, "layout", None))
        core_notes: list[list[Problem]] = [[] for _ in records]
        futures = {pool.submit(check_core, r, ds.scheme, full, store, core_notes[i], value_note): i
                   for i, r in enumerate(records)}
        done = 0
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            done += 1
            if progress is not None:
                progress(done, len(records))
    for record, (problems, classes, files), found_notes in zip(records, results, core_notes):
        report.problems += problems
        report.notes += found_notes
        report.classes[record.name] = classes
        report.files += files
    report.cores = len(records)
    if store is not None:
        store.save()
    return report


def problems_by_core(ds: MultiExpertSet, full: bool = False) -> dict[str, list[Problem]]:
    """Core name -> its problems, for every core of ``ds`` (an empty list: no problem)."""
    report = check_dataset(ds, full=full)
    found = report.by_core()
    return {name: found.get(name, []) for name in ds.names}


def checked_split(
    ds: MultiExpertSet,
    train_experts: tuple[str, ...] | None = None,
    split_file: str | Path | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    check: bool = True,
    cache_dir: str | Path | None = None,
) -> Split:
    """What training does before its first iteration: check the data, then choose the split.

    With ``check`` every core gets the quick check and any problem raises
    :class:`DataProblemsError` (all of them in its report); its results are cached in
    ``cache_dir`` or else the :func:`default_cache_folder`. A ``split_file`` wins over
    :func:`~trainer.data.splits.default_split`, which reuses the check's classes.
    """
    classes = None
    if check:
        report = check_dataset(ds, cache=cache_dir or True)
        if report.problems:
            raise DataProblemsError(report)
        classes = report.classes
    if split_file:
        split = load_split(split_file, ds)
        split.reason = f"split: from the split file {split_file}"
        return split
    return default_split(ds, train_experts, val_fraction=val_fraction, test_fraction=test_fraction,
                         seed=seed, classes=classes)
