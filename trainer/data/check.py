"""Checking a whole dataset before training: every core, every mask, all problems at once.

:func:`check_dataset` opens every core's image and every expert's mask and returns a
:class:`CheckReport`: the problems (file, problem) and the classes each core's masks hold (which
:func:`~trainer.data.splits.default_split` uses to stratify). Masks are always decoded (their
values and size matter); images are checked by their header only (size, pixel mode, readable
format) unless ``full=True`` decodes them too, which also finds truncated files.

``python -m trainer check --data DIR [--full]`` prints the report as a table; ``train`` runs the
quick check before its first iteration (``--no-check`` skips it) and refuses data with problems
(:class:`DataProblemsError`). :func:`problems_by_core` is the per-core view a dataset browser uses.
Nothing is written; files are opened read-only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.classes import IGNORE_INDEX
from trainer.data.io import image_header, read_image, read_mask_value_set, values_to_classes
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.data.splits import Split, default_split, load_split
from trainer.errors import InputError


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

    def summary(self) -> str:
        """One line: what was checked and how many problems were found."""
        how = "images decoded" if self.full else "image headers"
        found = f"{len(self.problems)} problem{'s' * (len(self.problems) != 1)}" if self.problems else "no problems"
        return f"{self.root}: {self.cores} cores, {self.files} files checked ({how}): {found}"


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


def _reason(exc: InputError) -> str:
    """An :class:`InputError`'s message without the ``path: `` prefix it starts with."""
    text = " ".join(str(exc).split())
    prefix = f"{exc.path}: " if exc.path is not None else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def mask_classes(path: Path, scheme, shape: tuple[int, int] | None = None) -> set[int]:
    """Class indices present in a mask file; its size, mode and values checked as :func:`read_mask` does.

    Only the distinct values are mapped (a histogram of the mask, not a lookup of every pixel).
    """
    return set(values_to_classes(read_mask_value_set(path, shape), scheme, path).tolist())


def check_core(record: CoreRecord, scheme, full: bool = False) -> tuple[list[Problem], frozenset[int], int]:
    """Problems of one core, the classes its readable masks hold, and the number of files read."""
    problems: list[Problem] = []
    shape = None
    try:
        if full:
            shape = read_image(record.image_path).shape[:2]
        else:
            shape = image_header(record.image_path).shape
    except InputError as exc:
        problems.append(Problem(record.image_path, _reason(exc), record.name))
    found: set[int] = set()
    for path in record.masks.values():
        try:
            found |= mask_classes(path, scheme, shape)
        except InputError as exc:
            problems.append(Problem(path, _reason(exc), record.name))
    found.discard(IGNORE_INDEX)
    return problems, frozenset(found), 1 + len(record.masks)


def check_dataset(
    ds: MultiExpertSet,
    names: Iterable[str] | None = None,
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> CheckReport:
    """Check every core of ``ds`` (or those in ``names``); ``progress(done, total)`` after each core.

    Cores are checked by a few threads (decoding releases the GIL); the report keeps dataset order.
    """
    records = [ds.core(n) for n in (ds.names if names is None else names)]
    report = CheckReport(Path(ds.root), full)
    workers = workers or min(4, os.cpu_count() or 1)
    results: list = [None] * len(records)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(check_core, r, ds.scheme, full): i for i, r in enumerate(records)}
        done = 0
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            done += 1
            if progress is not None:
                progress(done, len(records))
    for record, (problems, classes, files) in zip(records, results):
        report.problems += problems
        report.classes[record.name] = classes
        report.files += files
    report.cores = len(records)
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
) -> Split:
    """What training does before its first iteration: check the data, then choose the split.

    With ``check`` every core gets the quick check and any problem raises
    :class:`DataProblemsError` (all of them in its report). A ``split_file`` wins over
    :func:`~trainer.data.splits.default_split`, which reuses the check's classes.
    """
    classes = None
    if check:
        report = check_dataset(ds)
        if report.problems:
            raise DataProblemsError(report)
        classes = report.classes
    if split_file:
        split = load_split(split_file, ds)
        split.reason = f"split: from the split file {split_file}"
        return split
    return default_split(ds, train_experts, val_fraction=val_fraction, test_fraction=test_fraction,
                         seed=seed, classes=classes)
