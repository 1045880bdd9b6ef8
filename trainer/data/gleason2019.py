"""The Gleason 2019 challenge layout (paper §3.1).

::

    root/
      Train Imgs/            (official name, with a space; also Train_imgs/ or Test_imgs/)
        slide001_core003.jpg   (.jpg; .jpeg/.png/.tif/.tiff accepted)
      Maps1_T/ … Maps6_T/    one folder per pathologist; any of them may be absent
        slide001_core003_classimg_nonconvex.png

Experts are named ``"1"…"6"`` after their folder. Mask values 0/1/6 are benign and 3/4/5 are
Gleason 3/4/5 (:data:`GLEASON_SCHEME`). Not every pathologist annotated every core; a core
nobody annotated is skipped with a note. A missing or empty image folder, no ``Maps*_T``
folder at all, or an empty one, is an :class:`InputError` naming it.
"""

from __future__ import annotations

from pathlib import Path

from trainer.data.classes import GLEASON_SCHEME
from trainer.data.io import IMAGE_SUFFIXES
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.errors import InputError

IMAGE_DIRS: tuple[str, ...] = ("Train Imgs", "Train_imgs", "Test_imgs")
EXPERT_NAMES: tuple[str, ...] = tuple(str(k) for k in range(1, 7))
MASK_SUFFIX = "_classimg_nonconvex.png"


def maps_dir_name(expert: str) -> str:
    """Folder holding expert ``expert``'s maps, e.g. ``"Maps3_T"``."""
    return f"Maps{expert}_T"


def _unwrap(folder: Path) -> Path:
    """Descend into ``X/X/`` when an archive was extracted into a folder of its own name."""
    inner = folder / folder.name
    if inner.is_dir() and not any(p for p in folder.iterdir() if p != inner and not p.name.startswith(".")):
        return inner
    return folder


def _visible_files(folder: Path) -> list[Path]:
    """Regular files in ``folder``, skipping hidden ones (``.DS_Store``, ``._x`` forks)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def is_gleason_dir(path: str | Path) -> bool:
    """True when ``path`` looks like a Gleason 2019 folder (an image or a ``Maps*_T`` folder)."""
    path = Path(path)
    if not path.is_dir():
        return False
    names = [*IMAGE_DIRS, *(maps_dir_name(e) for e in EXPERT_NAMES)]
    return any((path / n).is_dir() for n in names)


def _list_images(root: Path) -> dict[str, Path]:
    """Core name -> image file, over every image folder present."""
    folders = [root / n for n in IMAGE_DIRS if (root / n).is_dir()]
    if not folders:
        raise InputError(f"no image folder; expected one of {', '.join(repr(n) for n in IMAGE_DIRS)}", root)
    images: dict[str, Path] = {}
    for folder in folders:
        files = [p for p in _visible_files(_unwrap(folder)) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(f"image folder holds no images ({', '.join(IMAGE_SUFFIXES)})", folder)
        for p in files:
            if p.stem in images:
                raise InputError(f"two images for core {p.stem!r}: {images[p.stem]} and {p}", folder)
            images[p.stem] = p
    return images


def _list_masks(root: Path, notes: list[str]) -> dict[str, dict[str, Path]]:
    """Expert -> (core name -> mask file), for each ``Maps{k}_T`` folder present."""
    masks: dict[str, dict[str, Path]] = {}
    for expert in EXPERT_NAMES:
        folder = root / maps_dir_name(expert)
        if not folder.is_dir():
            notes.append(f"{maps_dir_name(expert)}/ is absent: no masks from expert {expert}")
            continue
        files = [p for p in _visible_files(_unwrap(folder)) if p.name.endswith(MASK_SUFFIX)]
        if not files:
            raise InputError(f"expert folder holds no '*{MASK_SUFFIX}' masks", folder)
        masks[expert] = {p.name[: -len(MASK_SUFFIX)]: p for p in files}
    if not masks:
        names = ", ".join(maps_dir_name(e) for e in EXPERT_NAMES)
        raise InputError(f"no expert mask folder; expected some of {names}", root)
    return masks


def open_gleason2019(root: str | Path) -> MultiExpertSet:
    """List a Gleason 2019 folder: every core with an image and at least one expert mask."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("folder does not exist", root)
    notes: list[str] = []
    images = _list_images(root)
    masks = _list_masks(root, notes)
    experts = tuple(masks)
    cores: list[CoreRecord] = []
    for name, image_path in sorted(images.items()):
        core_masks = {e: masks[e][name] for e in experts if name in masks[e]}
        if not core_masks:
            notes.append(f"{name}: no expert mask, skipped")
            continue
        cores.append(CoreRecord(name, image_path, core_masks))
    for e in experts:
        for orphan in sorted(set(masks[e]) - set(images)):
            notes.append(f"{maps_dir_name(e)}/{orphan}{MASK_SUFFIX}: no image for this mask, ignored")
    if not cores:
        raise InputError("no core has both an image and an expert mask", root)
    return MultiExpertSet(root, "gleason2019", GLEASON_SCHEME, experts, cores, notes)
