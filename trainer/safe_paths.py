"""Names and paths read from files that came from elsewhere: the one place they are checked.

A review store is shared between colleagues and a split file can be written by anyone, so every
name or path read from them is untrusted. Before such a value is joined to a folder it passes
one of these checks:

- :func:`check_name`: a core name, label key or array path segment is a single path component
  (no ``/`` or ``\\``, no ``.``/``..``, no NUL, not absolute, no drive letter);
- :func:`inside` / :func:`check_inside`: the resolved path (symbolic links followed) lies in the
  folder it was read from;
- :func:`trusted_dataset_root`: a dataset folder named by a store is used only when it resolves
  to an existing dataset folder (it is only ever read, never written into except by the exporter);
- :func:`expert_folders` / :func:`check_not_expert_file`: a file about to be written does not land,
  once resolved, in any expert's folder of its dataset (``Maps{k}_T/``, ``masks/<annotator>/``),
  whatever the name that led there; the datasets are the one given and any dataset folder above
  the file.

All of them raise :class:`~trainer.errors.InputError` naming the file the value came from.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from trainer.errors import InputError

_EXPERT_DIR = re.compile(r"Maps\d+_T")


def is_safe_name(name: object) -> bool:
    """True for a non-empty string that is exactly one path component on POSIX and Windows."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\0" in name:
        return False
    if "/" in name or "\\" in name or ":" in name and PureWindowsPath(name).drive:
        return False
    return PurePosixPath(name).name == name and not PurePosixPath(name).is_absolute()


def check_name(name: object, what: str, source: str | Path | None) -> str:
    """``name`` if it is a single path component (:func:`is_safe_name`), else an InputError naming ``source``."""
    if not is_safe_name(name):
        raise InputError(f"{what} {name!r} is not a plain name (no folders, '..' or absolute paths allowed)", source)
    return name


def inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path``, resolved (links followed, ``..`` removed), lies in ``folder`` (or is it)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def check_inside(path: str | Path, folder: str | Path, what: str, source: str | Path | None = None) -> Path:
    """``path`` if it resolves inside ``folder``, else an InputError naming ``source`` (default ``path``)."""
    if not inside(path, folder):
        raise InputError(f"{what} leads outside {folder}", source if source is not None else path)
    return Path(path)


def safe_child(folder: str | Path, name: object, what: str, source: str | Path | None) -> Path:
    """``folder / name`` for an untrusted ``name``: one plain component that resolves inside ``folder``."""
    child = Path(folder) / check_name(name, what, source)
    return check_inside(child, folder, what, source)


def check_relative_path(rel: object, folder: str | Path, what: str, source: str | Path | None) -> str:
    """An untrusted ``a/b/c`` path (a zarr array path) whose every segment is plain and that resolves in ``folder``."""
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{what} {rel!r} is not a path", source)
    for part in rel.split("/"):
        check_name(part, what, source)
    check_inside(Path(folder) / rel, folder, what, source)
    return rel


def _is_dataset_dir(path: Path) -> bool:
    from trainer.data.generic import is_generic_dir
    from trainer.data.gleason2019 import is_gleason_dir

    try:
        return is_gleason_dir(path) or is_generic_dir(path)
    except OSError:
        return False


def trusted_dataset_root(value: object) -> Path | None:
    """A dataset folder read from a store: its resolved path if it is an existing dataset folder, else ``None``."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    try:
        path = Path(value).expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    return path if path.is_dir() and _is_dataset_dir(path) else None


def expert_folders(dataset_root: str | Path | None) -> list[Path]:
    """Folders holding experts' masks under ``dataset_root`` (both layouts): ``Maps{k}_T`` (any k,
    existing or not for k = 1…6), ``masks/`` and each ``masks/<annotator>/``."""
    if dataset_root is None:
        return []
    from trainer.data.gleason2019 import EXPERT_NAMES, maps_dir_name

    root = Path(dataset_root)
    out = [root / maps_dir_name(e) for e in EXPERT_NAMES]
    try:
        out += [p for p in root.iterdir() if p.is_dir() and _EXPERT_DIR.fullmatch(p.name) and p not in out]
    except OSError:
        pass
    masks = root / "masks"
    if masks.is_dir():
        out += [masks, *(p for p in masks.iterdir() if p.is_dir())]
    return out


def dataset_roots_above(path: str | Path) -> list[Path]:
    """Every dataset folder among ``path``'s resolved parents (a file written there could pass for an expert's)."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return []
    return [p for p in resolved.parents if _is_dataset_dir(p)]


def expert_folder_of(path: str | Path, dataset_root: str | Path | None = None) -> Path | None:
    """The expert's folder ``path`` (a file or folder, existing or not) would land in, or ``None``.

    Checked against ``dataset_root``'s expert folders and those of any dataset folder above ``path``.
    """
    roots = ([Path(dataset_root)] if dataset_root is not None else []) + dataset_roots_above(path)
    for root in roots:
        for folder in expert_folders(root):
            if inside(path, folder):
                return folder
    return None


def check_not_expert_file(path: str | Path, dataset_root: str | Path | None = None) -> Path:
    """``path`` unless it resolves into an expert's folder (:func:`expert_folder_of`): then an InputError."""
    if expert_folder_of(path, dataset_root) is not None:
        raise InputError("refusing to write into an expert's folder; choose a new folder", path)
    return Path(path)


__all__ = ["is_safe_name", "check_name", "inside", "check_inside", "safe_child", "check_relative_path",
           "trusted_dataset_root", "expert_folders", "dataset_roots_above", "expert_folder_of",
           "check_not_expert_file"]
