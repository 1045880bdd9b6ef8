"""Export a consensus, an edited labels layer or a prediction as a mask file or GeoJSON, a map
layer as a pyramidal OME-TIFF, or a labels layer into the review store.

Masks are written in the dataset's own values (Gleason: benign 1, G3 3, G4 4, G5 5) with the
trainer's atomic writer, under the dataset's file name (``<core>_classimg_nonconvex.png`` for
Gleason 2019, ``<core>.png`` for the generic layout), into a *new* folder beside the experts'
(``Maps_consensus/`` by default); GeoJSON as ``<core>.geojson`` (QuPath annotations, the classes'
names and colours), maps (``error:``, ``weight:``, ``probability:``, ``roughness``) as
``<core>_<role>.ome.tif`` (:mod:`trainer.ome_tiff`, :mod:`trainer.export` names them as the CLI
does). Three rules protect what is already there:

- an expert's folder is never a destination (``Maps1_T``…, ``masks/<annotator>/``): the final
  path, resolved (``..``, links), is checked against every expert folder of the dataset and of
  any dataset folder above it, and the core name (which may come from a shared review store) must
  be a plain name (:mod:`trainer.safe_paths`);
- an existing export is replaced only when ``ask_overwrite(path)`` answers True (the GUI asks
  with a dialog; tests pass a function);
- if anything fails, nothing is left behind (temporary file + ``os.replace``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainer import safe_paths
from trainer.data.classes import ClassScheme
from trainer.errors import InputError
from trainer.export import (  # noqa: F401  (export_filename, default_folder: the panel's names)
    class_map_writer,
    default_folder,
    export_filename,
    map_filename,
    write_in_new_folder,
)

AskOverwrite = Callable[[Path], bool]


def never(_path: Path) -> bool:
    """Default answer to "overwrite?": no."""
    return False


def expert_folders(dataset_root: Path | None) -> list[Path]:
    """Folders holding experts' masks under ``dataset_root`` (both layouts)."""
    return safe_paths.expert_folders(dataset_root)


def check_destination(folder: str | Path, dataset_root: str | Path | None) -> None:
    """Refuse an expert's folder as a destination (before anyone is asked about overwriting).

    ``folder`` may be the final file too; it is resolved (``..`` and links), and checked against the
    expert folders of ``dataset_root`` and of any dataset folder above it."""
    if safe_paths.expert_folder_of(folder, dataset_root) is not None:
        raise InputError("refusing to export into an expert's folder; choose a new folder", folder)


def export_mask(
    class_map: np.ndarray,
    core: str,
    scheme: ClassScheme,
    folder: str | Path,
    *,
    layout: str | None = None,
    dataset_root: str | Path | None = None,
    ask_overwrite: AskOverwrite = never,
    fmt: str = "png",
) -> Path | None:
    """Write ``class_map`` (class indices) to ``folder/<file name of core>`` as a mask PNG
    (``fmt="png"``) or as QuPath's GeoJSON (``fmt="geojson"``, ``<core>.geojson``).

    Returns the path written, or ``None`` when the file existed and ``ask_overwrite`` said no.
    Unlabelled pixels (``IGNORE_INDEX``) are written as the scheme's ignore value, or 0
    (Gleason: background) when it has none; GeoJSON leaves them out.
    """
    # the name may come from a shared review store: one plain component, and the final path is checked too
    safe_paths.check_name(core, "core name", folder)
    name = export_filename(core, layout) if fmt == "png" else f"{core}.geojson"
    return _export(folder, name, dataset_root, ask_overwrite, class_map_writer(fmt, class_map, scheme))


def export_map(
    data: np.ndarray,
    core: str,
    role: str,
    folder: str | Path,
    *,
    pixel_size_um: tuple[float, float] | None = None,
    dataset_root: str | Path | None = None,
    ask_overwrite: AskOverwrite = never,
) -> Path | None:
    """Write a map layer's data (``H×W`` float: an error, weight, probability or roughness map) as a
    pyramidal OME-TIFF ``folder/<core>_<role>.ome.tif``; ``None`` when declined as in :func:`export_mask`."""
    from trainer.ome_tiff import write_ome_tiff

    safe_paths.check_name(core, "core name", folder)
    return _export(folder, map_filename(core, role), dataset_root, ask_overwrite,
                   lambda path: write_ome_tiff(path, np.asarray(data), pixel_size_um, [role], name=f"{core} {role}"))


def _export(folder, name: str, dataset_root, ask_overwrite: AskOverwrite, write) -> Path | None:
    """The destination rules of the module docstring, then ``write(path)`` into a new folder if needed."""
    folder = Path(folder)
    check_destination(folder, dataset_root)
    path = folder / safe_paths.check_name(name, "file name", folder)
    check_destination(path, dataset_root)
    if path.exists() and not ask_overwrite(path):
        return None
    return write_in_new_folder(path, write)


def export_to_store(
    store, core: str, role: str, class_map: np.ndarray, ask_overwrite: AskOverwrite = never
) -> Path | None:
    """Keep ``class_map`` in the review store as label image ``role``; ``None`` if declined."""
    from trainer.review_store import label_key

    exists = label_key(role) in {p.name for p in store.label_roles(core).values()}
    if exists and not ask_overwrite(store.path / core / "labels" / label_key(role)):
        return None
    return store.write_labels(core, role, class_map, overwrite=exists)
