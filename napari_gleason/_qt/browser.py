"""Dataset browser: the cores of a dataset (or review store) in a sortable table.

Columns: core name, experts present, disagreement (the mean share of experts differing from the
vote), agreement (the mean pairwise Cohen's κ; each pair's in the tooltip), grade spread (the highest
minus the lowest of the experts' ISUP grade groups; each expert's in the tooltip) and problems (what the
data check would report: an unreadable image, a mask of the wrong size or with unknown values —
in the tooltip). Scores need every core's masks, the slowest part: a folder's scores are cached
per core (:mod:`.._scores`, keyed by the files' size and mtime), so a dataset listed before shows
them at once; the rest are computed in a worker that fills the rows as cores are done, behind a
progress bar. Opening a core with a problem gives a notification naming the file. Clicking
a row, or previous/next (which follow the table's current sort order), loads that core — also
in a worker, coarse levels first (:func:`core_for_viewer`) — and :func:`show_core` swaps it in
place of the last one. Docked while a core opened from a dataset folder is on screen (the reader
marks it ``browse``), the browser lists that folder.

A core that fails to load (a review store's missing or corrupt chunk, found in the worker before a
layer changes) gives one notification; the window keeps the core it showed, whose row stays
highlighted, and the failed core's row is marked damaged ("⚠ damaged", the reason in its tooltip):
it stays selectable, and selecting it again repeats the reason without loading.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from trainer.data.check import Problem
from trainer.data.core import natural_sorted
from trainer.errors import InputError

from .._core_sources import FolderSource, core_for_viewer, new_notes, open_source
from .._layers import find_layer, layer_meta, show_core
from .._scores import CoreScore, DatasetScores, score_store_core
from . import workers
from .docking import ArrangeOnFirstShow
from .tables import add_csv_actions

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

#: Rows of the core table always in view.
MIN_ROWS = 5
COLUMNS = ("Core", "Experts", "Disagreement", "Agreement κ", "Grade spread", "Problems")
HEADER_TIPS = {
    "Disagreement": "mean over the core of the share of experts differing from the majority vote",
    "Agreement κ": "mean over the pairs of experts of Cohen's κ (all classes)",
    "Grade spread": "grade-group disagreement: the highest minus the lowest ISUP grade group (0 benign, 1-5) "
                    "the core's experts' masks give (0: all agree; NaN with one expert)",
}


class _NumberItem(QTableWidgetItem):
    """Sorts by value; "not available" (NaN) counts as lowest, so a descending sort puts the
    most disputed cores first and the single-expert cores last."""

    def __init__(self, value: float = math.nan, text: str | None = None):
        super().__init__(text if text is not None else ("—" if math.isnan(value) else f"{value:.3f}"))
        self.value = float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other):
        a, b = self.value, getattr(other, "value", math.nan)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and not math.isnan(b)
        return a < b


def score_steps(source, names: list[str], scores: DatasetScores | None = None):
    """Headless: yield a :class:`CoreScore` per core as each is done (a folder's through its score
    cache ``scores``, a review store's read from the store); a broken core is reported, not fatal."""
    if isinstance(source, FolderSource):
        yield from (scores or DatasetScores(source.ds)).score(names)
        return
    for name in names:
        try:
            yield score_store_core(source, name)
        except (InputError, ValueError, OSError, KeyError) as e:  # zarr's and json's errors for a damaged entry
            yield CoreScore(name, (), problems=[Problem(Path(source.root), f"damaged ({type(e).__name__}: {e})", name)])


class BrowserWidget(ArrangeOnFirstShow, QWidget):
    #: its name in napari.yaml (docking.dock)
    display_name = "Dataset browser"
    #: which plugin dock it is (docking.arrange)
    dock_kind = "browser"

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.source = None
        self.current: str | None = None  # the core on screen
        self._wanted: str | None = None  # the core last asked for, while it loads
        self._damaged: dict[str, str] = {}  # core -> why it could not be loaded
        self._shown = None  # the core this browser put on screen last
        self._score_worker = None
        self._loads = 0  # loads in flight (a quick "next, next" starts several)
        self._rescroll = QTimer(self)  # after a resize has settled: the current row back in view
        self._rescroll.setSingleShot(True)
        self._rescroll.setInterval(0)
        self._rescroll.timeout.connect(self._scroll_to_current)
        self._open = QPushButton("Open dataset folder or store…")
        self.path_label = QLabel("no dataset")
        self.path_label.setWordWrap(True)
        self.table = add_csv_actions(QTableWidget(0, len(COLUMNS)), "cores")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in HEADER_TIPS.items():
            self.table.horizontalHeaderItem(COLUMNS.index(column)).setToolTip(tip)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)  # by name first
        self.table.setSortingEnabled(True)
        # several rows in view however the docks share the height (docking.arrange gives it room)
        self.table.setMinimumHeight(MIN_ROWS * self.table.verticalHeader().defaultSectionSize()
                                    + self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth())
        self.progress = QProgressBar()
        self.progress.setFormat("scores %v/%m")
        self._prev = QPushButton("◀ previous")
        self._next = QPushButton("next ▶")
        nav = QHBoxLayout()
        nav.addWidget(self._prev)
        nav.addWidget(self._next)
        layout = QVBoxLayout(self)
        layout.addWidget(self._open)
        layout.addWidget(self.path_label)
        layout.addWidget(self.table)
        layout.addWidget(self.progress)
        layout.addLayout(nav)
        self._add_callbacks()
        image = find_layer(viewer, "image")
        if image is not None and layer_meta(image, "browse"):  # opened from the menu after a dataset folder
            self.browse(layer_meta(image, "browse"), current=image.name)

    def _add_callbacks(self) -> None:
        self._open.clicked.connect(self._on_open_clicked)
        self.table.cellClicked.connect(lambda row, _col: self._on_row_activated(row))
        self._prev.clicked.connect(lambda: self._on_step(-1))
        self._next.clicked.connect(lambda: self._on_step(+1))

    @property
    def busy(self) -> bool:
        return self._score_worker is not None or self._loads > 0

    # --- opening -----------------------------------------------------------------------------
    def _on_open_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a Gleason 2019 / generic dataset folder or a review store")
        if path:
            self.open(path)

    def open(self, path: str | Path) -> bool:
        try:
            source = open_source(path)
            for name in source.names:  # listing reads each core's metadata: a damaged store fails here
                source.experts_of(name)
        except InputError as e:
            show_error(f"napari-gleason could not open it: {e}")
            return False
        except (OSError, ValueError, KeyError) as e:  # zarr's and json's errors for a damaged store
            show_error(f"napari-gleason could not open it: {path}: damaged ({type(e).__name__}: {e})")
            return False
        self.set_source(source)
        return True

    def _show_notes(self, source) -> None:
        for note in new_notes(source):  # e.g. an older store's "no checksums", once
            show_info(f"{source.root}: {note}")

    def browse(self, path: str | Path, current: str | None = None) -> None:
        """List the dataset or store at ``path`` (unless listed already) with ``current`` — the core
        already on screen — selected, without loading it again."""
        if self.source is None or Path(self.source.root).resolve() != Path(path).resolve():
            try:
                source = open_source(path)
            except InputError as e:
                show_error(f"napari-gleason could not list it: {e}")
                return
            self.set_source(source, load_first=False)
        self.current = current
        row = self._row_of(current) if current is not None else -1
        if row >= 0:
            self._select(current)

    def set_source(self, source, load_first: bool = True) -> None:
        """List ``source``'s cores, start scoring them, and show the first one."""
        if self._score_worker is not None:
            self._score_worker.quit()
        self.source = source
        self._damaged = {}
        self._wanted = None
        kind = "review store" if source.kind == "store" else "dataset"
        self.path_label.setText(f"{kind}: {source.root} — {len(source.names)} cores")
        scores = DatasetScores(source.ds) if isinstance(source, FolderSource) else None
        known = scores.cached() if scores is not None else {}  # stats the files, reads one JSON: no mask
        self.table.setSortingEnabled(False)  # rows move while sorted; fill first, sort after
        self.table.setRowCount(len(source.names))
        for row, name in enumerate(source.names):
            experts = natural_sorted(source.experts_of(name))
            item = QTableWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.table.setItem(row, 0, item)
            count = _NumberItem(len(experts), f"{len(experts)}: {', '.join(experts)}")
            self.table.setItem(row, 1, count)
            self._show_score(row, known.get(name))
        self.table.setSortingEnabled(True)
        rest = [n for n in source.names if n not in known]
        self.progress.setRange(0, len(source.names))
        self.progress.setValue(len(source.names) - len(rest))
        self._score_worker = None
        if rest:
            self._score_worker = workers.start(
                score_steps, source, rest, scores, what="scoring the cores",
                on_yield=lambda item, s=source: self._on_score(s, item),
                on_finish=lambda s=source: self._on_scores_done(s),
            )
        if load_first and source.names:
            self.load(self.ordered_names()[0])

    def _row_of(self, name: str) -> int:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == name:
                return row
        return -1

    def _show_score(self, row: int, score: CoreScore | None) -> None:
        """Fill the score and problem cells of ``row`` (``None``: not scored yet)."""
        if score is None:
            cells = [_NumberItem(math.nan, "…") for _ in range(4)]
        elif score.problems:
            text = score.problem_text
            cells = [_NumberItem(math.nan, "error"), _NumberItem(math.nan, "error"), _NumberItem(math.nan, "error"),
                     _NumberItem(len(score.problems), f"⚠ {len(score.problems)}")]
            for cell in cells:
                cell.setToolTip(text)
            self.table.item(row, 0).setToolTip(f"cannot be opened:\n{text}")
        else:
            agreement = _NumberItem(score.agreement)
            if score.pairs:
                agreement.setToolTip("Cohen's κ per pair of experts:\n" + "\n".join(
                    f"{pair.replace('|', ' – ')}: {k:.3f}" for pair, k in score.pairs.items()))
            spread = score.grade_spread
            grades = _NumberItem(spread, "—" if math.isnan(spread) else f"{spread:.0f}")
            if score.grades:
                grades.setToolTip("ISUP grade group per expert:\n" + "\n".join(
                    f"{e}: {'unlabelled' if g is None else g}" for e, g in score.grades.items()))
            cells = [_NumberItem(score.disagreement), agreement, grades, _NumberItem(0, "")]
        for column, cell in enumerate(cells, start=2):
            self.table.setItem(row, column, cell)

    def _on_score(self, source, score: CoreScore) -> None:
        if source is not self.source:
            return
        if score.name in self._damaged and not score.problems:  # its masks are whole, another array is not
            score.problems = [Problem(Path(source.root), self._damaged[score.name], score.name)]
        row = self._row_of(score.name)
        if row >= 0:
            sorting = self.table.isSortingEnabled()
            self.table.setSortingEnabled(False)
            self._show_score(row, score)
            self.table.setSortingEnabled(sorting)
        self.progress.setValue(self.progress.value() + 1)

    def _on_scores_done(self, source) -> None:
        if source is self.source:
            self._score_worker = None

    # --- navigating --------------------------------------------------------------------------
    def ordered_names(self) -> list[str]:
        """Core names in the table's current (sorted) order."""
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(self.table.rowCount())]

    def sort_by(self, column: str, descending: bool = False) -> None:
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.table.sortItems(COLUMNS.index(column), order)

    def _on_row_activated(self, row: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.load(item.data(Qt.ItemDataRole.UserRole))

    def _on_step(self, delta: int) -> str | None:
        names = self.ordered_names()
        if not names:
            return None
        here = self._wanted if self._wanted is not None else self.current
        index = names.index(here) + delta if here in names else 0
        name = names[max(0, min(len(names) - 1, index))]
        self.load(name)
        return name

    def load(self, name: str) -> None:
        """Read core ``name`` in a worker, then show it (on the GUI thread). Its row is highlighted
        once it is on screen; a core marked damaged is not read again (its reason is repeated)."""
        if self.source is None:
            return
        if name in self._damaged:
            show_error(f"napari-gleason could not open {name}: {self._damaged[name]}")
            self._select(self.current)
            return
        self._wanted = name
        source = self.source
        self._loads += 1
        workers.start(
            core_for_viewer, source, name, what=f"loading {name}",
            on_return=lambda core: self._on_core_loaded(source, core),
            on_error=lambda exc: self._on_load_failed(source, name, exc),
            on_finish=self._on_load_finished,
        )

    def _select(self, name: str | None) -> None:
        """Highlight ``name``'s row (none for ``None``) without loading it."""
        row = self._row_of(name) if name is not None else -1
        self.table.blockSignals(True)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollToItem(self.table.item(row, 0))  # in view, however far down the list
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def _scroll_to_current(self) -> None:
        """The row of the core on screen in view, however far down the list."""
        row = self._row_of(self.current) if self.current is not None else -1
        if row >= 0:
            self.table.scrollToItem(self.table.item(row, 0))

    def resizeEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        """Docks rearranged (another dock opened, the window resized): keep the core on screen in view."""
        super().resizeEvent(event)
        self._rescroll.start()

    def _on_load_finished(self) -> None:
        self._loads -= 1

    def _on_core_loaded(self, source, core) -> None:
        if source is not self.source or core.name != self._wanted:
            return  # the user moved on while it was loading
        self._wanted = None
        try:
            show_core(self.viewer, core)
        except InputError as e:  # a damaged chunk napari read while changing the layers: put the last core back
            show_error(f"napari-gleason could not open {core.name}: {e}")
            self._mark_damaged(core.name, e)
            if self._shown is not None:
                try:
                    show_core(self.viewer, self._shown)
                except InputError:
                    pass
            return
        self.current, self._shown = core.name, core
        self._select(core.name)
        self.viewer.reset_view()
        self._show_notes(source)
        if core.notes:  # an expert's mask left out: the file and why, once
            show_warning("napari-gleason: " + "; ".join(core.notes))

    def _on_load_failed(self, source, name: str, exc: BaseException) -> None:
        """The worker's notification is shown; mark the row and keep the last core highlighted."""
        if source is not self.source:
            return
        if self._wanted == name:
            self._wanted = None
        if isinstance(exc, InputError):
            self._mark_damaged(name, exc)
        self._select(self.current)

    def _mark_damaged(self, name: str, exc: BaseException) -> None:
        self._damaged[name] = str(exc)
        row = self._row_of(name)
        if row < 0:
            return
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)
        problem = _NumberItem(1, "⚠ damaged")
        problem.setToolTip(self._damaged[name])
        self.table.setItem(row, COLUMNS.index("Problems"), problem)
        self.table.item(row, 0).setToolTip(f"cannot be opened:\n{self._damaged[name]}")
        self.table.setSortingEnabled(sorting)
        self._select(self.current)
