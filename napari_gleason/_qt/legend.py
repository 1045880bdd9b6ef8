"""Class legend: a colour swatch and the name of each class, in the labels layers' own colours.

The swatches are drawn from :meth:`~trainer.data.classes.LabelCoding.colormap` — the colormap every
labels layer of the plugin uses — so the legend cannot drift from the layers. Swatches are opaque:
benign, half see-through on the canvas, would vanish into a dark theme's background otherwise.
"""

from __future__ import annotations

from qtpy.QtGui import QColor, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QLabel, QWidget

from trainer.data.classes import LabelCoding

SWATCH = 14


def swatch_color(rgba) -> QColor:
    """A colormap entry (RGBA floats 0-1) as an opaque ``QColor``."""
    r, g, b = (float(v) for v in rgba[:3])
    return QColor.fromRgbF(r, g, b, 1.0)


class ClassLegend(QWidget):
    """One swatch + name per class of the core on screen (empty without a core)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.coding: LabelCoding | None = None
        self.entries: list[tuple[str, QColor]] = []  # (class name, swatch colour), as shown
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._widgets: list[QWidget] = []

    def set_coding(self, coding: LabelCoding | None) -> None:
        if coding == self.coding:
            return
        self.coding = coding
        for w in self._widgets:
            self._row.removeWidget(w)
            w.deleteLater()
        self._widgets, self.entries = [], []
        while self._row.count():  # the stretch of the last legend
            self._row.takeAt(0)
        if coding is None:
            return
        cmap = coding.colormap()
        self._add(QLabel("classes:"))
        for name, value in zip(coding.names, coding.values):
            color = swatch_color(cmap[value])
            pix = QPixmap(SWATCH, SWATCH)
            pix.fill(color)
            box = QLabel()
            box.setPixmap(pix)
            alpha = float(cmap[value][3])
            box.setToolTip(f"{name}: label value {value}" + ("" if alpha == 1 else f", drawn {100 * alpha:.0f} % opaque"))
            text = QLabel(name)
            text.setToolTip(box.toolTip())
            self._add(box)
            self._add(text)
            self._row.addSpacing(8)
            self.entries.append((name, color))
        self._row.addStretch(1)

    def _add(self, w: QWidget) -> None:
        self._row.addWidget(w)
        self._widgets.append(w)
