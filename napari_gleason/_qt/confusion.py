"""Confusion panel: each expert's confusion matrix on the core, as the confusion model estimates it.

Filled from the viewer's session (:mod:`.._session`) when the predict widget has predicted the core
on screen with a checkpoint that has a confusion model (``--confusion``); empty otherwise. Per
expert, a compact table (rows = true class as the model sees it, with its share of the tissue;
columns = the label the expert writes; cells in % of the row) and beside it one line naming its
main confusion ("expert 3: G3 → G4 on 38 % of G3"), or "not learned" with the reason above the
tables when the checkpoint's confusion model never trained. Experts in natural order. The wording
lives Qt-free in :mod:`trainer.prediction.confusion`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer.prediction.confusion import CoreConfusion, percent_cells, summary_lines

from .._session import session_of
from .tables import add_csv_actions

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

HOW = ("Per expert: rows = true class as the model sees it (with its share of the core's tissue), columns = "
       "the label the expert writes, % of the row.")
EMPTY = ("Predict this core with a checkpoint trained with --confusion to see how each expert confuses "
         "the classes (rows: true class as the model sees it; columns: the expert's label).")
#: A table and its summary share the review dock's width (~420 px): little padding around the numbers.
COMPACT = "QHeaderView::section { padding: 0px 3px; } QTableWidget::item { padding: 0px 1px; }"


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
        self.lines: dict[str, str] = {}  # expert -> its one-line summary, as shown beside its table
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
        self.lines = {}
        if confusion is None or not confusion.matrices:
            self.summary.setText(EMPTY)
            return
        # a model that never trained: say so above its tables (their numbers are its starting point)
        self.summary.setText(HOW if not confusion.untrained else f"<b>Not learned:</b> {confusion.untrained}.")
        for k, (expert, line) in enumerate(zip(confusion.matrices, summary_lines(confusion))):
            box = QWidget()
            row = QHBoxLayout(box)  # the table, and beside it the expert's one-line summary
            row.setContentsMargins(0, 0, 0, 0)
            table = add_csv_actions(self._table(confusion.matrices[expert], confusion), f"confusion_{expert}")
            name, _, finding = line.partition(": ")
            text = QLabel(f"<b>{name}</b><br>{finding}")
            text.setWordWrap(True)
            text.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row.addWidget(table)
            row.addWidget(text, 1)
            self._grid.addWidget(box, k, 0)
            self._boxes.append(box)
            self.tables[expert], self.lines[expert] = table, line

    def _table(self, matrix: np.ndarray, confusion: CoreConfusion) -> QTableWidget:
        names = list(confusion.classes)
        cells = percent_cells(matrix)
        table = QTableWidget(len(names), len(names))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setHorizontalHeaderLabels(names)
        table.setVerticalHeaderLabels([f"{n} {100 * s:.0f}%" for n, s in zip(names, confusion.share)])
        table.verticalHeader().setToolTip("true class (as the model sees it) and its share of the core's tissue")
        table.setStyleSheet(COMPACT)
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
        # exactly as big as its cells: the panel shows every table whole, no scrolling
        table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        table.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        table.resizeColumnsToContents()
        table.resizeRowsToContents()
        return table

    def values(self, expert: str) -> list[list[str]]:
        """The cells of ``expert``'s table as shown (tests read this)."""
        table = self.tables[expert]
        return [[table.item(i, j).text() for j in range(table.columnCount())] for i in range(table.rowCount())]
