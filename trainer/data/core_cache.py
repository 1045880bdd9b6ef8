"""A disk cache of resized cores, so data workers and later runs skip decoding 5120² JPEGs.

One ``.npy`` file per (core, experts, model size) holds a uint8 ``(3+E)×H×W`` array: the resized
image's three colour planes, then each expert's resized class map (``IGNORE_INDEX`` for an expert
who did not annotate the core). Its name is a hash of everything that decides those pixels: the
image's path, byte size and modification time (ns), the same for every expert's mask file, the
target size and the class scheme. Touching, editing or replacing any of those files gives a new
key; the old entry is no longer used, and goes when the cache is full.

- A size limit (``max_bytes``, default :data:`DEFAULT_MAX_BYTES`): after each write the least
  recently used entries are deleted until the folder's entries fit. Reading an entry marks it used
  (its modification time is set to now; the key does not depend on it).
- A checksum per entry: the ``.npy`` bytes are followed by a trailer (:data:`TRAILER_MAGIC` and a
  BLAKE2b digest of those bytes), checked on every load; a damaged entry is rebuilt, never used.

- Written atomically: a temporary file in the cache folder, then ``os.replace``; a reader sees a
  whole file or none, and DataLoader workers building the same entry at once do no harm. A write
  that fails (a full disk) warns once (:class:`~trainer.errors.CacheWarning`) and the cache stores
  nothing more; the cores are decoded as without a cache, and the run goes on.
- Read memory-mapped: the workers of a run share the pages instead of each holding a copy.
- An unreadable or malformed entry (truncated, foreign bytes, wrong shape) is rebuilt, not fatal.
- Only the cache folder is written; the data folder and the experts' files are only ever read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainer.atomic import atomic_write
from trainer.errors import CacheWarning, InputError

FORMAT = 2  # bump when the layout of an entry changes: every key changes with it (2: checksum trailer)
DEFAULT_MAX_BYTES = 20 * 2**30  # 20 GiB: ~800 Gleason cores at the paper's 1024² with three experts
TRAILER_MAGIC = b"GLCKSUM1"
_ENTRY_NAME = re.compile(r"(^|-)[0-9a-f]{32}\.npy$")  # what path() names; eviction touches nothing else
_DIGEST = 16


def _digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST).digest()


def _file_id(path: str | Path | None) -> list | None:
    """Path, byte size and mtime_ns of a file (None: no file; a missing one fails later, when read)."""
    if path is None:
        return None
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        return [str(path.absolute()), None, None]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


class CoreCache:
    """Resized cores on disk under ``folder`` (created if needed; must be writable), at most ``max_bytes``."""

    def __init__(self, folder: str | Path, max_bytes: int | None = DEFAULT_MAX_BYTES):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.writable = True  # false after a failed write (warned once): entries are no longer stored
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the core cache folder ({exc.strerror or exc})", self.folder) from None
        if not self.folder.is_dir() or not os.access(self.folder, os.W_OK | os.X_OK):
            raise InputError("the core cache folder is not a writable folder", self.folder)

    def key(
        self,
        image: str | Path,
        masks: Sequence[tuple[str, str | Path | None]],
        size: tuple[int, int],
        scheme: dict,
    ) -> str:
        """Hash of the image and ``(expert, mask file or None)`` list, the target size and the scheme."""
        desc = {
            "format": FORMAT,
            "image": _file_id(image),
            "masks": [[name, _file_id(path)] for name, path in masks],
            "size": [int(size[0]), int(size[1])],
            "scheme": scheme,
        }
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, key: str, name: str = "") -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
        return self.folder / (f"{stem}-{key}.npy" if stem else f"{key}.npy")

    def verify(self, path: Path) -> bool:
        """True when ``path`` ends with a trailer whose digest matches the bytes before it."""
        try:
            data = path.read_bytes()
        except OSError:
            return False
        trailer = len(TRAILER_MAGIC) + _DIGEST
        if len(data) <= trailer or data[-trailer:-_DIGEST] != TRAILER_MAGIC:
            return False
        return _digest(memoryview(data)[:-trailer]) == data[-_DIGEST:]

    def load(self, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """The entry at ``path`` memory-mapped, or None when it is missing, damaged (checksum) or not a
        uint8 ``shape`` array. A hit marks the entry as recently used."""
        if not self.verify(path):
            return None
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):  # vanished, foreign bytes, a pickle
            return None
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != tuple(shape):
            return None
        try:
            os.utime(path)  # least recently used goes first
        except OSError:
            pass
        return arr

    def entries(self) -> list[tuple[Path, int, int]]:
        """(path, bytes, last use in ns) of every entry, oldest use first (other files are not ours)."""
        out = []
        for p in self.folder.glob("*.npy"):
            if not _ENTRY_NAME.search(p.name):
                continue
            try:
                st = p.stat()
            except OSError:  # removed by another worker meanwhile
                continue
            out.append((p, st.st_size, st.st_mtime_ns))
        return sorted(out, key=lambda e: (e[2], e[0].name))

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used entries until the rest fit ``max_bytes``; returns those deleted."""
        if self.max_bytes is None:
            return []
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = []
        for p, size, _ in entries:
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError:  # e.g. mapped by another process on Windows: leave it
                continue
            total -= size
            removed.append(p)
        return removed

    def store(self, path: Path, planes: np.ndarray) -> None:
        """Write ``planes`` to ``path`` atomically (:func:`trainer.atomic.atomic_write`); a full disk
        raises :class:`InputError` naming the entry and leaves nothing behind."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(planes, dtype=np.uint8), allow_pickle=False)
        data = buf.getbuffer()
        with atomic_write(path, "wb", what="the core cache entry") as fh:
            fh.write(data)
            fh.write(TRAILER_MAGIC + _digest(data))  # np.load ignores bytes after the array

    def get(self, key: str, name: str, shape: tuple[int, ...], build: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached ``shape`` array for ``key``, built with ``build()`` and stored when absent or bad."""
        path = self.path(key, name)
        arr = self.load(path, shape)
        if arr is None:
            planes = build()
            if planes.shape != tuple(shape):
                raise ValueError(f"built {planes.shape}, expected {tuple(shape)}")
            if not self.writable:
                return planes
            try:
                self.store(path, planes)
            except InputError as exc:  # a full disk: the cache is optional, the run goes on without it
                self.writable = False
                warnings.warn(f"{exc}; going on without the core cache (cores are decoded each time)",
                              CacheWarning, stacklevel=2)
                return planes
            self.evict(keep=path)
            arr = self.load(path, shape)
            if arr is None:  # replaced under us by something unreadable: use what we built
                return planes
        return arr
