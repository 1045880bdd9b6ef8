"""The npe2 reader: core images, dataset folders and review stores.

- an image inside a Gleason 2019 (``Train Imgs/``) or generic (``images/``) dataset → the image
  plus one labels layer per expert found for that core (replacing the previous core's layers in
  place when a viewer is open);
- a dataset folder → the dataset browser docks and opens its first core;
- a review store (``.zarr`` with napari-gleason's attributes) → everything it holds (a store of
  several cores opens in the browser).

``napari_get_reader`` returns ``None`` for anything else, without touching the file, so other
readers get their turn. Broken input in a path we *do* handle becomes one notification naming
the file and the reason, and the reader returns napari's "nothing to add" sentinel ``[(None,)]``:
napari keeps running and no traceback dialog appears.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_error, show_info

from trainer.data.generic import is_generic_dir
from trainer.data.gleason2019 import is_gleason_dir
from trainer.errors import InputError

from ._dataset import dataset_root_of_image, load_core_file
from ._layers import core_layer_tuples, show_core
from ._store import ReviewStore, is_review_store

NOTHING = [(None,)]


def _kind(path: Path) -> str | None:
    if is_review_store(path):
        return "store"
    if path.is_dir() and (is_gleason_dir(path) or is_generic_dir(path)):
        return "dataset"
    if path.is_file() and dataset_root_of_image(path) is not None:
        return "core"
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
    """Read ``path`` (see module docstring); errors become a notification, never an exception."""
    path = Path(path[0] if isinstance(path, list) else path)
    kind = kind or _kind(path)
    try:
        if kind == "core":
            return _show(load_core_file(path))
        if kind == "store":
            store = ReviewStore.open(path)
            if not store.names:
                raise InputError("review store holds no core yet", path)
            if len(store.names) == 1:
                return _show(store.load(store.names[0]))
            return _open_in_browser(path)
        if kind == "dataset":
            return _open_in_browser(path)
        raise InputError("napari-gleason does not read this path", path)
    except InputError as e:
        show_error(f"napari-gleason could not open it: {e}")
        return NOTHING


def _show(core) -> list:
    """Swap ``core`` into the current viewer's layers in place (opening core after core must not
    pile up layers); without a viewer, hand napari plain layer data."""
    import napari

    viewer = napari.current_viewer()
    if viewer is None:
        return core_layer_tuples(core)
    show_core(viewer, core)
    return NOTHING


def _open_in_browser(path: Path) -> list:
    """Dock the dataset browser (and the review widget) on the current viewer, open ``path``."""
    import napari

    from ._dataset import open_source

    source = open_source(path)  # fails here (InputError) before any widget appears
    viewer = napari.current_viewer()
    if viewer is None:
        raise InputError("opening a dataset folder needs a napari window", path)
    from ._qt import BrowserWidget, ReviewWidget, dock

    dock(viewer, ReviewWidget)
    dock(viewer, BrowserWidget).set_source(source)
    if source.notes:
        show_info(f"{path}: " + "; ".join(source.notes[:5]) + (" …" if len(source.notes) > 5 else ""))
    return NOTHING
