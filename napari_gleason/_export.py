"""Export a consensus or an edited labels layer as a mask file, or into the review store.

Masks are written in the dataset's own values (Gleason: benign 1, G3 3, G4 4, G5 5) with the
trainer's atomic writer, under the dataset's file name (``<core>_classimg_nonconvex.png`` for
Gleason 2019, ``<core>.png`` for the generic layout), into a *new* folder beside the experts'
(``Maps_consensus/`` by default). Three rules protect what is already there:

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

from trainer.data.classes import ClassScheme
from trainer import safe_paths
from trainer.data.gleason2019 import MASK_SUFFIX
from trainer.data.io import write_mask_png
from trainer.errors import InputError

AskOverwrite = Callable[[Path], bool]


def never(_path: Path) -> bool:
    """Default answer to "overwrite?": no."""
    return False


def export_filename(core: str, layout: str | None) -> str:
    return f"{core}{MASK_SUFFIX}" if layout in (None, "gleason2019") else f"{core}.png"


def default_folder(dataset_root: Path, layout: str | None, what: str = "consensus") -> Path:
    """``<root>/Maps_<what>/`` (Gleason) or ``<root>/masks_<what>/`` (generic: outside ``masks/``,
    so the export is not mistaken for one more annotator)."""
    return Path(dataset_root) / (f"Maps_{what}" if layout in (None, "gleason2019") else f"masks_{what}")


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
) -> Path | None:
    """Write ``class_map`` (class indices) to ``folder/<file name of core>``.

    Returns the path written, or ``None`` when the file existed and ``ask_overwrite`` said no.
    Unlabelled pixels (``IGNORE_INDEX``) are written as the scheme's ignore value, or 0
    (Gleason: background) when it has none.
    """
    folder = Path(folder)
    check_destination(folder, dataset_root)
    # the name may come from a shared review store: one plain component, and the final path is checked too
    path = folder / export_filename(safe_paths.check_name(core, "core name", folder), layout)
    check_destination(path, dataset_root)
    overwrite = False
    if path.exists():
        if not ask_overwrite(path):
            return None
        overwrite = True
    created = _missing_parents(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # read-only, a file of that name, a full disk: say so, nothing is written
        raise InputError(f"cannot create the export folder ({e.strerror or e})", folder) from e
    ignore_value = scheme.ignore[0] if scheme.ignore else 0
    try:
        return write_mask_png(path, class_map, scheme, overwrite=overwrite, ignore_value=ignore_value)
    except BaseException:
        for made in created:  # the folders made for this export go too: nothing is left behind
            try:
                made.rmdir()
            except OSError:
                break
        raise


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def export_to_store(
    store, core: str, role: str, class_map: np.ndarray, ask_overwrite: AskOverwrite = never
) -> Path | None:
    """Keep ``class_map`` in the review store as label image ``role``; ``None`` if declined."""
    from trainer.review_store import label_key

    exists = label_key(role) in {p.name for p in store.label_roles(core).values()}
    if exists and not ask_overwrite(store.path / core / "labels" / label_key(role)):
        return None
    return store.write_labels(core, role, class_map, overwrite=exists)
