"""Consensus panel: majority vote vs. STAPLE, the disagreement map and the agreement table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from . import workers
from .._analysis import Agreement, consensus_steps
from .._layers import CoreInfo, find_layer, set_layer
from .._session import session_of
from .tables import add_csv_actions

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

#: Which consensus layers each choice shows.
SHOW = {"vote": ("consensus:vote",), "staple": ("consensus:staple",),
        "both": ("consensus:vote", "consensus:staple"), "none": (), "learned": ("consensus:learned",)}
KINDS = ("vote", "staple", "learned")


def consensus_job(labels: dict, coding, num_classes: int):
    """Headless: expert label data (arrays or lazy zarr levels) -> class maps -> consensus steps.

    Expert layers are read-only overlays, so the worker may read them directly; converting here
    keeps the GUI thread free (6 × 26 MB at 5120²).
    """
    masks = {e: coding.to_classes(np.asarray(a)) for e, a in labels.items()}
    for key, value in consensus_steps(masks, num_classes):
        # no pixel work on the GUI thread: consensus maps leave the worker in label values, the
        # disagreement map with its mean
        if key in ("vote", "staple"):
            value = coding.to_labels(value)
        elif key == "disagreement":
            value = (value, float(value.mean()))
        yield key, value


def fmt(value: float) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.3f}"


class ConsensusPanel(QGroupBox):
    """Computes vote, disagreement, table and STAPLE in a worker; shows them as they arrive."""

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Consensus and disagreement", parent)
        self.viewer = viewer
        self.rows: list[Agreement] = []
        self.info: CoreInfo | None = None
        self._worker = None
        self._generation = 0
        self._choice = "vote"
        self._radios = {k: QRadioButton(t) for k, t in (("vote", "majority vote"), ("staple", "STAPLE"),
                                                         ("both", "both"), ("none", "none"))}
        self._radios["vote"].setChecked(True)
        self._group = QButtonGroup(self)
        for r in self._radios.values():
            self._group.addButton(r)
        self._learned = QRadioButton("learned weights")
        # needs a model with a weighting CNN (eq. 2): the Predict widget says so through the session
        self._learned.setEnabled(session_of(viewer).learned_available)
        self._learned.setToolTip("the experts' labels, each weighted per pixel by the weighting CNN (a weighted "
                                 "class vote); computed by the Predict widget")
        self._group.addButton(self._learned)
        self._disagreement = QCheckBox("show disagreement map (share of experts differing from the vote)")
        self._disagreement.setChecked(True)
        self._status = QLabel("no core")
        self._status.setWordWrap(True)
        self.table = add_csv_actions(QTableWidget(0, 0), "agreement")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(False)
        self.table.setMinimumHeight(160)

        radios = QHBoxLayout()
        radios.addWidget(QLabel("show:"))
        for r in [*self._radios.values(), self._learned]:
            radios.addWidget(r)
        layout = QVBoxLayout(self)
        layout.addLayout(radios)
        layout.addWidget(self._disagreement)
        layout.addWidget(self._status)
        layout.addWidget(QLabel("Pairwise agreement (Dice per class and mean; Cohen's κ per class and overall)"))
        layout.addWidget(self.table)
        self._add_callbacks()

    def show_consensus(self, kind: str) -> None:
        """Show the ``kind`` consensus (``vote``, ``staple``, ``both``, ``none`` or ``learned``), as its
        radio button does."""
        button = self._learned if kind == "learned" else self._radios[kind]
        button.setChecked(True)

    def _add_callbacks(self) -> None:
        for key, r in [*self._radios.items(), ("learned", self._learned)]:
            r.toggled.connect(lambda on, k=key: on and self._on_consensus_choice(k))
        self._disagreement.toggled.connect(self._on_show_disagreement)
        session = session_of(self.viewer)
        session.learned_available_changed.connect(self._on_learned_available)
        self.destroyed.connect(lambda *_: session.learned_available_changed.disconnect(self._on_learned_available))

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _on_learned_available(self, available: bool) -> None:
        self._learned.setEnabled(available)

    # --- computing ---------------------------------------------------------------------------
    def compute(self, info: CoreInfo, labels: dict) -> None:
        """Start the consensus job on the experts' full-resolution label data."""
        self.info = info
        self._generation += 1
        gen = self._generation
        if self._worker is not None:
            self._worker.quit()  # acts at its next yield; its late results are dropped below
        if not labels:
            self._status.setText(f"{info.name}: no expert layer")
            self._worker = None
            return
        self._status.setText(f"{info.name}: computing vote, disagreement, agreement, STAPLE …")
        self.rows = []
        self.table.setRowCount(0)
        self._worker = workers.start(
            consensus_job, labels, info.coding, info.scheme.num_classes, what=f"consensus of {info.name}",
            on_yield=lambda item: self._on_result(gen, item),
            on_finish=lambda: self._on_finished(gen),
        )

    def _on_finished(self, gen: int) -> None:
        if gen == self._generation:
            self._worker = None

    def _on_result(self, gen: int, item: tuple) -> None:
        """A step's result, on the GUI thread: update its layer (or the table) in place."""
        if gen != self._generation or self.info is None:
            return  # a previous core's result
        key, value = item
        like = self.info.image
        geo = {"core": self.info.name, "scheme": self.info.scheme, "like": like}
        if key in ("vote", "staple"):
            role = f"consensus:{key}"
            # visible from the start (a hidden layer is neither sliced nor drawn when it is added)
            set_layer(self.viewer, role, value, in_label_values=True, visible=role in SHOW[self._choice], **geo)
        elif key == "disagreement":
            value, mean = value
            set_layer(self.viewer, "disagreement", value, visible=self._disagreement.isChecked(), **geo)
            self._status.setText(f"{self.info.name}: mean disagreement {mean:.3f}")
        elif key == "table":
            self.rows = value
            self._fill_table(value)
        elif key == "staple_vs_vote":
            share, agree = value
            self._status.setText(f"{self.info.name}: vote and STAPLE differ on {100 * share:.1f}% of pixels "
                                 f"(Dice mean {fmt(agree.dice_mean)}, κ {fmt(agree.kappa_overall)})")

    def _fill_table(self, rows: list[Agreement]) -> None:
        names = list(self.info.scheme.names)
        headers = ["A", "B", *(f"Dice {n}" for n in names), "Dice mean", *(f"κ {n}" for n in names), "κ"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = [*r.dice, r.dice_mean, *r.kappa, r.kappa_overall]
            cells = [r.a, r.b, *(fmt(v) for v in values)]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j >= 2:
                    item.setData(Qt.ItemDataRole.UserRole, float(values[j - 2]))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    # --- showing -----------------------------------------------------------------------------
    def shows(self, role: str) -> bool:
        """Whether the current choice shows the consensus layer ``role``."""
        return role in SHOW[self._choice]

    def _on_consensus_choice(self, key: str) -> None:
        self._choice = key
        session_of(self.viewer).consensus_shown = SHOW[key]  # a learned consensus computed later follows it
        for kind in KINDS:
            layer = find_layer(self.viewer, f"consensus:{kind}")
            if layer is not None:
                layer.visible = f"consensus:{kind}" in SHOW[key]

    def _on_show_disagreement(self, on: bool) -> None:
        layer = find_layer(self.viewer, "disagreement")
        if layer is not None:
            layer.visible = on
