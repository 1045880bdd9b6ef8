"""Import ahead, in the background, what opening the first core will need.

Opening a 5120² core in a napari that has drawn nothing yet spends most of its first frame
importing: ~770 modules come in during that first ``viewer.open`` — the review store's zarr and
dask.array, the readers' JPEG/TIFF plugins, SciPy and scikit-image for the derived layers, and
napari's own lazily imported parts (its first labels layer imports pandas, for layer features).
None of that depends on the core. When the review widget is created, :func:`warm_imports` imports
these modules in a daemon thread, while the pathologist is still choosing a file.

Import is thread-safe in CPython: a module the GUI thread asks for while the warm-up imports it
waits on that module's import lock and gets the finished module; nothing is imported twice, and
a module that fails to import here fails again, with its real message, where it is needed (the
warm-up ignores errors). The thread holds no reference to napari objects and never touches Qt.
When a core starts opening before the warm-up is done, the reader calls :func:`make_way`: the
thread stops after the module it is importing, so that it does not compete for the GIL with the
opening itself (on two cores that cost more than the imports it saved).

One more first-layer cost is not an import: napari gives every layer's transform pint units, and
pint builds its unit registry (0.3 s here) the first time one is asked for. pint's lazy registry
is not safe to build from two threads at once, so :func:`prime_unit_registry` builds it on the GUI
thread, which widgets schedule for when the event loop is next idle.
"""

from __future__ import annotations

import importlib
import threading

#: In the order the first open needs them (each pulls in its own dependencies). The widget adds
#: napari's drawing side (vispy visuals), which this GUI-free module does not name.
MODULES = (
    "pandas",  # napari's first labels layer (layer features)
    "dask.array",  # the review store's image pyramid
    "zarr",
    "numcodecs",
    "tifffile",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "scipy.ndimage",
    "scipy.special",
    "skimage.filters",
    "skimage.morphology",
    "napari.layers.labels",
    "trainer.roughness",  # the roughness map, in a worker right after the first frame
)

_started: threading.Thread | None = None
_lock = threading.Lock()
_make_way = threading.Event()


def _run(modules: tuple[str, ...]) -> None:
    for name in modules:
        if _make_way.is_set():
            return
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported where the module is really needed
            pass


def warm_imports(modules: tuple[str, ...] = MODULES) -> threading.Thread:
    """Start importing ``modules`` in a daemon thread (once per process); the thread."""
    global _started
    with _lock:
        if _started is None:
            _started = threading.Thread(target=_run, args=(modules,), name="napari-gleason warm-up", daemon=True)
            _started.start()
        return _started


def make_way() -> None:
    """A core is opening: the warm-up stops after the module it is importing."""
    _make_way.set()


def prime_unit_registry() -> None:
    """Build pint's application unit registry now (call it on the GUI thread): napari's first layer
    would otherwise build it while the first frame waits."""
    try:
        import pint

        pint.get_application_registry().pixel  # noqa: B018 - the attribute access builds the registry
    except Exception:  # noqa: BLE001 - napari will raise it again, with its context, if it matters
        pass
