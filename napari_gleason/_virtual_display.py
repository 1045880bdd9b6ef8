"""A virtual X server for a machine without a display: napari draws only with an X server (an
OpenGL context), so the demo, the screenshot scripts and the timing scripts start ``Xvfb``."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import time
from pathlib import Path

SCREEN = "1600x1000x24"


def start_virtual_display() -> subprocess.Popen:
    """Start ``Xvfb`` on a free display number, point ``DISPLAY`` at it, stop it at exit."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("no display and no Xvfb: install the 'xvfb' package (make setup does) or set DISPLAY")
    for number in range(99, 140):
        if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        # -terminate: the server exits when its last client (napari) goes, even if we die uncleanly
        proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", SCREEN, "-nolisten", "tcp", "-terminate"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                os.environ["DISPLAY"] = f":{number}"
                atexit.register(_stop, proc)
                return proc
            time.sleep(0.05)
        _stop(proc)  # lost a race for this number, or it failed: try the next one
    raise SystemExit("could not start Xvfb on any display :99-:139")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
