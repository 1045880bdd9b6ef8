"""A full disk for tests, answered by the kernel: the temporary files that ``trainer.atomic`` (and
every writer built on ``tempfile.mkstemp``) opens are ``/dev/full``, whose every write fails with
``ENOSPC``. Whatever writes into them — torch's zip writer, numpy, PIL's encoder, ``os.write`` —
meets the real error at the system call, and the library wraps it as it would on a full disk
(torch: ``RuntimeError("[enforce fail at inline_container.cc…]")``). The temporary file itself
exists under its usual name (empty), so a test sees whether the code under test removes it.

``mounted_tmpfs`` gives a real small file system where ``mount`` is permitted (root), else skips.
"""

from __future__ import annotations

import gc
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

DEV_FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")


def fill_disk(monkeypatch: pytest.MonkeyPatch, match: Callable[[Path], bool] = lambda tmp: True,
              after: int = 0) -> list[Path]:
    """From now on, temporary files whose path ``match`` es are written to ``/dev/full``; the first
    ``after`` matching ones are still written normally (a disk that fills up later). Returns the list
    of temporary paths that were made full (it grows as the code runs)."""
    real = tempfile.mkstemp
    seen: list[Path] = []
    full: list[Path] = []

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        fd, name = real(suffix, prefix, dir, text)
        if match(Path(name)):
            seen.append(Path(name))
            if len(seen) > after:
                os.close(fd)
                fd = os.open(DEV_FULL, os.O_WRONLY)
                full.append(Path(name))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return full


def mounted_tmpfs(folder: Path, size: str = "1m") -> Path:
    """A ``size`` tmpfs mounted on ``folder`` (unmount with :func:`unmount`); skips where not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode(errors='replace').strip()})")
    return folder


def unmount(folder: Path) -> None:
    """Unmount ``folder``; lazily if a file is still open on it (a failed test's), so none is left mounted."""
    gc.collect()  # files held only by a finished run's frames
    if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
