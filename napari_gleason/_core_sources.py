"""Where cores come from: a dataset folder (via the trainer's readers) or a review store.

Both sources offer the same small interface the browser and the reader use: ``names``,
``experts_of(name)``, ``load(name) -> Core``, ``scheme``, ``root``, ``notes``. Reading
and checking files is the trainer's job (:mod:`trainer.data`); this module only adapts it.

What a viewer opens (:func:`core_for_viewer`) is built for the first frame: a large JPEG core
comes as a pyramid whose coarse levels are decoded at 1/4 (or 1/2) size by the JPEG's own DCT
scaling (:func:`trainer.data.io.read_image_draft`, ~5× faster than a full decode) while the full
resolution decodes in a background thread (:class:`Deferred`); napari draws the coarse level, and
whoever reads level 0 (zooming in, the roughness worker) gets the full pixels when they are there.
Expert masks are decoded in parallel threads and turned into label values in one table lookup.
A review store is lazy already (its pyramid levels are read as napari draws them); opening a core
of it lists every chunk file (a deleted one is an error naming the core and the array) and reads
the smallest level of each pyramid (:func:`read_coarsest`), which napari reads when a layer is
added, so that a damaged chunk fails before a layer changes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainer.data import MultiExpertSet, open_dataset
from trainer.data.classes import IGNORE_INDEX, ClassScheme, LabelCoding
from trainer.data.core import Core
from trainer.data.gleason2019 import IMAGE_DIRS, maps_dir_name
from trainer.data.io import (IMAGE_SUFFIXES, image_header, open_tiff_levels, read_image, read_image_draft, read_mask,
                             read_mask_values, values_to_classes)
from trainer.errors import InputError

#: Cores whose larger side exceeds this open from a coarse level first (napari's own pyramid
#: threshold, :data:`._layers.PYRAMID_ABOVE`); smaller ones are decoded whole.
COARSE_ABOVE = 2048
#: The coarsest level napari needs: the display pyramid goes down to about this many pixels.
SMALLEST_LEVEL = 1024

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Decoding threads (Pillow and zlib release the GIL while they decode)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, min(6, os.cpu_count() or 2)),
                                       thread_name_prefix="napari-gleason-decode")
        return _pool


class Deferred:
    """An array napari can hold before its pixels exist: ``shape``/``dtype`` now, pixels later.

    ``source`` is a :class:`~concurrent.futures.Future` (or a callable) giving the array; the first
    read waits for it, later reads index the array it gave. Reading raises what the decoding raised
    (an :class:`InputError` naming the file).
    """

    def __init__(self, shape: tuple[int, ...], dtype, source: Future | Callable[[], np.ndarray]):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._source = source
        self._value: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def done(self) -> bool:
        """Whether the pixels are there (reading now would not wait)."""
        return self._value is not None or (isinstance(self._source, Future) and self._source.done())

    def result(self) -> np.ndarray:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    src = self._source
                    value = src.result() if isinstance(src, Future) else src()
                    if tuple(value.shape) != self.shape:
                        raise InputError(f"decoded to {value.shape}, expected {self.shape}")
                    self._value = value
        return self._value

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        return self.result()[key]

    def __array__(self, dtype=None, copy=None):
        a = self.result()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"Deferred(shape={self.shape}, dtype={self.dtype}, done={self.done})"


def _halve(image: np.ndarray) -> np.ndarray:
    """2×2 mean (the last row/column of an odd side kept): the next pyramid level of an image."""
    h, w = image.shape[:2]
    a = image.astype(np.uint16)
    if h % 2:
        a = np.concatenate([a, a[-1:]], axis=0)
    if w % 2:
        a = np.concatenate([a, a[:, -1:]], axis=1)
    return ((a[::2, ::2] + a[1::2, ::2] + a[::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def image_for_viewer(path: str | Path, first: Callable[[], None] | None = None):
    """The core image as napari should get it: ``uint8 H×W×3`` for a small core or a format without
    draft decoding; for a large RGB TIFF, its levels read lazily through tifffile's zarr view
    (:func:`trainer.data.io.open_tiff_levels`); for a large JPEG, pyramid levels ``[Deferred level 0, strided Deferred …, draft,
    halved draft …]`` (level k is ⌈H/2^k⌉ × ⌈W/2^k⌉), full resolution decoding in the background.

    ``first`` runs before the full decode is queued (the masks, which the first frame needs, go
    ahead of it on the decoding threads).
    """
    path = Path(path)
    h, w = image_header(path).shape
    tiff_levels = open_tiff_levels(path) if max(h, w) > COARSE_ABOVE else None
    if tiff_levels is not None:  # a (pyramidal OME-)TIFF: every level read lazily, tile by tile
        if first is not None:
            first()
        return tiff_levels if len(tiff_levels) > 1 else tiff_levels[0]
    coarse = None
    if max(h, w) > COARSE_ABOVE:
        reduce = 4 if max(h, w) >= 4 * SMALLEST_LEVEL else 2
        coarse = read_image_draft(path, reduce)  # raises InputError for a broken JPEG, before any layer
    if first is not None:
        first()
    if coarse is None:
        return read_image(path)
    draft, (h, w) = coarse
    full = Deferred((h, w, 3), np.uint8, _executor().submit(read_image, path))
    levels: list = [full]
    step = 2
    while step < reduce:
        levels.append(Deferred((-(-h // step), -(-w // step), 3), np.uint8, lambda s=step: full.result()[::s, ::s]))
        step *= 2
    levels.append(draft)
    while max(levels[-1].shape[:2]) > SMALLEST_LEVEL:
        levels.append(_halve(levels[-1]))
    return levels


#: Label value that marks "unknown raw value" in the one-pass lookup (no coding uses it).
_UNKNOWN = 255


def mask_labels(path: Path, scheme: ClassScheme, coding: LabelCoding, shape: tuple[int, int]) -> np.ndarray:
    """A mask file as ``uint8`` label values (decode + one table lookup); the same checks and
    messages as :func:`trainer.data.io.read_mask` (size against the image, unknown values listed)."""
    values = read_mask_values(path, shape, scheme)
    if values.dtype != np.uint8 or _UNKNOWN in coding.values:  # 16-bit masks: the general path
        return coding.to_labels(values_to_classes(values, scheme, path))
    to_labels = coding.to_labels(np.arange(256, dtype=np.uint8))  # class index -> label value
    lut = np.full(256, _UNKNOWN, np.uint8)
    for raw, cls in scheme.values.items():
        if raw < 256:
            lut[raw] = to_labels[cls]
    for raw in scheme.ignore:
        if raw < 256:
            lut[raw] = to_labels[IGNORE_INDEX]
    labels = lut[values]
    if (labels == _UNKNOWN).any():
        values_to_classes(values, scheme, path)  # raises, naming the values found
    return labels


def _load_for_viewer(record, scheme: ClassScheme, origin: dict) -> Core:
    """A core's image (coarse first) and masks (label values, decoded in parallel). A mask that
    cannot be read is left out, its file and reason in the core's ``notes`` (the other experts are
    still worth reviewing); with no readable mask at all, the first mask's error is raised."""
    coding = LabelCoding.from_scheme(scheme)
    shape = image_header(record.image_path).shape
    jobs = {}

    def start_masks() -> None:
        jobs.update({e: _executor().submit(mask_labels, p, scheme, coding, shape) for e, p in record.masks.items()})

    image = image_for_viewer(record.image_path, first=start_masks)
    labels, broken = {}, []
    for e, job in jobs.items():
        try:
            labels[f"expert:{e}"] = job.result()
        except InputError as exc:
            broken.append((e, exc))
    if broken and not labels:
        raise broken[0][1]
    notes = [f"{record.name} opened without expert {e}'s mask: {exc}" for e, exc in broken]
    return Core(record.name, image, {}, scheme, origin=origin, labels=labels, notes=notes)


