"""Confusion panel: each expert's confusion matrix on the core, as the confusion model estimates it.

Filled from the viewer's session (:mod:`.._session`) when the predict widget has predicted the core
on screen with a checkpoint that has a confusion model (``--confusion``); empty otherwise. One line
per expert names its main confusion ("expert 3: G3 → G4 on 38 % of G3"); below, one compact table
per expert: rows = true class as the model sees it (with its share of the tissue), columns = the
label the expert writes, cells in % of the row. The wording lives Qt-free in :mod:`.._confusion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._confusion import CoreConfusion, expert_label, percent_cells, summary_lines
from .._session import session_of

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

EMPTY = ("Predict this core with a checkpoint trained with --confusion to see how each expert confuses "
         "the classes (rows: true class as the model sees it; columns: the expert's label).")
#: Tables side by side in the panel.
COLUMNS = 2


def _cell_colour(value: float, diagonal: bool) -> QColor:
    """Agreement tinted green, confusion red, by how much of the row it holds (legible in dark and light themes)."""
    alpha = int(200 * min(1.0, max(0.0, value))) if np.isfinite(value) else 0
    return QColor(40, 160, 70, alpha) if diagonal else QColor(210, 50, 50, alpha)


class ConfusionPanel(QGroupBox):
    """Shows the session's :class:`CoreConfusion` when it belongs to the core on screen."""

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Expert confusion estimated by the model", parent)
        self.viewer = viewer
        self.core: str | None = None  # the core on screen
        self.shown: CoreConfusion | None = None
        self.summary = QLabel(EMPTY)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tables: dict[str, QTableWidget] = {}
        self._boxes: list[QWidget] = []  # one per expert: its title and table
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self._grid_host)
        self._add_callbacks()
        self._refresh()

    def _add_callbacks(self) -> None:
        session = session_of(self.viewer)
        session.confusion_changed.connect(self._on_confusion)
        self.destroyed.connect(lambda *_: session.confusion_changed.disconnect(self._on_confusion))

    # --- following the session and the core --------------------------------------------------
    def set_core(self, name: str | None) -> None:
        """The review widget tells which core is on screen; a confusion for another core is not shown."""
        self.core = name
        self._refresh()

    def _on_confusion(self, confusion) -> None:
        self._refresh()

    def _refresh(self) -> None:
        confusion = session_of(self.viewer).confusion
        if confusion is not None and confusion.core != self.core:
            confusion = None
        if confusion is self.shown:
            return
        self.show_confusion(confusion)

    # --- drawing -----------------------------------------------------------------------------
    def show_confusion(self, confusion: CoreConfusion | None) -> None:
        self.shown = confusion
        for box in self._boxes:  # (removeWidget would hand the box back to Python, which drops it at once)
            box.hide()
            box.deleteLater()
        self._boxes, self.tables = [], {}
        if confusion is None or not confusion.matrices:
            self.summary.setText(EMPTY)
            return
        self.summary.setText("<br>".join(summary_lines(confusion)))
        for k, (expert, matrix) in enumerate(confusion.matrices.items()):
            box = QWidget()
            inner = QVBoxLayout(box)
            inner.setContentsMargins(0, 0, 0, 0)
            inner.setSpacing(2)
            inner.addWidget(QLabel(f"<b>{expert_label(expert)}</b> — true ↓, label →"))
            table = self._table(matrix, confusion)
            inner.addWidget(table)
            self._grid.addWidget(box, k // COLUMNS, k % COLUMNS)
            self._boxes.append(box)
            self.tables[expert] = table

    def _table(self, matrix: np.ndarray, confusion: CoreConfusion) -> QTableWidget:
        names = list(confusion.classes)
        cells = percent_cells(matrix)
        table = QTableWidget(len(names), len(names))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setHorizontalHeaderLabels(names)
        table.setVerticalHeaderLabels([f"{n} ({100 * s:.0f}%)" for n, s in zip(names, confusion.share)])
        for i in range(len(names)):
            for j in range(len(names)):
                item = QTableWidgetItem(cells[i][j])
                item.setData(Qt.ItemDataRole.UserRole, float(matrix[i][j]))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(QBrush(_cell_colour(float(matrix[i][j]), i == j)))
                item.setToolTip(f"true {names[i]}, labelled {names[j]}: {cells[i][j]} % of {names[i]}")
                table.setItem(i, j, item)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.resizeColumnsToContents()
        table.resizeRowsToContents()
        # exactly as tall and wide as its cells: the panel shows every table whole, no scrolling
        height = table.horizontalHeader().sizeHint().height() + sum(table.rowHeight(i) for i in range(len(names))) + 4
        width = table.verticalHeader().sizeHint().width() + sum(table.columnWidth(j) for j in range(len(names))) + 4
        table.setFixedHeight(height)
        table.setMinimumWidth(width)
        return table

    def values(self, expert: str) -> list[list[str]]:
        """The cells of ``expert``'s table as shown (tests read this)."""
        table = self.tables[expert]
        return [[table.item(i, j).text() for j in range(table.columnCount())] for i in range(table.rowCount())]
