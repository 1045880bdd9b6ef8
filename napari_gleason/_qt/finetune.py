"""Fine-tune on the corrected core: the human-in-the-loop cycle, one button.

The pathologist edits a labels layer (an editable copy of a consensus or of the prediction,
usually the ``corrected`` layer made by the review widget's export panel). This panel snapshots
it, and the train widget's runner runs :func:`napari_gleason._train_jobs.finetune_job`: the labels
become a mask PNG in the dataset's values (the trainer's atomic writer, via the exporter), and the
viewer's current checkpoint (:mod:`napari_gleason._session`; else the train form's 'start from') is
trained for a few hundred iterations on its dataset plus this core (``data.corrected``,
``train.init``) in a child process, like any run. When it ends (or is stopped) the new ``last.pt``
— the weights that saw the correction — becomes the current checkpoint, and the session asks the
predict widget (docked if it was not) to predict the core again.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QPushButton, QSpinBox

from trainer.data.core import Core

from .._layers import current_core, find_layer, level0
from .._session import session_of
from .._train_jobs import CORRECTED, finetune_job

#: Labels layers a correction can come from, in order of preference.
SOURCES = ("corrected", "prediction", "consensus:learned", "consensus:vote", "consensus:staple")


def finetune_out(checkpoint: Path) -> Path:
    """A new run folder beside the checkpoint's run: ``<run>-finetune-<date-time>``."""
    run = checkpoint.resolve().parent
    return run.parent / f"{run.name}-finetune-{time.strftime('%Y%m%d-%H%M%S')}"


class FinetunePanel(QGroupBox):
    def __init__(self, viewer, owner, parent=None):
        super().__init__("Fine-tune on the corrected core", parent)
        self.viewer = viewer
        self.owner = owner  # the TrainWidget: its runner, device and data
        self.source = QComboBox()
        self.source.setToolTip("the labels layer holding your corrections")
        self.iters = QSpinBox()
        self.iters.setRange(1, 100_000)
        self.iters.setValue(300)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(0.0005)
        self.lr.setValue(0.001)
        self._go = QPushButton("Fine-tune and predict again")
        self.status = QLabel("edit a labels layer (e.g. Review ▸ Export ▸ editable copy), then fine-tune")
        self.status.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("labels from", self.source)
        form.addRow("iterations", self.iters)
        form.addRow("learning rate", self.lr)
        form.addRow(self._go)
        form.addRow(self.status)
        self._chosen: str | None = None  # what the user picked; otherwise the most preferred source
        self._go.clicked.connect(self._on_finetune)
        self.source.activated.connect(lambda _i: setattr(self, "_chosen", self.source.currentData()))
        self.viewer.layers.events.inserted.connect(self._refresh_sources)
        self.viewer.layers.events.removed.connect(self._refresh_sources)
        self._refresh_sources()

    def set_enabled(self, enabled: bool) -> None:
        self._go.setEnabled(enabled)

    def _refresh_sources(self, event=None) -> None:
        """List the labels layers present, most preferred first; keep the user's pick while it exists."""
        self.source.blockSignals(True)
        self.source.clear()
        for role in SOURCES:
            if find_layer(self.viewer, role) is not None:
                self.source.addItem(role, role)
        self.source.setCurrentIndex(max(self.source.findData(self._chosen), 0))
        self.source.blockSignals(False)

    def _on_finetune(self) -> bool:
        """Snapshot the corrected labels and start fine-tuning; False (with a notification) if it cannot."""
        self._refresh_sources()
        info = current_core(self.viewer)
        role = self.source.currentData()
        layer = find_layer(self.viewer, role) if role else None
        if info is None or layer is None:
            show_error("Fine-tune: open a core and make an editable labels layer first "
                       "(Review ▸ Export ▸ editable copy → 'corrected', then paint)")
            return False
        current = session_of(self.viewer).checkpoint
        checkpoint = Path(current) if current else None
        checkpoint = checkpoint or (Path(self.owner.init.text()) if self.owner.init.text().strip() else None)
        if checkpoint is None or not checkpoint.is_file():
            show_error("Fine-tune: choose the model to fine-tune in the Predict widget (or as 'start from')")
            return False
        labels = np.array(level0(layer))  # a copy: the pathologist may keep painting meanwhile
        unknown = info.coding.unknown_values(labels)
        if unknown:
            show_error(f"Fine-tune: layer {layer.name!r} holds label values {unknown} that are no class "
                       f"(classes are {dict(zip(info.coding.names, info.coding.values))}); repaint them")
            return False
        core = Core(info.name, level0(info.image), {}, info.scheme, origin=info.origin,
                    extras={CORRECTED: info.coding.to_classes(labels)})
        data = self.owner.data.text().strip() or (str(info.dataset_root) if info.dataset_root else None)
        out = finetune_out(checkpoint)
        self.status.setText(f"fine-tuning {checkpoint.name} on {info.name} ({role}) → {out}")
        return self.owner.start_job(
            finetune_job, checkpoint, core, iters=self.iters.value(), lr=self.lr.value(),
            device=self.owner.device.currentText(), out=out, data=data,
            what=f"fine-tuning on {info.name}", total=self.iters.value(), on_done=self._on_done)

    def _on_done(self, finished) -> None:
        """Predict the core again with the fine-tuned weights (last.pt: it has seen the correction)."""
        if finished is None or not Path(finished.last_path).is_file():
            return
        from .docking import dock
        from .predict import PredictWidget

        session = session_of(self.viewer)
        if not len(session.prediction_requested):  # no predict widget follows this viewer yet: dock one
            dock(self.viewer, PredictWidget)
        session.set_checkpoint(finished.last_path)
        self.status.setText(f"fine-tuned to iteration {finished.iteration}; predicting again with {finished.last_path}")
        session.prediction_requested.emit()
