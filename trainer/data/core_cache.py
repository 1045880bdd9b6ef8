"""A disk cache of resized cores, so data workers and later runs skip decoding 5120² JPEGs.

One ``.npy`` file per (core, experts, model size) holds a uint8 ``(3+E)×H×W`` array: the resized
image's three colour planes, then each expert's resized class map (``IGNORE_INDEX`` for an expert
who did not annotate the core). Its name is a hash of everything that decides those pixels: the
image's path, byte size and modification time (ns), the same for every expert's mask file, the
target size and the class scheme. Touching, editing or replacing any of those files gives a new
key; the old entry is no longer used (delete the folder to reclaim its space).

- Written atomically: a temporary file in the cache folder, then ``os.replace``; a reader sees a
  whole file or none, and DataLoader workers building the same entry at once do no harm.
- Read memory-mapped: the workers of a run share the pages instead of each holding a copy.
- An unreadable or malformed entry (truncated, foreign bytes, wrong shape) is rebuilt, not fatal.
- Only the cache folder is written; the data folder and the experts' files are only ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainer.errors import InputError

FORMAT = 1  # bump when the layout of an entry changes: every key changes with it


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
    """Resized cores on disk under ``folder`` (created if needed; must be writable)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
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

    def load(self, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """The entry at ``path`` memory-mapped, or None when it is missing or not a uint8 ``shape`` array."""
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):  # truncated, foreign bytes, a pickle
            return None
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != tuple(shape):
            return None
        return arr

    def store(self, path: Path, planes: np.ndarray) -> None:
        """Write ``planes`` to ``path`` atomically (temp file in the cache folder, fsync, rename)."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:40]}.", suffix=".tmp", dir=self.folder)
        except OSError as exc:
            raise InputError(f"cannot write the core cache ({exc.strerror or exc})", self.folder) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(planes, dtype=np.uint8), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):  # disk full, I/O error
                raise InputError(f"cannot write the core cache ({exc.strerror or exc})", self.folder) from None
            raise

    def get(self, key: str, name: str, shape: tuple[int, ...], build: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached ``shape`` array for ``key``, built with ``build()`` and stored when absent or bad."""
        path = self.path(key, name)
        arr = self.load(path, shape)
        if arr is None:
            planes = build()
            if planes.shape != tuple(shape):
                raise ValueError(f"built {planes.shape}, expected {tuple(shape)}")
            self.store(path, planes)
            arr = self.load(path, shape)
            if arr is None:  # replaced under us by something unreadable: use what we built
                return planes
        return arr
