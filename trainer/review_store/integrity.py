"""How the review store knows it is damaged: a checksum on every chunk, every chunk written, and
errors that name the store, the core and the array.

Every array the store writes carries zarr v3's ``crc32c`` codec after its zstd compressor
(:func:`array_options`) and is written with ``write_empty_chunks=True``: every chunk of its grid is
a file, even one holding only the fill value (about a hundred bytes once compressed). The
``crc32c`` codec in an array's ``zarr.json`` is therefore its record of what was written: such an
array is complete exactly when every chunk key of its shape exists. So

- a deleted chunk is found by listing the array's folder against its chunk grid (:func:`missing_chunks`;
  no chunk is read, a core's few hundred files list in milliseconds), which :func:`open_checked` does
  whenever the store opens an array — zarr itself would read it as the fill value (zeros);
- a truncated or altered chunk fails its checksum when it is read; :class:`CheckedArray` turns that
  (and zstd's own errors) into a :class:`DamagedStoreError`.

Writing every chunk was chosen over recording the written chunk keys: the rule then lives in the
metadata zarr writes anyway, no manifest has to follow each band a prediction writes, and the
price (a tiny file per empty chunk) is small. Arrays written by older versions have neither
checksum nor the guarantee: zarr reads their missing chunks as zeros, which nobody can tell from
data. They still open; the store notes once that they carry no checksums (:data:`UNCHECKED_NOTE`).
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from trainer.errors import InputError

#: What opening arrays written without checksums adds to the store's notes (once per store).
UNCHECKED_NOTE = ("written by an older napari-gleason without checksums: a damaged or deleted chunk of its "
                  "older cores cannot be detected (it reads as zeros); cache those cores again to add them")
#: Errors zarr and its codecs raise for a chunk that is not what was written (crc32c: ValueError,
#: zstd: RuntimeError, a short file: ValueError on reshaping, an unreadable file: OSError).
CHUNK_ERRORS = (ValueError, RuntimeError, OSError)


class DamagedStoreError(InputError):
    """A chunk of a review store array is missing or does not match its checksum.

    ``store``, ``core`` and ``array`` (the array's folder relative to the core's) say where; the
    message names all three.
    """

    def __init__(self, store: str | Path, core: str, array: str, what: str):
        self.store, self.core, self.array = Path(store), core, array
        super().__init__(f"core {core!r}, {describe(array)}: {what}; the review store is damaged "
                         f"(write the core into it again from its dataset)", store)


def describe(array: str) -> str:
    """``labels/expert_2/0`` -> ``labels expert_2, level 0 (array labels/expert_2/0)``."""
    parts = array.split("/")
    if len(parts) == 1 and parts[0].isdigit():
        return f"image, level {parts[0]} (array {array})"
    if len(parts) == 3 and parts[2].isdigit() and parts[0] in ("labels", "maps"):
        return f"{parts[0]} {parts[1]}, level {parts[2]} (array {array})"
    return f"array {array}"


def array_options() -> dict[str, Any]:
    """``create_array`` keywords of every store array: zstd then crc32c, every chunk written."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return {"compressors": (ZstdCodec(level=0), Crc32cCodec()), "config": {"write_empty_chunks": True}}


def has_checksums(array) -> bool:
    """Whether ``array`` (a zarr v3 array) was written with the crc32c codec (and so with every chunk)."""
    return any(getattr(c, "to_dict", lambda: {})().get("name") == "crc32c"
               for c in getattr(array.metadata, "codecs", ()))


def chunk_keys(array) -> list[str]:
    """Every chunk key of ``array``'s regular chunk grid, as zarr names its files."""
    grid = [math.ceil(s / c) for s, c in zip(array.shape, array.chunks)]
    return [array.metadata.encode_chunk_key(idx) for idx in itertools.product(*(range(n) for n in grid))]


def missing_chunks(array, folder: str | Path) -> list[str]:
    """The chunk keys of ``array`` (a checksummed array in ``folder``) that have no file."""
    folder = str(folder)
    present = set()
    for dirpath, _dirs, files in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        present.update(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files)
    return [k for k in chunk_keys(array) if k not in present]


def _list(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


class CheckedArray:
    """A store array as napari, dask and the readers use it (``shape``, ``dtype``, ``ndim``,
    ``chunks``, indexing, ``np.asarray``); a chunk that fails to read raises a
    :class:`DamagedStoreError` naming the store, the core and the array."""

    def __init__(self, array, store: str | Path, core: str, name: str):
        self.array = array
        self.store, self.core, self.name = Path(store), core, name
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.checksums = has_checksums(array)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def attrs(self):
        return self.array.attrs

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"CheckedArray({self.store.name}: {self.core!r} {self.name}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key) -> np.ndarray:
        try:
            return self.array[key]
        except CHUNK_ERRORS as e:
            what = "a chunk does not match its checksum" if "checksum" in str(e) else \
                f"a chunk cannot be read ({type(e).__name__}: {e})"
            raise DamagedStoreError(self.store, self.core, self.name, what) from e

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = np.asarray(self[...])
        return a if dtype is None else a.astype(dtype, copy=False)

    def to_dask(self):
        """A lazy dask array over this one (chunk for chunk); reading a damaged chunk raises as above."""
        import dask.array as da

        return da.from_array(self, chunks=self.chunks, name=False, lock=False, asarray=False,
                             meta=np.empty((0,) * self.ndim, self.dtype))

    def verify(self, folder: str | Path) -> None:
        """Raise :class:`DamagedStoreError` if a chunk file of this (checksummed) array is missing."""
        if self.checksums:
            missing = missing_chunks(self.array, folder)
            if missing:
                what = f"chunk {_list(missing)} {'is' if len(missing) == 1 else 'are'} missing"
                raise DamagedStoreError(self.store, self.core, self.name, what)

    def read_all(self) -> None:
        """Read (and so checksum) every chunk, one at a time: memory stays at one chunk. The error
        names the first chunk that fails."""
        grid = [range(0, s, c) for s, c in zip(self.shape, self.chunks)]
        for starts in itertools.product(*grid):
            try:
                self[tuple(slice(s, s + c) for s, c in zip(starts, self.chunks))]
            except DamagedStoreError as e:
                key = self.array.metadata.encode_chunk_key(tuple(s // c for s, c in zip(starts, self.chunks)))
                what = "does not match its checksum" if "checksum" in str(e) else "cannot be read"
                raise DamagedStoreError(self.store, self.core, self.name, f"chunk {key} {what}") from e


def open_checked(folder: str | Path, store: str | Path, core: str, name: str) -> CheckedArray:
    """The zarr array in ``folder`` (``name``: its path in core ``core``), verified complete
    (:meth:`CheckedArray.verify`). zarr's errors for damaged metadata become a :class:`DamagedStoreError`."""
    import zarr

    try:
        array = zarr.open_array(folder, mode="r")
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise DamagedStoreError(store, core, name, f"its metadata cannot be read ({type(e).__name__}: {e})") from e
    checked = CheckedArray(array, store, core, name)
    checked.verify(folder)
    return checked
