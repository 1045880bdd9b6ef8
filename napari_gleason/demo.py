"""``python -m napari_gleason.demo``: napari with the sample core, its experts, consensus,
disagreement and roughness layers, and the review widget docked.

With a display it opens the window and runs napari. Without one (no ``DISPLAY``) it starts a
virtual X server (``Xvfb``) itself, renders the same window, writes a screenshot of the whole
window and prints its path. ``--screenshot PATH`` also writes one with a display; ``--no-show``
exits after the screenshot instead of entering napari's event loop.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SHOT = Path("out") / "napari-gleason-demo.png"
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


def wait_until_idle(widget, timeout: float = 120.0) -> None:
    """Process Qt events until the widget's workers are done (they update layers in Qt slots)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if not widget.busy:
            break
        time.sleep(0.02)
    QApplication.processEvents()


def build(viewer, size: int, seed: int):
    """Show the sample core in ``viewer`` with the review widget docked; return the widget."""
    from ._layers import find_layer, show_core
    from ._qt import ReviewWidget, dock
    from ._sample_data import synthetic_core

    show_core(viewer, synthetic_core(seed=seed, size=size))
    widget = dock(viewer, ReviewWidget)
    wait_until_idle(widget)
    # A readable first picture: the majority vote filled, expert 3 as outlines on top of it, the
    # disagreement map showing through; the other experts are a click away in the widget.
    widget.experts._on_solo("3")
    expert = find_layer(viewer, "expert:3")
    expert.contour = max(2, size // 256)
    expert.opacity = 1.0
    widget.consensus._radios["vote"].setChecked(True)
    find_layer(viewer, "consensus:vote").opacity = 0.45
    rough = find_layer(viewer, "roughness")
    if rough is not None:
        rough.visible = False
    viewer.layers.selection.active = expert
    viewer.reset_view()
    return widget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_gleason.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path,
                        help=f"write a PNG of the whole window (headless default: {DEFAULT_SHOT})")
    parser.add_argument("--no-show", action="store_true", help="exit after rendering instead of running napari")
    parser.add_argument("--size", type=int, default=1024, help="sample core size in pixels (default 1024)")
    parser.add_argument("--seed", type=int, default=3, help="sample core seed (default 3)")
    args = parser.parse_args(argv)

    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if headless:
        start_virtual_display()
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import napari

    viewer = napari.Viewer(title="napari-gleason demo", show=True)
    viewer.window.resize(1560, 960)
    build(viewer, args.size, args.seed)
    shot = args.screenshot or (DEFAULT_SHOT if headless or args.no_show else None)
    if shot is not None:
        shot = shot.resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(shot), canvas_only=False, flash=False)
        print(shot, flush=True)
    if headless or args.no_show:
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
