"""``python -m trainer export``: what napari-gleason writes, in files a pathologist's tools open.

- a class mask (a prediction's PNG, an exported consensus or correction) → **GeoJSON**: one QuPath
  annotation per connected region with its class name and colour (:mod:`trainer.data.geojson`;
  drag the file onto the core's image in QuPath), or → OME-TIFF (the mask's values);
- a ``.npy`` map written by ``predict`` (probabilities, weights, error maps, roughness) →
  **pyramidal OME-TIFF** (:mod:`trainer.ome_tiff`; QuPath, or Fiji through Bio-Formats), one plane
  per class or expert, named from the prediction's JSON;
- a dataset's cores (``--data``) → each core's consensus of its experts (majority vote, eq. 1, or
  STAPLE) as GeoJSON, a mask PNG in the dataset's values, or OME-TIFF.

The same rules as every writer of the project: an expert's folder is never a destination (the
final paths, resolved, are checked: :func:`trainer.safe_paths.check_not_expert_file`); an existing
file is replaced only with ``--overwrite``, and every destination is checked before anything is
written; each file is written atomically, and the folders made for a failed export are removed.
The file names and default folders are the ones the plugin's export panel uses.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import safe_paths
from .data import open_dataset
from .data.classes import GLEASON_SCHEME, ClassScheme, LabelCoding
from .data.generic import load_class_scheme
from .data.geojson import write_geojson
from .data.io import classes_to_values, image_header, read_mask, write_mask_png
from .data.staple import staple
from .data.vote import majority_vote
from .errors import InputError
from .ome_tiff import pixel_size_um, write_ome_tiff

FORMATS = ("geojson", "ome-tiff", "png")
SUFFIXES = {"geojson": ".geojson", "ome-tiff": ".ome.tif", "png": ".png"}
#: What predict writes beside a mask (trainer.prediction.pipeline.FileSink) -> JSON key naming the planes.
MAP_KINDS = {"probabilities": "classes", "weights": "experts", "errors": "experts",
             "errors_image_only": "experts", "roughness": None}
GLEASON_MASK_SUFFIX = "_classimg_nonconvex"


# --- names and folders (shared with the plugin's export panel) ------------------------------------
def export_filename(core: str, layout: str | None) -> str:
    """A core's mask file name in its dataset's convention (Gleason 2019 or ``<core>.png``)."""
    return f"{core}{GLEASON_MASK_SUFFIX}.png" if layout in (None, "gleason2019") else f"{core}.png"


def default_folder(dataset_root: str | Path, layout: str | None, what: str = "consensus") -> Path:
    """``<root>/Maps_<what>/`` (Gleason) or ``<root>/masks_<what>/`` (other layouts: outside ``masks/``,
    so the export is not mistaken for one more annotator)."""
    return Path(dataset_root) / (f"Maps_{what}" if layout in (None, "gleason2019") else f"masks_{what}")


def map_filename(core: str, role: str) -> str:
    """``<core>_<role>.ome.tif`` for a map layer (``error:1`` -> ``c1_error_1.ome.tif``)."""
    return f"{core}_{role.replace(':', '_')}{SUFFIXES['ome-tiff']}"


def missing_parents(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder``; return the folders created (for :func:`remove_folders` on failure)."""
    created = missing_parents(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # read-only, a file of that name, a full disk: say so, nothing is written
        remove_folders(created)
        raise InputError(f"cannot create the export folder ({e.strerror or e})", folder) from e
    return created


def remove_folders(created: Sequence[Path]) -> None:
    """Remove the folders an export made, deepest first, as long as they are empty."""
    for made in created:
        try:
            made.rmdir()
        except OSError:
            break


def write_in_new_folder(path: Path, write: Callable[[Path], Path]) -> Path:
    """``write(path)`` after creating ``path``'s folder; a failure removes the folders made for it."""
    created = make_folder(path.parent)
    try:
        return write(path)
    except BaseException:
        remove_folders(created)
        raise


# --- writers ----------------------------------------------------------------------------------
def qupath_names(scheme: ClassScheme) -> list[str]:
    """The QuPath class name of each class: the classes.json ``"names"`` entry standing for the class's
    export value (else for any of its values), so that the GeoJSON reads back through the same
    classes.json; the class name where there is none (Gleason: benign, G3, G4, G5)."""
    out = []
    for c, name in enumerate(scheme.names):
        exact = [n for n, v in scheme.annotation_names.items() if v == scheme.export_value(c)]
        same = [n for n, v in scheme.annotation_names.items() if scheme.values.get(v) == c]
        out.append((exact or same or [name])[0])
    return out


def class_map_writer(fmt: str, class_map: np.ndarray, scheme: ClassScheme, *, pixel_size_um=None,
                     skip_classes: Sequence[str] = (), name: str | None = None) -> Callable[[Path], Path]:
    """A function writing ``class_map`` (class indices, ``IGNORE_INDEX`` unlabelled) as ``fmt`` to a path:
    GeoJSON (class names and colours as in the viewer), a mask PNG or an OME-TIFF of the scheme's values."""
    ignore_value = scheme.ignore[0] if scheme.ignore else 0  # Gleason: background
    if fmt == "geojson":
        coding = LabelCoding.from_scheme(scheme)
        skip = tuple(scheme.names.index(n) for n in skip_classes)
        return lambda path: write_geojson(path, class_map, qupath_names(scheme), list(coding.colors), skip_classes=skip)
    if fmt == "png":
        return lambda path: write_mask_png(path, class_map, scheme, overwrite=True, ignore_value=ignore_value)
    if fmt == "ome-tiff":
        values = classes_to_values(class_map, scheme, ignore_value)
        return lambda path: write_ome_tiff(path, values, pixel_size_um, ["classes"], name=name)
    raise ValueError(f"unknown format {fmt!r}")


# --- the command's inputs ------------------------------------------------------------------------
def _core_of(stem: str) -> tuple[str, str | None]:
    """``(core, map kind)`` of a file predict wrote: ``c1_errors`` -> ``("c1", "errors")``."""
    for kind in sorted(MAP_KINDS, key=len, reverse=True):
        if stem.endswith(f"_{kind}"):
            return stem[: -len(kind) - 1], kind
    return stem, None


def plane_names(path: Path, kind: str | None, planes: int) -> list[str] | None:
    """Names of a map's planes from the ``<core>_prediction.json`` beside it (``None`` if not known)."""
    if kind == "roughness" and planes == 1:
        return ["roughness"]
    core, _ = _core_of(path.stem)
    meta_path = path.with_name(f"{core}_prediction.json")
    key = MAP_KINDS.get(kind or "")
    if key is None or not meta_path.is_file():
        return None
    try:
        names = json.loads(meta_path.read_text(encoding="utf-8")).get(key)
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    if not isinstance(names, list) or len(names) != planes:
        return None
    prefix = {"probabilities": "probability", "weights": "weight"}.get(kind, "error")
    return [f"{prefix}:{n}" for n in names]


def read_map(path: Path) -> np.ndarray:
    """A ``.npy`` map (``H×W`` or ``C×H×W`` numbers); pickled objects are refused, never loaded."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"cannot read the map ({' '.join(str(e).split())})", path) from None
    if not isinstance(data, np.ndarray) or data.ndim not in (2, 3) or 0 in data.shape or not (
            np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        shape = getattr(data, "shape", "?")
        raise InputError(f"not a map: need H×W or C×H×W numbers, found {getattr(data, 'dtype', '?')} {shape}", path)
    return data


def check_skip(skip: Sequence[str], scheme: ClassScheme) -> None:
    """``--skip-classes`` must name classes of the scheme."""
    unknown = sorted(set(skip) - set(scheme.names))
    if unknown:
        raise InputError(f"--skip-classes {', '.join(unknown)}: no such class (classes: {', '.join(scheme.names)})")


def pixel_size_option(value: str | None) -> tuple[float, float] | None:
    """``--pixel-size``: µm per pixel, or an image whose (OME-)TIFF metadata states it."""
    if value is None:
        return None
    try:
        size = float(value)
    except ValueError:
        path = Path(value)
        if not path.is_file():
            raise InputError("--pixel-size is neither a number of µm nor an image file", path) from None
        found = pixel_size_um(path)
        if found is None:
            raise InputError("the image states no pixel size; give --pixel-size in µm", path)
        return found
    if not size > 0 or size == float("inf"):
        raise InputError(f"--pixel-size must be a positive number of µm, got {value}")
    return size, size


def _planned_file(path: Path, fmt: str | None, scheme: ClassScheme, skip: tuple[str, ...], pixel_size):
    """``(output name, make_writer)`` for one FILE argument: its kind and format are checked here, a
    map's header too (bad input fails before anything is written); the pixels are read when written."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file", path)
    if suffix == ".png":
        fmt = fmt or "geojson"
        if fmt == "png":
            raise InputError("already a mask PNG: export it --to geojson or --to ome-tiff", path)
        core = path.stem.removesuffix(GLEASON_MASK_SUFFIX)
        return f"{core}{SUFFIXES[fmt]}", lambda: class_map_writer(
            fmt, read_mask(path, scheme), scheme, pixel_size_um=pixel_size, skip_classes=skip, name=core)
    if suffix == ".npy":
        fmt = fmt or "ome-tiff"
        if fmt != "ome-tiff":
            raise InputError(f"a .npy map is written as OME-TIFF, not {fmt}: use --to ome-tiff "
                             f"(GeoJSON is for class masks)", path)
        data = read_map(path)  # memory-mapped: the header is checked now, the pixels read when written
        names = plane_names(path, _core_of(path.stem)[1], 1 if data.ndim == 2 else data.shape[0])
        return f"{path.stem}{SUFFIXES[fmt]}", lambda: (
            lambda out: write_ome_tiff(out, np.asarray(data), pixel_size, names, name=path.stem))
    raise InputError("unknown file kind: give a mask PNG or a .npy map written by predict", path)


def _consensus_jobs(data: str | Path, method: str, fmt: str, skip: tuple[str, ...], pixel_size):
    """``(dataset, [(name, make_writer)])``: each core's consensus, computed when it is written."""
    ds = open_dataset(data)
    n = len(ds.scheme.names)
    check_skip(skip, ds.scheme)

    def job(record):
        def make():
            shape = image_header(record.image_path).shape
            masks = [read_mask(p, ds.scheme, shape=shape) for p in record.masks.values()]
            vote = majority_vote(masks, n)
            consensus = vote if method == "vote" else staple(masks, n, fallback=vote)
            size = pixel_size if pixel_size is not None else pixel_size_um(record.image_path)
            return class_map_writer(fmt, consensus, ds.scheme, pixel_size_um=size, skip_classes=skip,
                                    name=f"{record.name} {method}")
        return make

    def filename(core: str) -> str:
        safe_paths.check_name(core, "core name", ds.root)
        return export_filename(core, ds.layout) if fmt == "png" else f"{core}{SUFFIXES[fmt]}"

    return ds, [(filename(r.name), job(r)) for r in ds.cores if r.masks]


def cmd_export(a: argparse.Namespace) -> int:
    if bool(a.files) == bool(a.data):
        raise InputError("give the files to export, or --data DIR (a dataset's consensus), not both"
                         if a.files else "nothing to export: give mask PNGs or .npy maps, or --data DIR")
    skip = tuple(s for s in (a.skip_classes or "").split(",") if s)
    pixel_size = pixel_size_option(a.pixel_size)
    if a.data:
        fmt = a.to or "geojson"
        ds, jobs = _consensus_jobs(a.data, a.consensus, fmt, skip, pixel_size)
        out, root = Path(a.out) if a.out else default_folder(ds.root, ds.layout, a.consensus), ds.root
        for note in ds.notes:
            print(f"note: {note}")
    else:
        if not a.out:
            raise InputError("export FILE… needs --out: the folder the exports are written to")
        scheme = load_class_scheme(a.classes) if a.classes else GLEASON_SCHEME
        check_skip(skip, scheme)
        out, root = Path(a.out), None
        jobs = [_planned_file(Path(f), a.to, scheme, skip, pixel_size) for f in a.files]
    # every destination before anything is written: never an expert's folder, no silent overwrite
    safe_paths.check_not_expert_file(out, root)
    targets = [out / name for name, _ in jobs]
    seen: set[Path] = set()
    for target in targets:
        safe_paths.check_not_expert_file(target, root)
        if target in seen:
            raise InputError("two inputs would be exported to the same file; export them into separate folders",
                             target)
        seen.add(target)
        if target.exists() and not a.overwrite:
            raise InputError("file exists; refusing to overwrite it (use --overwrite)", target)
    created = make_folder(out)
    written = []
    try:
        for target, (_, make) in zip(targets, jobs):
            written.append(make()(target))
            if not a.data:
                print(f"wrote {target}")
    except BaseException:
        if not written:
            remove_folders(created)
        raise
    if a.data:
        print(f"wrote the {a.consensus} consensus of {len(written)} core{'s' * (len(written) != 1)} "
              f"({fmt}) to {out}")
    return 0


def add_parser(sub) -> None:
    """The ``export`` subcommand (argument wiring only; the work is :func:`cmd_export`)."""
    p = sub.add_parser(
        "export", help="masks, maps and a dataset's consensus as GeoJSON (QuPath) or pyramidal OME-TIFF (QuPath, Fiji)",
        description="Convert a mask PNG (a prediction's, an export's) into GeoJSON annotations QuPath opens "
                    "(drag the file onto the core's image), a .npy map written by predict (probabilities, "
                    "weights, error maps, roughness) into a pyramidal OME-TIFF (QuPath, Fiji via Bio-Formats), "
                    "or every core's consensus of a dataset's experts (--data) into either. Experts' folders "
                    "are never written; existing files are replaced only with --overwrite.")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="mask PNGs and .npy maps to convert (default: none; give FILE… or --data)")
    p.add_argument("--data", help="dataset folder: export each core's consensus of its experts (default: none)")
    p.add_argument("--consensus", choices=["vote", "staple"], default="vote",
                   help="with --data: majority vote (eq. 1, ties to the higher grade) or STAPLE (default: vote)")
    p.add_argument("--to", choices=list(FORMATS),
                   help="output format (default: geojson for masks and consensus, ome-tiff for .npy maps); "
                        "png: with --data, a mask in the dataset's values and file convention")
    p.add_argument("--out", help="output folder (needed with FILE…; with --data default <data>/Maps_<consensus> "
                                 "for Gleason 2019, else <data>/masks_<consensus>); never an expert's folder")
    p.add_argument("--classes", metavar="CLASSES_JSON",
                   help="a generic dataset's classes.json: the mask values and class names of FILE… (default: "
                        "Gleason 2019: benign 0/1/6, G3 3, G4 4, G5 5; --data uses the dataset's own)")
    p.add_argument("--pixel-size", metavar="UM_OR_IMAGE",
                   help="µm per pixel written into OME-TIFFs, or an image (OME-)TIFF whose metadata states it "
                        "(default: with --data each core's image where it states it; otherwise none is written)")
    p.add_argument("--skip-classes", metavar="NAMES",
                   help="comma-separated classes left out of GeoJSON, e.g. benign (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace existing exports (default: off, refuse)")
    p.set_defaults(func=cmd_export)
