"""The README's picture of the review widget's class legend and grade table (``docs/img/review_grades.png``).

    .venv/bin/python benchmarks/screenshot_review_grades.py [--out docs/img/review_grades.png] [--no-model]

The demo's sample core (``napari_gleason.demo.build``: six experts, the vote outlined by expert 3)
with the review widget docked wide; unless ``--no-model``, the shipped demo model predicts the core
first, so the grade table has its prediction row. The review dock is scrolled so the legend, the
agreement table and the grade table show; the whole window is saved (in 256 colours). Without a display a virtual X
server is started, as the demo does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/review_grades.png"))
    p.add_argument("--no-model", action="store_true", help="no prediction row")
    p.add_argument("--size", type=int, default=512, help="sample core size (default 512)")
    a = p.parse_args(argv)
    from napari_gleason import demo

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        demo.start_virtual_display()
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import napari
    from PIL import Image
    from qtpy.QtWidgets import QApplication, QScrollArea

    viewer = napari.Viewer(title="napari-gleason: review", show=True)
    viewer.window.resize(1560, 1040)
    review = demo.build(viewer, a.size, seed=3)
    if not a.no_model and demo.DEMO_MODEL.exists():
        predict = demo.predict_core_on_screen(viewer, demo.DEMO_MODEL)
        viewer.window.remove_dock_widget(predict)  # the review dock takes the whole side
        demo.wait_until_idle(review)
    for layer in viewer.layers:  # experts outlined over the vote: the picture the legend explains
        if layer.metadata.get("napari_gleason", {}).get("role", "").startswith(("probability", "weight", "error")):
            layer.visible = False
    review.setMinimumWidth(720)
    QApplication.processEvents()
    scroll = review.findChild(QScrollArea)
    scroll.ensureWidgetVisible(review.grades, 0, 0)  # the grade table whole, the agreement table above it
    QApplication.processEvents()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    # 256 colours, no dithering: a third of the size, the text as sharp (a GUI has few colours)
    # true colour: a 256-colour palette can merge the legend's small swatches into other colours
    Image.fromarray(shot).convert("RGB").save(a.out, optimize=True)
    print(a.out, flush=True)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
