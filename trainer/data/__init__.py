"""Datasets of cores annotated by several experts: reading, voting, splitting, augmenting.

:func:`open_dataset` detects the layout (Gleason 2019, BU-BIL or the generic ``images/`` + ``masks/``)
and returns a :class:`MultiExpertSet` that lists files only; pixels are read on demand into a
:class:`Core` (:mod:`trainer.data.core`, the one in-memory core type of every source).
:func:`trainer.data.check.check_dataset` checks every core's files at once;
:func:`trainer.data.splits.default_split` chooses the split (the paper's rule where it applies).
"""

from __future__ import annotations

from pathlib import Path

from trainer.data.bubil import is_bubil_dir, open_bubil
from trainer.data.core import Core
from trainer.data.generic import is_generic_dir, open_generic
from trainer.data.gleason2019 import is_gleason_dir, open_gleason2019
from trainer.data.records import CoreRecord, MultiExpertSet, load_core
from trainer.errors import InputError

__all__ = ["open_dataset", "Core", "CoreRecord", "MultiExpertSet", "load_core"]


def open_dataset(path: str | Path) -> MultiExpertSet:
    """Open a dataset folder in whichever supported layout it uses.

    Gleason 2019 (``Train Imgs/`` + ``Maps{k}_T/``) is tried first, then BU-BIL (``RawImages/`` +
    ``ExpertsAnnotations/<expert>/``), then the generic layout (``images/`` + ``masks/<annotator>/``).
    Anything else is an :class:`InputError`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("dataset folder does not exist", path)
    if not path.is_dir():
        raise InputError("not a folder; give the dataset's top folder", path)
    if is_gleason_dir(path):
        return open_gleason2019(path)
    if is_bubil_dir(path):
        return open_bubil(path)
    if is_generic_dir(path):
        return open_generic(path)
    raise InputError(
        "not a dataset folder: expected Gleason 2019 ('Train Imgs/' and 'Maps1_T/'…'Maps6_T/'), "
        "BU-BIL ('RawImages/' and 'ExpertsAnnotations/<expert>/') or the generic layout "
        "('images/' and 'masks/<annotator>/')",
        path,
    )
