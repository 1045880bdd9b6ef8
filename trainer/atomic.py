"""Write a file so that readers never see half of it, and a failed write leaves nothing behind.

The bytes go to a temporary file in the destination's folder, are flushed and fsynced, and the
file is moved into place with ``os.replace`` (atomic on POSIX and Windows within one volume);
the folder is fsynced so the rename survives a power cut. Any exception removes the temporary
file; an ``OSError`` (disk full, read-only folder, no permission) becomes one
:class:`~trainer.errors.InputError` naming the destination and the operating system's reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InputError


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", what: str = "the file") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success move it onto ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8). ``what`` names the thing in the error
    message ("cannot write the GeoJSON (No space left on device); nothing was written").
    A new file gets mode 0644; a replaced file keeps its mode.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise InputError(f"cannot write {what} ({exc.strerror or exc}); nothing was written", path) from exc
        raise
    fsync_dir(path.parent)
