"""Grades panel: what each expert, the vote, STAPLE and the prediction grade the core on screen.

One row per rater (:func:`.._grades.rater_name`): each class's share of the tissue, primary and
secondary pattern, Gleason score and ISUP grade group, by :mod:`trainer.grading` with the command
line's defaults. The panel follows the viewer's layers itself: a rater's layer that arrives (the
vote and STAPLE from the consensus worker, the prediction from the predict widget) or whose data
changes is graded in a worker, the others keep their grade; a new image starts over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from . import workers
from .._grades import (GRADED, MIN_SHARE, RULE, grade_cells, grade_group_spread, grade_headers, grade_steps, gradable,
                       rater_name)
from .._layers import current_core, level0, role_of
from .confusion import COMPACT
from .tables import add_csv_actions

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

REFRESH_DELAY_MS = 150

HOW = (f"Each class's % of the tissue (tissue mask as in <code>python -m trainer summarize</code>); primary and "
       f"secondary pattern, Gleason score and ISUP grade group (GG) by the {RULE.upper()} rule, a pattern counting "
       f"from {100 * MIN_SHARE:g} % of the core.")


class GradesPanel(QGroupBox):
    """The grade table; ``grades`` maps a layer role to its :class:`~trainer.grading.CoreGrade`."""

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Grades per rater (Gleason score, ISUP grade group)", parent)
        self.viewer = viewer
        self.grades: dict = {}  # role -> CoreGrade of the data in self._graded[role]
        self._graded: dict = {}  # role -> the level-0 data object that was graded
        self._image = None  # level-0 image data the tissue mask belongs to
        self._tissue = None
        self._worker = None
        self._generation = 0
        self._watched: list = []
        self._roles: list[str] = []
        self._names: tuple[str, ...] = ()
        self.status = QLabel("no core")
        self.status.setWordWrap(True)
        self.table = add_csv_actions(QTableWidget(0, 0), "grades")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setStyleSheet(COMPACT)  # the whole table in the review dock's ~420 px
        # every rater's row in view (a few experts, vote, STAPLE, prediction): no vertical scrolling
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        how = QLabel(HOW)
        how.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(how)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._add_callbacks()

    def _add_callbacks(self) -> None:
        self._timer.timeout.connect(self.refresh)
        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        self.destroyed.connect(lambda *_: self._disconnect(layers))

    def _disconnect(self, layers) -> None:
        """A closed widget hears no more layer events."""
        layers.events.inserted.disconnect(self._on_layers_changed)
        layers.events.removed.disconnect(self._on_layers_changed)
        self._watch([])

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._timer.isActive()

    def _on_layers_changed(self, event) -> None:
        role = role_of(event.value)
        if role == "image" or (role is not None and rater_name(role) is not None):
            self._schedule()

    def _watch(self, layers: list) -> None:
        """Follow the data of the graded layers (the browser and the workers update them in place)."""
        for layer in self._watched:
            layer.events.data.disconnect(self._schedule)
        self._watched = list(layers)
        for layer in self._watched:
            layer.events.data.connect(self._schedule)

    def _schedule(self, event=None) -> None:
        self._timer.start()

    # --- computing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Grade the raters on screen whose data is new; show the table."""
        info = current_core(self.viewer)
        layers = {}
        if info is not None:  # the experts, then the other raters in GRADED's order
            layers = {role_of(lyr): lyr for lyr in info.experts.values()}
            others = {r: lyr for lyr in self.viewer.layers if (r := role_of(lyr)) in GRADED}
            layers.update({r: others[r] for r in GRADED if r in others})
        self._watch([*layers.values(), *([info.image] if info is not None else [])])
        self._generation += 1
        if self._worker is not None:
            self._worker.quit()  # its late results are dropped (generation)
            self._worker = None
        if info is None or not gradable(info.scheme.names):
            self._roles, self.grades, self._graded = [], {}, {}
            self.status.setText("no core" if info is None else
                                f"{info.name}: no Gleason pattern among the classes {', '.join(info.scheme.names)}")
            self._fill()
            return
        image = level0(info.image)
        if image is not self._image:  # another core: nothing carries over
            self._image, self._tissue, self.grades, self._graded = image, None, {}, {}
        self._roles, self._names = list(layers), tuple(info.scheme.names)
        data = {r: level0(lyr) for r, lyr in layers.items()}
        for r in list(self.grades):
            if data.get(r) is not self._graded.get(r):
                del self.grades[r]
                self._graded.pop(r, None)
        todo = {r: d for r, d in data.items() if r not in self.grades}
        self._fill()
        if not todo:
            self._show_status(info.name)
            return
        self.status.setText(f"{info.name}: grading {len(todo)} rater{'s' * (len(todo) != 1)} …")
        gen = self._generation
        self._worker = workers.start(
            grade_steps, image, todo, info.coding, self._tissue, what=f"grades of {info.name}",
            on_yield=lambda item: self._on_result(gen, item, todo, info.name),
            on_finish=lambda: self._on_finished(gen),
        )

    def _on_finished(self, gen: int) -> None:
        if gen == self._generation and workers.alive(self.table):
            self._worker = None

    def _on_result(self, gen: int, item: tuple, todo: dict, core: str) -> None:
        if gen != self._generation or not workers.alive(self.table):  # a stale core, or the widget closed
            return
        key, value = item
        if key == "tissue":
            self._tissue = value
            return
        self.grades[key], self._graded[key] = value, todo[key]
        self._fill()
        if all(r in self.grades for r in self._roles):
            self._show_status(core)

    def _show_status(self, core: str) -> None:
        groups = {r: self.grades[r].grade_group for r in self._roles if r.startswith("expert:") and r in self.grades}
        if not groups:
            self.status.setText(f"{core}: no expert layer")
            return
        spread = grade_group_spread(groups.values())
        shown = ", ".join("—" if g is None else str(g) for g in groups.values())
        tail = "" if spread != spread else f" (spread {spread:.0f})"  # NaN: one expert
        self.status.setText(f"{core}: the experts' ISUP grade groups {shown}{tail}")

    # --- showing -----------------------------------------------------------------------------
    def rows(self) -> list[list[str]]:
        """The table's cells as shown (tests read this)."""
        t = self.table
        return [[t.item(i, j).text() for j in range(t.columnCount())] for i in range(t.rowCount())]

    def _fill(self) -> None:
        headers = grade_headers(self._names) if self._roles else []
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        if headers:  # (no rater: no columns)
            for j, name in enumerate(self._names, start=1):
                self.table.horizontalHeaderItem(j).setToolTip(f"share of the core's tissue labelled {name}, %")
            n = len(headers)
            self.table.horizontalHeaderItem(n - 4).setToolTip("primary Gleason pattern: the most extensive")
            self.table.horizontalHeaderItem(n - 3).setToolTip(
                "secondary Gleason pattern: the highest if higher than the primary, else the most extensive lower "
                "one from 5 % of the tumour (ISUP); the primary again when alone")
            self.table.horizontalHeaderItem(n - 2).setToolTip("Gleason score: primary + secondary pattern")
            self.table.horizontalHeaderItem(n - 1).setToolTip(
                "ISUP grade group (Epstein et al. 2016): 1 ≤ 3+3, 2 = 3+4, 3 = 4+3, 4 = 8, 5 = 9-10; 0 benign")
        self.table.setRowCount(len(self._roles))
        for i, role in enumerate(self._roles):
            cells = [rater_name(role), *grade_cells(self.grades.get(role), self._names)]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j > 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
