"""Pictures of the plugin's docks at 1600×1000 (``docs/img/docks_review_browser.png``, ``docs/img/docks_train.png``).

    .venv/bin/python benchmarks/screenshot_docks.py [--out-dir docs/img] [--cores 30]

A synthetic dataset (``trainer.synthetic``, six experts) is written to a temporary folder and opened
in the dataset browser; the review widget and the train widget are docked as a user would open them.
The window is 1600×1000: the first picture has the review dock raised with the browser below it, on
a core far down the list (the browser scrolled to it); the second has the train dock raised (it
shares a tab with the review dock), its Start/Stop row in view. Saved in 256 colours. Without a
display a virtual X server is started, as the demo does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path, default=Path("docs/img"))
    p.add_argument("--cores", type=int, default=30, help="cores in the synthetic dataset (default 30)")
    p.add_argument("--size", type=int, default=256, help="core size (default 256)")
    a = p.parse_args(argv)
    from napari_gleason import demo

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        demo.start_virtual_display()
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_gleason._qt import BrowserWidget, ReviewWidget, TrainWidget, dock
    from napari_gleason._qt.docking import dock_of
    from trainer.synthetic.writer import write_dataset

    def settle(seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.02)

    def save(name: str) -> Path:
        out = a.out_dir / name
        shot = viewer.screenshot(canvas_only=False, flash=False)
        # true colour: a 256-colour palette merged the legend's small red swatch into a dark red
        Image.fromarray(shot).convert("RGB").save(out, optimize=True)
        print(out, shot.shape[1], "×", shot.shape[0], flush=True)
        return out

    a.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synthetic"
        write_dataset(data, cores=a.cores, size=a.size, seed=0)
        viewer = napari.Viewer(title="napari-gleason: docks at 1600×1000", show=True)
        viewer.window._qt_window.resize(1600, 1000)
        review = dock(viewer, ReviewWidget)
        browser = dock(viewer, BrowserWidget)
        browser.open(data)
        demo.wait_until_idle(browser)
        far = browser.ordered_names()[-3]  # a core far down the list
        browser.load(far)
        demo.wait_until_idle(browser)
        train = dock(viewer, TrainWidget)
        settle()
        demo.wait_until_idle(review)
        dock_of(review).raise_()
        settle()
        save("docks_review_browser.png")
        dock_of(train).raise_()
        settle()
        save("docks_train.png")
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
