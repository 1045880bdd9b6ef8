"""Copy and save any table of the plugin's widgets as CSV: one helper, :func:`add_csv_actions`.

A table gets a context menu (right click) with "Copy as CSV" and "Save CSV…", and Ctrl+C (the
platform's Copy key) copies the selected cells — the rectangle they span, with its headers — or the
whole table when nothing is selected. Cells are read through the table's model, so a
``QTableWidget`` and a ``QTableView`` work alike, in the order shown (a sorted browser copies
sorted). The CSV text itself is made by :func:`.._table_csv.table_csv` (Qt-free, tested on its own).
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QGuiApplication, QKeySequence
from qtpy.QtWidgets import QAbstractItemView, QFileDialog, QMenu

from trainer.errors import InputError

from .._table_csv import save_csv, table_csv

HINT = "Right-click: copy or save as CSV; Ctrl+C copies the selected cells"


def _text(value) -> str:
    return "" if value is None else str(value)


def _row_headers(view: QAbstractItemView, rows: list[int]) -> list[str] | None:
    """The row labels, when the table has its own (not Qt's row numbers)."""
    model = view.model()
    header = view.verticalHeader()
    if header is None or header.isHidden():
        return None
    labels = [model.headerData(r, Qt.Orientation.Vertical, Qt.ItemDataRole.DisplayRole) for r in rows]
    return [_text(v) for v in labels] if any(isinstance(v, str) for v in labels) else None


def table_cells(view: QAbstractItemView, selected_only: bool = False):
    """``(headers, rows, row_headers)`` of ``view`` as shown: visible columns, rows in view order;
    ``selected_only``: the rectangle spanning the selected cells (everything when none is)."""
    model = view.model()
    rows = list(range(model.rowCount()))
    columns = [c for c in range(model.columnCount()) if not view.isColumnHidden(c)]
    picked = view.selectionModel().selectedIndexes() if selected_only and view.selectionModel() else []
    if picked:
        r_lo, r_hi = min(i.row() for i in picked), max(i.row() for i in picked)
        c_lo, c_hi = min(i.column() for i in picked), max(i.column() for i in picked)
        rows = [r for r in rows if r_lo <= r <= r_hi]
        columns = [c for c in columns if c_lo <= c <= c_hi]
    headers = [_text(model.headerData(c, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)) for c in columns]
    cells = [[_text(model.data(model.index(r, c), Qt.ItemDataRole.DisplayRole)) for c in columns] for r in rows]
    return headers, cells, _row_headers(view, rows)


def table_to_csv(view: QAbstractItemView, selected_only: bool = False) -> str:
    """CSV text of ``view`` (see :func:`table_cells`)."""
    headers, cells, row_headers = table_cells(view, selected_only)
    return table_csv(headers, cells, row_headers)


def copy_csv(view: QAbstractItemView, selected_only: bool = False) -> str:
    """Put ``view`` as CSV on the clipboard; return the text."""
    text = table_to_csv(view, selected_only)
    QGuiApplication.clipboard().setText(text)
    return text


def save_table(view: QAbstractItemView, path=None, name: str = "table"):
    """Save ``view`` as CSV at ``path`` (asked for when ``None``); a write failure is one
    notification naming the file. Returns the path written, else ``None``."""
    if path is None:
        path, _ = QFileDialog.getSaveFileName(view, "Save the table as CSV", f"{name}.csv", "CSV (*.csv)")
        if not path:
            return None
    try:
        return save_csv(path, table_to_csv(view))
    except InputError as e:
        from napari.utils.notifications import show_error

        show_error(f"napari-gleason could not save the table: {e}")
        return None


class _CopyKey(QObject):
    """Takes the Copy key while the table has the focus (before napari's own shortcuts see it)."""

    def __init__(self, view: QAbstractItemView):
        super().__init__(view)
        self.view = view

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) and event.matches(QKeySequence.StandardKey.Copy):
            if event.type() == QEvent.Type.KeyPress:
                copy_csv(self.view, selected_only=True)
            event.accept()
            return True
        return False


def add_csv_actions(view: QAbstractItemView, name: str = "table") -> QAbstractItemView:
    """Give ``view`` its CSV context menu and Ctrl+C; ``name``: the suggested file name. Returns ``view``."""
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def menu(pos) -> None:
        m = QMenu(view)
        m.addAction("Copy as CSV", lambda: copy_csv(view))
        m.addAction("Save CSV…", lambda: save_table(view, name=name))
        m.exec_(view.viewport().mapToGlobal(pos))

    view.customContextMenuRequested.connect(menu)
    view._csv_copy_key = _CopyKey(view)  # kept alive with the view
    view.installEventFilter(view._csv_copy_key)
    if not view.horizontalHeader().toolTip():
        view.horizontalHeader().setToolTip(HINT)  # the cells keep their own tooltips
    return view