class FolderSource:
    """A Gleason 2019 or generic dataset folder, listed once, cores read on demand."""

    kind = "folder"

    def __init__(self, ds: MultiExpertSet):
        self.ds = ds
        self.root = Path(ds.root)
        self.scheme = ds.scheme
        self.notes = list(ds.notes)

    @classmethod
    def open(cls, path: str | Path) -> FolderSource:
        return cls(open_dataset(path))

    @property
    def names(self) -> list[str]:
        return self.ds.names

    def experts_of(self, name: str) -> tuple[str, ...]:
        return self.ds.core(name).experts

    def masks(self, name: str) -> dict:
        """Only the expert class maps (no image): enough for a disagreement score."""
        record = self.ds.core(name)
        shape = image_header(record.image_path).shape  # a GeoJSON mask is rasterised at its image's size
        return {e: read_mask(p, self.scheme, shape) for e, p in record.masks.items()}

    def load(self, name: str) -> Core:
        return self.ds.load(name)  # raises InputError naming the bad file

    def view(self, name: str) -> Core:
        """What a viewer opens: coarse image levels first (large JPEGs), masks as label values."""
        record = self.ds.core(name)
        return _load_for_viewer(record, self.scheme, self.ds.origin(name))


def core_for_viewer(source, name: str) -> Core:
    """Core ``name`` of a folder or a review store as a viewer should open it (fast first frame);
    a damaged store core raises here (:func:`read_coarsest`), before any layer changes."""
    if isinstance(source, FolderSource):
        return source.view(name)
    core = source.load(name)
    read_coarsest(core)
    return core


