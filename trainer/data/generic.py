"""A generic multi-annotator layout, for data that is not Gleason 2019.

::

    root/
      images/<name>.<png|jpg|jpeg|tif|tiff>   any case; <name>.ome.tif (pyramidal OME-TIFF) too
      masks/<annotator>/<name>.png       one folder per annotator; each may cover any subset
      masks/<annotator>/<name>.geojson   or a QuPath GeoJSON export (needs classes.json "names")
      classes.json                       optional

``classes.json``::

    {"classes": ["benign", "G3", "G4", "G5"],     # class names, index = position
     "values": {"0": 0, "1": 0, "3": 1},          # raw mask value -> class index
     "ignore": [255],                             # raw values no loss or metric counts
     "export_values": [1, 3, 4, 5],               # optional: value written per class
     "names": {"Benign": 0, "Gleason 3": 3}}      # QuPath class name -> mask value (GeoJSON)

Without ``"values"``, value *i* means class *i*. Without ``"export_values"`` a class is
written back as the smallest raw value that maps to it. ``"names"`` is what a GeoJSON expert's
annotations mean: each QuPath classification name stands for a raw mask value (which must be
in ``"values"`` or ``"ignore"``); unannotated pixels are value 0 (:mod:`trainer.data.geojson`).

**Without classes.json** every mask is scanned once when the dataset is opened: mask values
are class indices, the classes are ``0..max`` (the largest value found, excluding 255) named
``"class0"…"classK"``, and 255 (``IGNORE_INDEX``) is the ignore value. Values above 255 need a
``classes.json``. Scanning reads every mask, so large datasets open faster with the file.
GeoJSON masks are not scanned (their class names mean nothing without ``"names"``); reading
one without a classes.json is an error that says so.

Experts are the annotator folder names (sorted). An image no annotator covered is skipped
with a note; a mask without an image is noted and ignored.
"""

from __future__ import annotations

from pathlib import Path

from trainer.data.classes import IGNORE_INDEX, ClassScheme
from trainer.data.core import natural_key
from trainer.data.geojson import GEOJSON_SUFFIXES, is_geojson
from trainer.data.io import IMAGE_SUFFIXES, read_mask_values
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.errors import InputError
from trainer.jsonsafe import read_document

CLASSES_FILE = "classes.json"
MASK_SUFFIXES: tuple[str, ...] = (".png", *GEOJSON_SUFFIXES)


def is_generic_dir(path: str | Path) -> bool:
    """True when ``path`` holds both ``images/`` and ``masks/``."""
    path = Path(path)
    return (path / "images").is_dir() and (path / "masks").is_dir()


def _int_key(raw: object, path: Path, what: str) -> int:
    try:
        value = int(raw)  # JSON object keys are strings
    except (TypeError, ValueError):
        raise InputError(f"{what} {raw!r} is not an integer", path) from None
    if not 0 <= value <= 65535:
        raise InputError(f"{what} {value} is outside 0..65535", path)
    return value


def load_class_scheme(path: str | Path) -> ClassScheme:
    """Parse a ``classes.json`` (format in the module docstring); errors name the file."""
    path = Path(path)
    spec = read_document(path, "class definition", dict, "expected a JSON object with a 'classes' list")
    names = spec.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError("'classes' must be a non-empty list of class names", path)
    if len(names) >= IGNORE_INDEX:
        raise InputError(f"at most {IGNORE_INDEX - 1} classes are supported", path)
    raw_values = spec.get("values", {str(i): i for i in range(len(names))})
    if not isinstance(raw_values, dict):
        raise InputError("'values' must map mask values to class indices", path)
    values: dict[int, int] = {}
    for raw, cls in raw_values.items():
        if not isinstance(cls, int) or not 0 <= cls < len(names):
            raise InputError(f"value {raw!r} maps to {cls!r}, not a class index 0..{len(names) - 1}", path)
        values[_int_key(raw, path, "mask value")] = cls
    ignore = tuple(_int_key(v, path, "ignore value") for v in spec.get("ignore", []))
    if set(ignore) & set(values):
        raise InputError(f"values {sorted(set(ignore) & set(values))} are both classes and ignored", path)
    export = spec.get("export_values")
    if export is None:
        missing = [names[c] for c in range(len(names)) if c not in values.values()]
        if missing:
            raise InputError(f"classes {missing} have no mask value (add them to 'values')", path)
        export = [min(v for v, c in values.items() if c == cls) for cls in range(len(names))]
    elif not isinstance(export, list) or len(export) != len(names):
        raise InputError(f"'export_values' must list one value per class ({len(names)})", path)
    export = [_int_key(v, path, "export value") for v in export]
    return ClassScheme(tuple(names), values, ignore, tuple(export), _annotation_names(spec, values, ignore, path))


