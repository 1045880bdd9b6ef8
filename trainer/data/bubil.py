"""BU-BIL dataset 1 as published (Gurari et al., WACV 2015): phase-contrast cells, ten expert masks, a gold standard.

::

    root/
      RawImages/B01.png … B35.png                      8-bit grey (one palette-grey image, B02)
      ExpertsAnnotations/Person<k>_<tool>/seg_B01.png  one folder per expert: five people × two tools
      GoldStandard/seg_B01.png                         1-bit, True = background (fused from the experts)

Experts are the annotation folder names in natural order (``Person1_Amira``, ``Person1_ImageJ``,
…, ``Person10_…`` after ``Person9_…``); a core is an image stem, its masks ``seg_<stem>.png``. The
``seg_`` prefix is matched in any case: in the published set ``Person3_Amira`` holds four masks
named ``Seg_B18.png``, ``Seg_B24.png``, ``Seg_B25.png``, ``Seg_B31.png`` (capital S). On a
case-insensitive file system (macOS, Windows) they open as ``seg_…`` anyway; read case-sensitively
they would look like four missing annotations of ``Person3_Amira``, although the four masks agree
with the gold standard as well as that expert's others. So nothing of the published set is
missing; each capitalised name gets a note. An image no expert annotated is skipped with a note.

Classes: ``("background", "cell")``; the tools write 255 = background and 0 = cell. One published
mask holds a stray value: ``ExpertsAnnotations/Person5_Amira/seg_B04.png`` (grey-valued RGB) has
one pixel of value 24 (row 629, column 289) inside a cell, every neighbour 0 and the gold standard
"cell" there — a slip of the painting tool, not a third class and not "unknown". Masks are
therefore read as grey levels with a threshold: values below :data:`CELL_BELOW` (128) are cell,
the rest background (:data:`BUBIL_SCHEME` maps every value 0–255), so the pixel counts as what
the expert painted around it instead of stopping training or being dropped.
``python -m trainer check`` notes each mask holding values other than 0 and 255, naming the file
(:func:`stray_values_note`). A mask is only ever read.

The gold standard is **never an expert**: it is not listed among the experts and no training path
reads it. :func:`gold_standard` returns it as a class map, for evaluation and benchmarks only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.classes import ClassScheme
from trainer.data.core import natural_key
from trainer.data.io import IMAGE_SUFFIXES, read_mask_values
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.errors import InputError

LAYOUT = "bubil"
IMAGE_DIR = "RawImages"
EXPERTS_DIR = "ExpertsAnnotations"
GOLD_DIR = "GoldStandard"
MASK_PREFIX = "seg_"
MASK_SUFFIX = ".png"

CLASSES: tuple[str, ...] = ("background", "cell")
BACKGROUND, CELL = 0, 1
#: Mask values below this are cell, the rest background (see the module docstring for why).
CELL_BELOW = 128
#: The values the annotation tools write: 0 = cell, 255 = background.
MASK_VALUES: frozenset[int] = frozenset({0, 255})

BUBIL_SCHEME = ClassScheme(
    names=CLASSES,
    values={v: (CELL if v < CELL_BELOW else BACKGROUND) for v in range(256)},
    ignore=(),
    export_values=(255, 0),  # written back as the tools write them
)


def is_bubil_dir(path: str | Path) -> bool:
    """True when ``path`` holds both ``RawImages/`` and ``ExpertsAnnotations/``."""
    path = Path(path)
    return (path / IMAGE_DIR).is_dir() and (path / EXPERTS_DIR).is_dir()


def mask_name(core: str) -> str:
    """The file name of a core's mask, expert's or gold: ``seg_<core>.png``."""
    return f"{MASK_PREFIX}{core}{MASK_SUFFIX}"


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _list_masks(folder: Path, what: str, notes: list[str]) -> dict[str, Path]:
    """Core name -> ``seg_<core>.png`` in ``folder`` (prefix in any case; a capitalised one noted)."""
    files: dict[str, Path] = {}
    for p in _visible_files(folder):
        if not (p.name.lower().startswith(MASK_PREFIX) and p.suffix.lower() == MASK_SUFFIX):
            continue
        core = p.name[len(MASK_PREFIX): -len(p.suffix)]
        if core in files:
            raise InputError(f"two masks for image {core!r}: {files[core].name} and {p.name}", folder)
        files[core] = p
        if not p.name.startswith(MASK_PREFIX):
            notes.append(f"{what}/{p.name}: read as {mask_name(core)} (prefix in another case)")
    return files


def open_bubil(root: str | Path) -> MultiExpertSet:
    """List a BU-BIL folder (see the module docstring) as a :class:`MultiExpertSet` of the experts' masks."""
    root = Path(root)
    for sub in (IMAGE_DIR, EXPERTS_DIR):
        if not (root / sub).is_dir():
            raise InputError(f"folder '{sub}/' is missing", root / sub)
    images: dict[str, Path] = {}
    for p in _visible_files(root / IMAGE_DIR):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in images:
                raise InputError(f"two images for {p.stem!r}: {images[p.stem].name} and {p.name}", root / IMAGE_DIR)
            images[p.stem] = p
    if not images:
        raise InputError(f"image folder holds no images ({', '.join(IMAGE_SUFFIXES)})", root / IMAGE_DIR)
    folders = sorted((p for p in (root / EXPERTS_DIR).iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: natural_key(p.name))
    if not folders:
        raise InputError("no expert folders (ExpertsAnnotations/<expert>/seg_<image>.png)", root / EXPERTS_DIR)
    notes: list[str] = []
    masks: dict[str, dict[str, Path]] = {}
    for folder in folders:
        what = f"{EXPERTS_DIR}/{folder.name}"
        files = _list_masks(folder, what, notes)
        if not files:
            notes.append(f"{what}/ holds no {mask_name('<image>')} masks; expert ignored")
            continue
        masks[folder.name] = files
        for orphan in sorted(set(files) - set(images), key=natural_key):
            notes.append(f"{what}/{files[orphan].name}: no image for this mask, ignored")
    if not masks:
        raise InputError(f"no expert folder holds any {mask_name('<image>')} mask", root / EXPERTS_DIR)
    experts = tuple(masks)
    cores: list[CoreRecord] = []
    for name in sorted(images, key=natural_key):
        core_masks = {e: masks[e][name] for e in experts if name in masks[e]}
        if not core_masks:
            notes.append(f"{name}: no expert mask, skipped")
            continue
        cores.append(CoreRecord(name, images[name], core_masks))
    if not cores:
        raise InputError("no image has a mask from any expert", root)
    if not (root / GOLD_DIR).is_dir():
        notes.append(f"no {GOLD_DIR}/ folder: training works, benchmarks against the gold standard do not")
    return MultiExpertSet(root, LAYOUT, BUBIL_SCHEME, experts, cores, notes)


def gold_standard_path(root: str | Path, core: str) -> Path:
    """``GoldStandard/seg_<core>.png`` (prefix in any case); an :class:`InputError` when absent."""
    folder = Path(root) / GOLD_DIR
    if not folder.is_dir():
        raise InputError(f"folder '{GOLD_DIR}/' is missing: no gold standard", folder)
    path = _list_masks(folder, GOLD_DIR, []).get(core)
    if path is None:
        raise InputError(f"no gold standard for image {core!r} ({mask_name(core)})", folder)
    return path


def gold_standard(root: str | Path, core: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The gold standard of ``core`` as a ``uint8 H×W`` class map (0 background, 1 cell).

    The published files are 1-bit with True = background; an 8-bit grey file is read like the
    experts' masks (below 128 = cell). ``shape``: the image's (H, W), checked. For evaluation only.
    """
    from PIL import Image

    path = gold_standard_path(root, core)
    values = read_mask_values(path, shape)  # opens read-only; 1-bit comes back as 0/1
    with Image.open(path) as img:
        mode = img.mode
    if mode == "1":
        return np.where(values > 0, BACKGROUND, CELL).astype(np.uint8)  # True (1) = background
    if mode in ("L", "P", "RGB"):
        return np.where(values < CELL_BELOW, CELL, BACKGROUND).astype(np.uint8)
    raise InputError(f"gold standard of mode {mode!r}; expected 1-bit (True = background) or 8-bit grey", path)


def stray_values_note(values) -> str | None:
    """A note for a mask holding raw values other than 0 and 255 (and how they are read), else ``None``."""
    stray = sorted(int(v) for v in values if int(v) not in MASK_VALUES)
    if not stray:
        return None
    reads = [f"{v} as {'cell' if v < CELL_BELOW else 'background'}" for v in stray]
    return (f"holds {'a value' if len(stray) == 1 else 'values'} besides 0 (cell) and 255 (background); "
            f"read {', '.join(reads)} (below {CELL_BELOW} is cell)")


__all__ = ["BUBIL_SCHEME", "CLASSES", "CELL_BELOW", "GOLD_DIR", "LAYOUT", "MASK_VALUES", "gold_standard",
           "gold_standard_path", "is_bubil_dir", "mask_name", "natural_key", "open_bubil", "stray_values_note"]
