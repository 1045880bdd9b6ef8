"""The npe2 reader: core images, dataset folders and review stores, returned as layer data only.

- an image inside a Gleason 2019 (``Train Imgs/``) or generic (``images/``) dataset → the image
  plus one labels layer per expert found for that core (napari offers only some of these names to
  the reader: see below);
- a dataset folder, or a review store of several cores → its first core, the image layer's
  metadata naming the folder (``browse``): the dataset browser lists the rest (the review widget
  docks it when it sees such a core; Plugins ▸ napari-gleason ▸ Dataset browser does too);
- a review store of one core → everything it holds.

The reader never touches a viewer or a widget (no Qt here): replacing the previous core's layers
when another core opens is the review widget's job (:mod:`._qt.review`). A large JPEG core comes
with its coarse levels decoded at reduced size and full resolution decoding in the background
(:func:`._core_sources.image_for_viewer`); a review store is read level by level as napari draws.

What napari offers to this reader (``napari.yaml``): npe2 matches a file by its *name* only
(``fnmatch`` on the name, suffix lower-cased; never the folder it is in), and when two readers
match a path, File ▸ Open and drag-and-drop ask the user to choose (a dialog;
``viewer.open(path, plugin=None)`` raises ``MultipleReaderError``) before calling either,
whatever ``napari_get_reader`` would return. Claiming ``*.png`` would thus put that dialog in front of every image. The manifest
claims instead:

- folders (``accepts_directories``): a dataset folder or a ``.zarr`` review store. npe2 cannot
  tell one folder from another and napari's builtin reader takes folders too, so opening any
  folder brings napari's choice between the two (napari can remember it, per folder);
- core images named as in Gleason 2019, ``slide*_core*<digit>`` with an image suffix
  (``slide001_core003.jpg``; not the masks, ``…_classimg_nonconvex.png``): napari offers both
  readers for those too, since its builtin reader claims every ``.jpg`` (remembering that
  choice sends every ``.jpg`` to napari-gleason first; other names still go to napari's reader).

Every other image goes to napari's builtin reader without a question. A core image of another
name (a generic ``images/<core>.png`` layout) is not claimed: open its dataset folder (the
browser lists its cores) — npe2 refuses ``plugin="napari-gleason"`` for a path its patterns
do not match. A user who opens datasets often can skip the dialog with napari's preference
(Preferences ▸ Plugins, ``extension2reader``, matched against the full path), e.g.
``*/Train Imgs/*`` or ``*.zarr/`` → napari-gleason.

``napari_get_reader`` returns ``None`` for anything else, without touching the file, so other
readers get their turn — except a ``.zarr`` folder whose ``zarr.json`` is unreadable, which no
reader can open: it is taken, and reported as a damaged store. A core with one unreadable expert
mask opens with the other experts and one notification naming the bad file and the reason. Other
broken input in a path we *do* handle becomes one notification naming the file and the reason, and
the reader returns napari's "nothing to add" sentinel ``[(None,)]``: napari keeps running and no
traceback dialog appears.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_error, show_info, show_warning

from trainer.data.generic import is_generic_dir
from trainer.data.gleason2019 import is_gleason_dir
from trainer.errors import InputError
from trainer.review_store import DamagedStoreError, ReviewStore, is_review_store

from ._core_sources import core_for_viewer, dataset_root_of_image, load_core_file, new_notes, open_source
from ._layers import META_KEY, core_layer_tuples
from ._warmup import make_way

NOTHING = [(None,)]


def _kind(path: Path) -> str | None:
    if is_review_store(path):
        return "store"
    if _damaged_zarr_json(path) is not None:
        return "damaged store"
    if path.is_dir() and (is_gleason_dir(path) or is_generic_dir(path)):
        return "dataset"
    if path.is_file() and dataset_root_of_image(path) is not None:
        return "core"
    return None


def _damaged_zarr_json(path: Path) -> str | None:
    """Why ``<path>/zarr.json`` of a ``.zarr`` folder cannot be read, or ``None`` if it can (or is absent).

    Nobody can read such a store, so it is claimed and reported instead of being declined.
    """
    meta = path / "zarr.json"
    if path.suffix.lower() != ".zarr" or not meta.is_file():
        return None
    try:
        json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def napari_get_reader(path: str | list[str]) -> Callable | None:
    """A reader function for ``path`` if napari-gleason handles it, else ``None``."""
    if isinstance(path, list):
        if len(path) != 1:  # stacks of cores make no sense here
            return None
        path = path[0]
    try:
        kind = _kind(Path(path))
    except OSError:
        return None
    if kind is None:
        return None
    return lambda p: read(p, kind)


def read(path: str | list[str], kind: str | None = None) -> list:
    """Read ``path`` (see module docstring) into layer data; errors become a notification, never
    an exception."""
    path = Path(path[0] if isinstance(path, list) else path)
    kind = kind or _kind(path)
    make_way()  # an import warm-up still running would compete with this opening for the GIL
    try:
        if kind == "core":
            return core_layer_tuples(_told(load_core_file(path, for_viewer=True)))
        if kind == "damaged store":
            raise InputError(f"review store is damaged: zarr.json is unreadable ({_damaged_zarr_json(path)})", path)
        if kind == "store":
            return _read_store(path)
        if kind == "dataset":
            return _first_core(path)
        raise InputError("napari-gleason does not read this path", path)
    except InputError as e:
        show_error(f"napari-gleason could not open it: {e}")
        return NOTHING


def _read_store(path: Path) -> list:
    """A store's one core, or its first core for the browser. A missing or corrupt chunk is the
    store's ``DamagedStoreError`` (naming the core and the array), found here — every chunk file
    listed, the smallest levels read — before a layer changes; in a store of several cores a
    damaged one is skipped (one notification) and the next opens, as in a dataset folder. zarr's
    other errors for damaged metadata become an :class:`InputError` naming the store. An older
    store without checksums opens with a note (once)."""
    damaged: list[str] = []
    try:
        store = ReviewStore.open(path)
        names = store.names
        if not names:
            raise InputError("review store holds no core yet", path)
        for name in names[1:]:  # the browser lists them: their metadata must be readable
            store.experts_of(name)
        core = None
        for name in names:
            try:
                core = core_for_viewer(store, name)  # fail here, not later in napari's drawing
                break
            except DamagedStoreError as e:
                if len(names) == 1:
                    raise
                damaged.append(str(e))
        if core is None:
            raise InputError(f"none of its {len(names)} cores opens ({damaged[0]})", path)
    except InputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"review store is damaged ({type(e).__name__}: {e})", path) from e
    if damaged:
        show_error(f"napari-gleason skipped {len(damaged)} damaged core(s) ({damaged[0]}"
                   + (" …" if len(damaged) > 1 else "") + f"); {core.name} is open instead")
    for note in new_notes(store):
        show_info(f"{path}: {note}")
    return core_layer_tuples(core) if len(names) == 1 else _browsable(core, path, len(names))


def _first_core(path: Path) -> list:
    """A dataset folder: its first core's layers, marked so that the browser can list the rest."""
    source = open_source(path)  # fails here (InputError) before any layer appears
    if not source.names:
        raise InputError("no core with an expert mask in this dataset folder", path)
    if source.notes:
        show_info(f"{path}: " + "; ".join(source.notes[:5]) + (" …" if len(source.notes) > 5 else ""))
    failed: list[str] = []
    for name in source.names:  # a broken core is reported (the browser marks it), not the folder refused
        try:
            core = core_for_viewer(source, name)
        except InputError as e:
            failed.append(str(e))
            continue
        if failed:
            show_error(f"napari-gleason skipped {len(failed)} core(s) it could not open ({failed[0]}"
                       + (" …" if len(failed) > 1 else "") + f"); {name} is open instead")
        return _browsable(core, path, len(source.names))
    raise InputError(f"none of its {len(source.names)} cores opens ({failed[0]})", path)


def _told(core):
    """``core``, its notes (an expert mask left out: the file and why) shown in one notification."""
    if getattr(core, "notes", None):
        show_warning("napari-gleason: " + "; ".join(core.notes))
    return core


def _browsable(core, path: Path, count: int) -> list:
    """``core``'s layers; its image layer names ``path`` for the dataset browser (``browse``)."""
    layers = core_layer_tuples(_told(core))
    layers[0][1]["metadata"][META_KEY]["browse"] = str(path)
    if count > 1:
        show_info(f"{path.name}: {count} cores; the first is open. The Dataset browser (Plugins ▸ napari-gleason) "
                  "lists them all.")
    return layers
