"""Write a file so that readers never see half of it, and a failed write leaves nothing behind.

The bytes go to a temporary file in the destination's folder, are flushed and fsynced, and the
file is moved into place with ``os.replace`` (atomic on POSIX and Windows within one volume);
the folder is fsynced so the rename survives a power cut. Any exception removes the temporary
file; an error of the operating system (disk full, read-only folder, no permission) becomes one
:class:`~trainer.errors.InputError` naming the destination and the system's reason, also where a
library hides it: ``torch.save`` raises ``RuntimeError("[enforce fail at inline_container.cc…]")``
with the ``OSError`` only as its context, numpy's ``tofile`` an ``OSError("N requested and M
written")`` without an errno (:func:`os_reason` finds the reason, or reads it off the free space).

:func:`atomic_write` writes one file; :func:`atomic_files` writes several that appear together or
not at all (a prediction's mask and its maps).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InputError

#: Texts of errors that libraries raise for a failed write without an errno (numpy's short write,
#: torch's zip writer); with one of them, a nearly full disk is the reason.
_WRITE_FAILED = re.compile(r"requested and \d+ written|inline_container|PytorchStreamWriter|iostream error")
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")
NEARLY_FULL_BYTES = 1 << 20  # free space below this after a failed write: the disk was full


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


def os_reason(exc: BaseException, where: str | Path | None = None) -> str | None:
    """The operating system's reason for ``exc`` ("No space left on device"), or ``None`` when
    ``exc`` is no failed read or write.

    Looks through the exception's cause and context for an ``OSError`` with an errno; a library's
    write error without one (see the module docstring) is "No space left on device" when the
    file system of ``where`` (a file or folder) is nearly full, else the library's words.
    """
    text = " ".join(str(exc).split())
    if not isinstance(exc, OSError) and not (isinstance(exc, RuntimeError) and _WRITE_FAILED.search(text)):
        return None  # not a failed write (a ValueError raised while handling an OSError is not one either)
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # torch keeps the OSError as its error's context
        seen.add(id(link))
        if isinstance(link, OSError) and link.errno is not None:
            return link.strerror or os.strerror(link.errno)
        link = link.__cause__ or link.__context__
    if where is not None and _nearly_full(Path(where), text):
        return os.strerror(errno.ENOSPC)
    return f"write failed: {text}" if text else "write failed"


def _nearly_full(where: Path, text: str) -> bool:
    folder = where if where.is_dir() else where.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    short = _SHORT_WRITE.search(text)
    missing = int(short.group(1)) - int(short.group(2)) if short else 0
    return free < max(missing, NEARLY_FULL_BYTES)


def _temporary(path: Path) -> tuple[int, Path]:
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", path) from exc
    return fd, Path(tmp_name)


def _failed(exc: BaseException, tmp: Path, path: Path, what: str, existed: bool) -> None:
    """Remove ``tmp`` and raise: an ``InputError`` naming ``path`` when the system refused the
    write, else ``exc`` itself."""
    reason = os_reason(exc, tmp) if not isinstance(exc, InputError) else None  # before the space is freed
    tmp.unlink(missing_ok=True)
    if reason is None:
        raise exc
    kept = f"the previous {path.name} is kept" if existed else "nothing was written"
    raise InputError(f"cannot write {what} ({reason}); {kept}", path) from exc


@contextlib.contextmanager
def _written(path: Path, mode: str, what: str) -> Iterator[tuple[IO, Path]]:
    """The temporary file of ``path``, fsynced when the block ends; removed if anything fails."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    fd, tmp = _temporary(path)
    existed = path.exists()
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
    except BaseException as exc:
        _failed(exc, tmp, path, what, existed)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", what: str = "the file") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success move it onto ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8). ``what`` names the thing in the error
    message ("cannot write the GeoJSON (No space left on device); nothing was written", or
    "…; the previous <name> is kept" when ``path`` existed). A new file gets mode 0644; a
    replaced file keeps its mode.
    """
    path = Path(path)
    with _written(path, mode, what) as (f, tmp):
        yield f
    try:
        os.replace(tmp, path)
    except OSError as exc:
        _failed(exc, tmp, path, what, path.exists())
    fsync_dir(path.parent)


class AtomicFiles:
    """Files written to temporary names, moved into place together by :meth:`commit` (see
    :func:`atomic_files`)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temporary, destination), in writing order

    @contextlib.contextmanager
    def open(self, path: str | Path, mode: str = "wb", what: str = "the file") -> Iterator[IO]:
        """Like :func:`atomic_write`, but the file stays under its temporary name until the commit."""
        path = Path(path)
        with _written(path, mode, what) as (f, tmp):
            yield f
        self._pending.append((tmp, path))

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []

    def commit(self) -> list[Path]:
        """Move every file into place, in writing order (write the one that says "done" last). A
        rename that fails removes the files moved so far that replaced nothing, and the rest."""
        moved: list[Path] = []
        pending, self._pending = self._pending, []
        for i, (tmp, path) in enumerate(pending):
            existed = path.exists()
            try:
                os.replace(tmp, path)
            except OSError as exc:
                for new in moved:
                    new.unlink(missing_ok=True)
                for other, _ in pending[i + 1:]:
                    other.unlink(missing_ok=True)
                _failed(exc, tmp, path, "the file", existed)
            if not existed:
                moved.append(path)
        for folder in {path.parent for _, path in pending}:
            fsync_dir(folder)
        return [path for _, path in pending]


@contextlib.contextmanager
def atomic_files() -> Iterator[AtomicFiles]:
    """Several files that appear together or not at all::

        with atomic_files() as files:
            with files.open(folder / "a.npy", what="the map") as f:
                np.save(f, a)
            with files.open(folder / "a.png", what="the mask") as f:
                image.save(f, format="PNG")

    Each file goes to a temporary name beside its destination; when the block ends without an
    error they are all renamed into place, otherwise all removed (an ``OSError`` becomes an
    :class:`~trainer.errors.InputError` naming the file, as in :func:`atomic_write`).
    """
    files = AtomicFiles()
    try:
        yield files
    except BaseException:
        files.discard()
        raise
    files.commit()
