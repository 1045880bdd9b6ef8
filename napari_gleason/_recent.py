"""Recently used checkpoints, remembered across sessions (a small JSON list, newest first).

The train widget adds every run it finishes; the predict widget adds what the user opens and
lists them. The file lives in ``$NAPARI_GLEASON_HOME`` (tests point it at a temporary folder) or
``~/.config/napari-gleason``; a missing or unreadable file is an empty list, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "NAPARI_GLEASON_HOME"
MAX_RECENT = 12


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
    target = recent_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(items, indent=1), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home only costs the list, not the run
    return items
