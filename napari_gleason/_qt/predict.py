"""The predict widget: choose a checkpoint, click once, see the model beside the experts.

One click adds (or updates in place) ``prediction`` (labels, paper colours), ``probability:<class>``
and ``roughness`` as soon as the segmentation network has run, then ``weight:<expert>`` for the
experts of this core when the checkpoint has a weighting CNN, or ``error:<expert>`` when it has a
confusion model (the authors' stride-4 weighting CNN takes longer than HRNet18 itself), all
registered to the image, then ``consensus:learned`` (see :mod:`trainer.prediction.learned`). In
the paper setting every output stays at the model's resolution and is registered to the image with
``scale``/``translate`` (no full-size copy: the export panel makes one when asked to edit or
export). The heat maps carry napari's colour bar, a fixed 0-1 range, and are transparent off the
tissue. The confusion model's per-expert matrices go to the viewer's session (:mod:`.._session`),
where the review widget shows them. The checkpoint is loaded
once per (file, device, precision) and kept; loading and predicting run in a worker
(:func:`napari_gleason._predict.prediction_job`), layers change only in the slots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from trainer.data.core import Core
from trainer.prediction import Tiled, WholeCore

from .._layers import current_core, layers_with_prefix, level0, remove_role, role_of, set_layer
from .._llvm_guard import guard_triton
from .._predict import prediction_job, predictor_key, streaming_store
from .._recent import checkpoint_in, recent_checkpoints, remember_checkpoint
from .._session import session_of
from .._train_settings import device_choices
from . import workers

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

HELP = (
    "<b>How to read weight:&lt;expert&gt;</b> — the weighting CNN (eq. 2) looks at the <i>image only</i> "
    "(never at the labels) and gives each expert of this core a weight per pixel; the weights sum to 1 over "
    "the experts. A high weight (bright) means that during training the model learned to trust that expert's "
    "label for tissue that looks like this; a low weight, that it learned to discount it there. It is not a "
    "measure of whether the expert is right on this core. The learned-weight consensus in the review widget "
    "lets the experts vote with these weights.<br><b>How to read error:&lt;expert&gt;</b> — a checkpoint "
    "trained with <i>--confusion</i> estimates, per pixel, how each expert confuses the classes; the map is "
    "the chance that this expert's label here is wrong, given the label the expert wrote (paper setting; at "
    "full resolution, before seeing it). Bright tissue: the model believes the expert erred there. Measured "
    "honestly it is no oracle: on the demo core it ranks each expert's wrong pixels about as well as the "
    "segmentation's own doubt about the label written (1 − p(label)), not better (docs/ANNOTATOR_MODELS.md). "
    "The review widget shows each expert's confusion matrix for the core. Both heat maps are blank off the tissue."
)
MODES = {"paper": "paper setting: whole core → model input", "full": "full resolution: tiled"}


class PredictWidget(QWidget):
    #: its name in napari.yaml (docking.dock)
    display_name = "Predict"

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        guard_triton()  # the canvas (and Mesa's LLVM) exists now; workers will import torchvision
        self.viewer = viewer
        self.predictor = None
        self._key = None
        self._worker = None
        self._t_click = 0.0
        self._loaded_now = False
        self.output = None  # the last PredictOutput (``complete`` false while per-expert maps are computed)
        self.seconds: float | None = None  # click → all layers of the last prediction
        self.first_seconds: float | None = None  # click → its first layers (the segmentation)
        self.checkpoint = QComboBox()
        self.checkpoint.setEditable(True)
        self.checkpoint.setToolTip("a checkpoint file (.pt) or a run folder (its best.pt)")
        # long paths must not widen the dock: show their end, the full path is in the list
        self.checkpoint.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.checkpoint.setMinimumContentsLength(16)
        self._browse = QPushButton("…")
        self.device = QComboBox()
        self.device.addItems(device_choices())  # only devices that exist
        self.mode = QComboBox()
        for key, text in MODES.items():
            self.mode.addItem(text, key)
        self.magnification = QDoubleSpinBox()
        self.magnification.setRange(0.05, 4.0)
        self.magnification.setSingleStep(0.05)
        self.magnification.setValue(1.0)
        self.magnification.setToolTip("full resolution: the model runs at this fraction of the core's native "
                                      "resolution (match the magnification it was trained at)")
        self.fp32 = QCheckBox("float32 only")
        self.fp32.setToolTip("CPU: compute in float32 even where the CPU has fast bfloat16 (which changes the "
                             "class of well under 0.5 % of pixels); GPU: no mixed precision")
        self._predict = QPushButton("Predict this core")
        self.status = QLabel("choose a checkpoint")
        self.status.setWordWrap(True)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.help = QLabel(HELP)
        self.help.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint, 1)
        row.addWidget(self._browse)
        form = QFormLayout()
        form.addRow("checkpoint", row)
        form.addRow("device", self.device)
        form.addRow("setting", self.mode)
        form.addRow("magnification", self.magnification)
        form.addRow("precision", self.fp32)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(form)
        layout.addWidget(self._predict)
        layout.addWidget(self.status)
        layout.addWidget(self.note)
        layout.addWidget(self.help)
        layout.addStretch(1)
        scroll = QScrollArea()  # stacked under another dock it shrinks: scroll, never squash the form
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        QVBoxLayout(self).addWidget(scroll)
        self.setMinimumWidth(380)
        self._fill_recent()
        self._add_callbacks()
        self._follow_session()

    def _add_callbacks(self) -> None:
        self._browse.clicked.connect(self._on_browse)
        self._predict.clicked.connect(self.predict)
        self.mode.currentIndexChanged.connect(self._on_mode_changed)
        self._on_mode_changed()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # --- checkpoint --------------------------------------------------------------------------
    def _fill_recent(self) -> None:
        self.checkpoint.blockSignals(True)
        current = self.checkpoint.currentText()
        self.checkpoint.clear()
        self.checkpoint.addItems(recent_checkpoints())
        if current:
            self.checkpoint.setCurrentText(current)
        self.checkpoint.blockSignals(False)

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint", "", "Checkpoints (*.pt);;All files (*)")
        if path:
            self.offer_checkpoint(path)

    def offer_checkpoint(self, path: str | Path) -> None:
        """Make ``path`` (a file or a run folder) the checkpoint to predict with, and remember it."""
        found = checkpoint_in(path)
        remember_checkpoint(found or path)
        self._fill_recent()
        self.checkpoint.setCurrentText(str(Path(found or path).resolve()))
        self.status.setText(f"checkpoint: {self.checkpoint.currentText()}")
        if found is not None:
            session_of(self.viewer).set_checkpoint(found)  # the fine-tune panel fine-tunes this one

    def _follow_session(self) -> None:
        """The viewer's current checkpoint (a run the train widget finished) and its requests to predict."""
        session = session_of(self.viewer)
        if session.checkpoint:
            self.offer_checkpoint(session.checkpoint)
        follow = lambda path: path and self.offer_checkpoint(path)  # noqa: E731
        again = lambda: self.predict()  # noqa: E731
        session.checkpoint_changed.connect(follow)
        session.prediction_requested.connect(again)
        self.destroyed.connect(lambda *_: (session.checkpoint_changed.disconnect(follow),
                                           session.prediction_requested.disconnect(again)))

    def checkpoint_path(self) -> Path | None:
        text = self.checkpoint.currentText().strip()
        return (checkpoint_in(text) or Path(text)) if text else None

    def _on_mode_changed(self) -> None:
        self.magnification.setEnabled(self.mode.currentData() == "full")

    def prediction_mode(self):
        """The chosen setting: :class:`WholeCore` (paper) or :class:`Tiled` at the magnification."""
        if self.mode.currentData() == "full":
            return Tiled(magnification=self.magnification.value())
        return WholeCore()

    @property
    def precision(self) -> str:
        return "fp32" if self.fp32.isChecked() else "auto"

    # --- predicting --------------------------------------------------------------------------
    def predict(self) -> bool:
        """Snapshot the core and settings, then load/predict in a worker. False if nothing started."""
        if self._worker is not None:
            return False
        info = current_core(self.viewer)
        if info is None:
            show_error("Predict: open a core first (File ▸ Open, the dataset browser or a sample)")
            return False
        path = self.checkpoint_path()
        if path is None:
            show_error("Predict: choose a checkpoint first (… or a recent run)")
            return False
        device = self.device.currentText()
        key = predictor_key(path, device, self.precision)
        predictor = self.predictor if key == self._key else None
        self._t_click = time.perf_counter()
        self._loaded_now = False
        self.first_seconds = None
        self.status.setText(f"predicting {info.name} on {device} …" if predictor else
                            f"loading {path.name} and predicting {info.name} …")
        self.note.setText("")
        experts = {e: level0(lyr) for e, lyr in info.experts.items()}  # read-only overlays: the worker reads them
        image = level0(info.image)
        mode = self.prediction_mode()
        store = streaming_store(info.origin, image.shape, mode)
        cache = None
        if store and not info.origin.get("store"):  # a big core from files: cache it in its dataset's store
            cache = Core(info.name, image, {}, info.scheme, origin=info.origin,
                             labels={f"expert:{e}": m for e, m in experts.items()})  # label values, no copy
        self._worker = workers.start(
            prediction_job, predictor, path, device, image, info.name, info.scheme, info.coding,
            experts, mode, store, cache_core=cache, precision=self.precision, what=f"prediction of {info.name}",
            on_yield=lambda item: self._on_result(info, key, item), on_finish=self._on_finished)
        return True

    def _on_finished(self) -> None:
        self._worker = None

    def _on_result(self, info, key, item) -> None:
        kind, value = item
        session = session_of(self.viewer)
        if kind == "loaded":
            self.predictor, self._key = value, key
            self._loaded_now = True
            session.set_learned_available(value.weighting is not None)
            return
        now = current_core(self.viewer)
        if now is None or now.name != info.name:
            return  # the core changed while predicting: its layers are gone, do not resurrect them
        geo = {"core": info.name, "scheme": info.scheme, "like": now.image}
        if kind == "prediction":
            self._show_prediction(value, geo)
            if value.complete:
                session.set_learned_available(self.predictor is not None and self.predictor.weighting is not None)
                session.set_confusion(value.confusion)
        elif kind == "learned" and value is not None:
            layer = set_layer(self.viewer, "consensus:learned", value, in_label_values=True, **geo)
            layer.visible = session.shows("consensus:learned")
        elif kind == "learned":
            remove_role(self.viewer, "consensus:learned")

    def _show_prediction(self, out, geo) -> None:
        """Show ``out``'s layers. A first, incomplete output (segmentation, probabilities, roughness)
        leaves the per-expert layers of a previous prediction alone: the complete one, a moment
        later, updates them in place and removes those it no longer has."""
        geo = {**geo, **model_grid(out, geo["like"])}
        set_layer(self.viewer, "prediction", out.classes, in_label_values=out.in_label_values, **geo)
        for role, data in out.maps.items():
            set_layer(self.viewer, role, data, **geo)
        if out.complete:
            for prefix in ("weight", "error"):  # experts (or the annotator model) of a previous prediction
                for layer in layers_with_prefix(self.viewer, prefix):
                    if role_of(layer) not in out.maps:
                        self.viewer.layers.remove(layer)
        self.output = out
        now = time.perf_counter() - self._t_click
        if self.first_seconds is None:
            self.first_seconds = now
        where = "paper setting" if out.mode.name == "paper" else "full resolution, tiled"
        if out.store:
            where += ", written into the review store"
        loaded = ", checkpoint loaded first" if self._loaded_now else ""
        if not out.complete:
            self.status.setText(f"{out.core}: prediction on screen {now:.2f} s after the click ({out.seconds:.2f} s "
                                f"inference{loaded}) on {out.device} in {out.precision}; computing the per-expert "
                                "maps …")
            return
        self.seconds = now
        first = f"prediction after {self.first_seconds:.2f} s, " if self.first_seconds < now - 0.005 else ""
        self.status.setText(f"{out.core}: {first}{now:.2f} s from click to all layers ({out.seconds:.2f} s "
                            f"inference{loaded}) on {out.device} in {out.precision}; {where}, model input "
                            f"{out.input_size}²")
        self.note.setText("\n".join(out.notes))


def model_grid(out, image_layer) -> dict:
    """``scale``/``translate`` that put outputs of ``out.scale`` core pixels per pixel on the image:
    output pixel *i* covers core pixels ``[i·f, (i+1)·f)``, its centre at ``i·f + (f − 1)/2``."""
    if tuple(out.scale) == (1.0, 1.0):
        return {}
    s0, t0 = tuple(image_layer.scale)[-2:], tuple(image_layer.translate)[-2:]
    return {"scale": tuple(s * f for s, f in zip(s0, out.scale)),
            "translate": tuple(t + s * (f - 1) / 2 for t, s, f in zip(t0, s0, out.scale))}
