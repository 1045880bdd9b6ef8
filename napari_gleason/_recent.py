"""Recently used checkpoints, remembered across sessions (a small JSON list, newest first).

The train widget adds every run it finishes; the predict widget adds what the user opens and
lists them. The file lives in ``$NAPARI_GLEASON_HOME`` (tests point it at a temporary folder) or
``~/.config/napari-gleason``; a missing or unreadable file is an empty list, never an error. A
list that cannot be saved (read-only home, full disk) warns once a session
(:class:`~trainer.errors.CacheWarning`, a napari notification) and is then only kept in memory.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from trainer.atomic import atomic_write
from trainer.errors import CacheWarning, InputError

ENV = "NAPARI_GLEASON_HOME"
MAX_RECENT = 12
_warned = False  # a list that cannot be saved is said once a session


def settings_dir() -> Path:
    """``$NAPARI_GLEASON_HOME``, else the user's settings folder of this OS (platformdirs:
    ``~/.config/napari-gleason`` on Linux, ``~/Library/Application Support/napari-gleason`` on macOS)."""
    from platformdirs import user_config_dir

    return Path(os.environ.get(ENV) or user_config_dir("napari-gleason", appauthor=False))


def recent_file() -> Path:
    return settings_dir() / "recent_checkpoints.json"


def checkpoint_in(path: str | Path) -> Path | None:
    """``path`` if it is a file, else the run folder's ``best.pt`` (or ``last.pt``); ``None`` if neither."""
    path = Path(path)
    if path.is_file():
        return path
    for name in ("best.pt", "last.pt"):
        if (path / name).is_file():
            return path / name
    return None


def recent_checkpoints() -> list[str]:
    """Remembered checkpoints that still exist, newest first."""
    try:
        items = json.loads(recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [p for p in items if isinstance(p, str) and Path(p).is_file()][:MAX_RECENT]


def remember_checkpoint(path: str | Path) -> list[str]:
    """Put ``path`` first in the list (once) and save it; returns the new list."""
    path = str(Path(path).resolve())
    items = [path, *(p for p in recent_checkpoints() if p != path)][:MAX_RECENT]
    global _warned
    target = recent_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, "w", what="the list of recent checkpoints") as f:
            f.write(json.dumps(items, indent=1))
    except (OSError, InputError) as exc:  # a read-only home only costs the list, not the run
        if not _warned:
            _warned = True
            reason = str(exc) if isinstance(exc, InputError) else f"{target}: cannot save it ({exc.strerror or exc})"
            warnings.warn(f"{reason}; recent checkpoints are not remembered after this session",
                          CacheWarning, stacklevel=2)
    return items
