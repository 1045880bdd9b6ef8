"""``python -m trainer check --data STORE``: is a review store whole?

Fast (the default): every core's metadata is read and every array's chunk files are listed
against its chunk grid (:mod:`.integrity`), so a deleted chunk is found without reading one.
``full``: every chunk of every array is read too, one at a time, so a truncated or altered
chunk fails its checksum. Arrays written without checksums (older stores) can only be read:
a note says so. Problems are reported per array, all of them, in the data check's table
(:class:`trainer.data.check.CheckReport`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.data.check import CheckReport, Problem, problem_text
from trainer.errors import InputError

from .store import ReviewStore


@dataclass
class StoreCheckReport(CheckReport):
    """A :class:`CheckReport` of a review store: ``files`` counts arrays."""

    KIND, UNIT, HOW = "review store, ", "arrays", ("every chunk read", "chunk files listed")

    def note_text(self, note: Problem) -> str:
        return note.problem


def check_store(path: str | Path, full: bool = False, progress=None) -> StoreCheckReport:
    """Check every array of every core of the review store at ``path`` (see module docstring);
    ``progress(done, total)`` after each core. Raises ``InputError`` only if ``path`` is no store."""
    store = ReviewStore.open(path)
    report = StoreCheckReport(Path(path), full)
    try:
        names = store.names
    except (InputError, KeyError, ValueError, OSError) as e:
        report.problems.append(Problem(Path(path), f"damaged: a core's metadata cannot be read ({_why(e)})"))
        return report
    for i, name in enumerate(names):
        report.cores += 1
        try:
            folders = store.arrays_of(name)
        except (InputError, KeyError, ValueError, OSError, TypeError) as e:
            report.problems.append(Problem(store.core_dir(name), f"damaged metadata ({_why(e)})", name))
            folders = []
        for folder in folders:
            report.files += 1
            try:
                array = store.open_array(name, folder)
                if full:
                    array.read_all()
            except InputError as e:
                report.problems.append(Problem(folder, problem_text(e), name))
        if progress is not None:
            progress(i + 1, len(names))
    report.notes += [Problem(Path(path), n) for n in store.notes]
    return report


def _why(e: Exception) -> str:
    return problem_text(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
