"""Experts panel: show or hide each expert's layer, solo one, step through them one at a time.

*Solo* shows one expert alone: every other labels layer of the core (the other experts, the vote,
STAPLE or learned consensus, a stored ``corrected`` layer, the prediction, the truth) is hidden,
and leaving solo (*all*, or *solo* again on the same expert) puts back what was visible before.
Experts are listed in natural order (:func:`trainer.data.records.natural_key`), as in every view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from trainer.data.core import natural_sorted, role_prefix

from .._layers import expert_name, layers_with_prefix, role_of, role_style

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

class ExpertsPanel(QGroupBox):
    """One row per ``expert:*`` layer: a visibility check box and a *solo* button.

    The check boxes follow the layers' ``visible`` both ways: toggling in napari's layer list
    updates the box (with signals blocked, so the change does not echo back).
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Experts", parent)
        self.viewer = viewer
        self._checks: dict[str, QCheckBox] = {}
        self._watched: list = []
        #: while an expert is solo: role -> visible of every labels layer before solo began; else None
        self._before_solo: dict[str, bool] | None = None
        self.solo: str | None = None  # the expert shown alone
        self._rows = QGridLayout()
        self._prev = QPushButton("◀ previous")
        self._next = QPushButton("next ▶")
        self._all = QPushButton("all")
        for b, tip in ((self._prev, "show only the previous expert"), (self._next, "show only the next expert"),
                       (self._all, "show every expert")):
            b.setToolTip(tip)
        buttons = QHBoxLayout()
        for b in (self._prev, self._next, self._all):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        rows = QWidget()
        rows.setLayout(self._rows)
        layout.addWidget(rows)
        layout.addLayout(buttons)
        self._add_callbacks()

    def _add_callbacks(self) -> None:
        self._prev.clicked.connect(lambda: self._on_step(-1))
        self._next.clicked.connect(lambda: self._on_step(+1))
        self._all.clicked.connect(self._on_show_all)

    # --- state from the viewer -------------------------------------------------------------
    def _layers(self) -> dict:
        layers = {expert_name(lyr): lyr for lyr in layers_with_prefix(self.viewer, "expert")}
        return {name: layers[name] for name in natural_sorted(layers)}

    def _labels_layers(self) -> dict:
        """role -> layer of every napari-gleason labels layer (experts, consensus, corrected, prediction…)."""
        out = {}
        for layer in self.viewer.layers:
            role = role_of(layer)
            if role is not None and role_style(role)["type"] == "labels":
                out.setdefault(role, layer)
        return out

    def refresh(self) -> None:
        """Rebuild the rows for the expert layers now in the viewer."""
        for layer in self._watched:
            layer.events.visible.disconnect(self._sync_from_layers)
        self._watched = []
        while self._rows.count():
            item = self._rows.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._checks = {}
        for row, (name, layer) in enumerate(self._layers().items()):
            check = QCheckBox(f"expert {name}")
            check.setChecked(layer.visible)
            check.toggled.connect(lambda on, n=name: self._on_toggle(n, on))
            solo = QToolButton()
            solo.setText("solo")
            solo.setToolTip(f"show only expert {name}, no other labels layer; click again to show what was shown "
                            "before")
            solo.clicked.connect(lambda _=False, n=name: self._on_solo_clicked(n))
            self._rows.addWidget(check, row, 0)
            self._rows.addWidget(solo, row, 1)
            self._checks[name] = check
            layer.events.visible.connect(self._sync_from_layers)
            self._watched.append(layer)
        for b in (self._prev, self._next, self._all):
            b.setEnabled(bool(self._checks))

    def _sync_from_layers(self, event=None) -> None:
        for name, layer in self._layers().items():
            check = self._checks.get(name)
            if check is not None and check.isChecked() != layer.visible:
                check.blockSignals(True)
                check.setChecked(layer.visible)
                check.blockSignals(False)

    # --- handlers --------------------------------------------------------------------------
    def visible_experts(self) -> list[str]:
        return [name for name, layer in self._layers().items() if layer.visible]

    def _on_toggle(self, name: str, visible: bool) -> None:
        layer = self._layers().get(name)
        if layer is not None:
            layer.visible = visible

    def _on_solo_clicked(self, name: str) -> None:
        """*solo* on an expert: show it alone; on the expert already alone: leave solo."""
        if self.solo == name and self._before_solo is not None:
            self.leave_solo()
        else:
            self.show_alone(name)

    def show_alone(self, name: str) -> None:
        """Show expert ``name`` alone: every other labels layer of the core hidden (remembered once,
        when solo begins, so stepping from expert to expert still restores the view before solo)."""
        layers = self._labels_layers()
        if self._before_solo is None:
            self._before_solo = {role: layer.visible for role, layer in layers.items()}
        for role, layer in layers.items():
            layer.visible = role == f"expert:{name}"
        self.solo = name

    def leave_solo(self) -> None:
        """Put back the visibility every labels layer had before solo began (a role opened since keeps its own)."""
        saved, self._before_solo, self.solo = self._before_solo, None, None
        for role, layer in self._labels_layers().items():
            if saved is not None and role in saved:
                layer.visible = saved[role]

    def _on_show_all(self) -> None:
        """Every expert shown; the other labels layers as they were before solo (if it was on)."""
        if self._before_solo is not None:
            saved = self._before_solo
            self._before_solo, self.solo = None, None
            for role, layer in self._labels_layers().items():
                if role_prefix(role) != "expert" and role in saved:
                    layer.visible = saved[role]
        for layer in self._layers().values():
            layer.visible = True

    def _on_step(self, delta: int) -> str | None:
        """Solo the next (``+1``) or previous (``-1``) expert; from "all visible", start at an end."""
        names = list(self._layers())
        if not names:
            return None
        shown = self.visible_experts()
        if len(shown) == 1:
            target = names[(names.index(shown[0]) + delta) % len(names)]
        else:
            target = names[0] if delta > 0 else names[-1]
        self.show_alone(target)
        return target