def _annotation_names(spec: dict, values: dict[int, int], ignore: tuple[int, ...], path: Path) -> dict[str, int]:
    """classes.json's ``"names"``: QuPath class name -> a raw mask value the scheme defines."""
    raw_names = spec.get("names", {})
    if not isinstance(raw_names, dict):
        raise InputError("'names' must map QuPath class names to mask values", path)
    names: dict[str, int] = {}
    for name, raw in raw_names.items():
        if not name:
            raise InputError("'names' has an empty class name", path)
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise InputError(f"name {name!r} maps to {raw!r}, not a mask value", path)
        value = _int_key(raw, path, f"name {name!r}: mask value")
        if value not in values and value not in ignore:
            raise InputError(f"name {name!r} maps to mask value {value}, which 'values' and 'ignore' do not define",
                             path)
        names[name] = value
    return names


def _scan_scheme(mask_files: list[Path], root: Path) -> ClassScheme:
    """Infer a scheme from the values in every mask (no classes.json): class i = value i."""
    max_value = -1
    for path in mask_files:
        if is_geojson(path):  # class names, not values: only classes.json "names" says what they are
            continue
        values = read_mask_values(path)
        if values.size == 0:
            continue
        found = values[values != IGNORE_INDEX]
        if found.size:
            top = int(found.max())
            if top > IGNORE_INDEX or found.min() < 0:
                raise InputError(
                    f"mask values outside 0..254 need a {CLASSES_FILE} at {root} to say what they mean",
                    path,
                )
            max_value = max(max_value, top)
    if max_value < 0:
        if mask_files and all(is_geojson(p) for p in mask_files):
            raise InputError(f"every mask is a QuPath GeoJSON export; add a {CLASSES_FILE} with the classes and "
                             'their "names" (QuPath class name -> mask value)', root)
        raise InputError("every mask is empty or ignored (255); nothing to learn from", root / "masks")
    n = max_value + 1
    return ClassScheme(
        names=tuple(f"class{i}" for i in range(n)),
        values={i: i for i in range(n)},
        ignore=(IGNORE_INDEX,),
        export_values=tuple(range(n)),
    )


def core_name(path: Path) -> str:
    """A file's core name: its stem, without the ``.ome`` of ``x.ome.tif`` (whose mask is ``x.png``)."""
    stem = path.stem
    return stem[:-4] if stem.lower().endswith(".ome") and path.suffix.lower() in (".tif", ".tiff") else stem


def _list_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
            name = core_name(p)
            if name in files:
                raise InputError(f"two files for {name!r}: {files[name].name} and {p.name}", folder)
            files[name] = p
    return files


def open_generic(root: str | Path) -> MultiExpertSet:
    """List a generic-layout folder (see module docstring) as a :class:`MultiExpertSet`."""
    root = Path(root)
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise InputError(f"folder '{sub}/' is missing", root / sub)
    images = _list_files(root / "images", IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"image folder holds no images ({', '.join(IMAGE_SUFFIXES)})", root / "images")
    annotators = sorted((p for p in (root / "masks").iterdir() if p.is_dir() and not p.name.startswith(".")),
                        key=lambda p: natural_key(p.name))
    if not annotators:
        raise InputError("no annotator folders (masks/<annotator>/<name>.png)", root / "masks")
    notes: list[str] = []
    masks: dict[str, dict[str, Path]] = {}
    for folder in annotators:
        files = _list_files(folder, MASK_SUFFIXES)
        if not files:
            notes.append(f"masks/{folder.name}/ holds no masks ({', '.join(MASK_SUFFIXES)}); annotator ignored")
            continue
        masks[folder.name] = files
        for orphan in sorted(set(files) - set(images)):
            notes.append(f"masks/{folder.name}/{files[orphan].name}: no image for this mask, ignored")
    if not masks:
        raise InputError(f"no annotator folder holds any mask ({', '.join(MASK_SUFFIXES)})", root / "masks")
    experts = tuple(masks)
    cores: list[CoreRecord] = []
    for name, image_path in images.items():
        core_masks = {e: masks[e][name] for e in experts if name in masks[e]}
        if not core_masks:
            notes.append(f"{name}: no annotator mask, skipped")
            continue
        cores.append(CoreRecord(name, image_path, core_masks))
    if not cores:
        raise InputError("no image has a mask from any annotator", root)
    if (root / CLASSES_FILE).is_file():
        scheme = load_class_scheme(root / CLASSES_FILE)
    else:
        used = [p for c in cores for p in c.masks.values()]
        scheme = _scan_scheme(used, root)
        notes.append(f"no {CLASSES_FILE}: mask values are class indices, {scheme.num_classes} classes found")
        if any(is_geojson(p) for p in used):
            notes.append(f'no {CLASSES_FILE}: GeoJSON masks cannot be read until it gives the classes\' "names"')
    return MultiExpertSet(root, "generic", scheme, experts, cores, notes)