def read_coarsest(core) -> None:
    """Read the smallest level of every pyramid of ``core`` (a few hundred kB even for a 5120² core):
    what napari reads when it adds the layers, read before it does (a chunk failing its checksum
    raises the store's ``DamagedStoreError`` here)."""
    pyramids = [core.image, *(data for data, _in_label_values in core.label_roles().values()), *core.maps.values()]
    for levels in pyramids:
        np.asarray(levels[-1] if isinstance(levels, (list, tuple)) else levels[(slice(0, 1),) * 2])


_noted: set[tuple[str, str]] = set()


def new_notes(source) -> list[str]:
    """``source``'s notes not yet shown in this session (a store's "no checksums" note is said once)."""
    out = []
    for note in getattr(source, "notes", ()):
        key = (str(Path(source.root).resolve()), note)
        if key not in _noted:
            _noted.add(key)
            out.append(note)
    return out


def dataset_root_of_image(path: str | Path) -> Path | None:
    """The dataset folder an image file belongs to, or ``None`` if it is not in a known layout.

    Gleason 2019: ``<root>/Train Imgs/<core>.jpg`` (also ``<root>/Train Imgs/Train Imgs/…``, as
    some archives unpack); generic: ``<root>/images/<core>.png``.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    parent = path.parent
    if parent.name in IMAGE_DIRS:
        if parent.parent.name == parent.name:  # unwrapped archive: X/X/
            return parent.parent.parent
        return parent.parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return parent.parent
    return None


def load_core_file(path: str | Path, for_viewer: bool = False) -> Core:
    """Load the core whose image is ``path`` with every expert mask found for it (``for_viewer``:
    as :meth:`FolderSource.view` gives it, coarse levels first).

    Raises :class:`InputError` naming the file when the core has no expert mask, a mask is
    broken, or the image is unreadable.
    """
    path = Path(path)
    root = dataset_root_of_image(path)
    if root is None:
        raise InputError("not inside a Gleason 2019 ('Train Imgs/') or generic ('images/') dataset folder", path)
    source = FolderSource.open(root)
    if path.stem not in source.ds:
        if source.ds.layout == "gleason2019":
            where = ", ".join(f"{maps_dir_name(e)}/" for e in ("1", "2", "3", "4", "5", "6"))
        else:
            where = "masks/<annotator>/"
        raise InputError(f"no expert mask for this core (looked in {where})", path)
    return source.view(path.stem) if for_viewer else source.load(path.stem)


def open_source(path: str | Path):
    """A :class:`FolderSource` or a review store for ``path`` (``InputError`` if neither)."""
    from trainer.review_store import ReviewStore, is_review_store

    path = Path(path)
    if is_review_store(path):
        return ReviewStore.open(path)
    return FolderSource.open(path)
