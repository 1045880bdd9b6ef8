"""Qt event-loop helpers for scripted sessions: the demo (``napari_gleason.demo``) and benchmarks
drive the docked widgets without a person clicking."""

from __future__ import annotations

import time

from qtpy.QtWidgets import QApplication, QScrollArea


def wait_until_idle(widget, timeout: float = 120.0) -> None:
    """Process Qt events until the widget's workers are done (they update layers in Qt slots)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if not widget.busy:
            break
        time.sleep(0.02)
    QApplication.processEvents()


def show_confusion(review) -> None:
    """Scroll the review widget to its confusion tables (they sit below the agreement table)."""
    QApplication.processEvents()
    scroll = review.findChild(QScrollArea)
    if scroll is not None:
        scroll.ensureWidgetVisible(review.confusion, 0, 0)
        scroll.horizontalScrollBar().setValue(0)  # the agreement table is wide: keep the left edge
    QApplication.processEvents()
