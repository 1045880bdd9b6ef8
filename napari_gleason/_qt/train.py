"""The train widget: the paper's model trained from the napari window, watched live.

The form is snapshot into :class:`~napari_gleason._train_settings.TrainSettings` on the GUI thread;
the run itself is the trainer's CLI in a child process (``python -m trainer train``, or under
``torchrun`` on several GPUs: one launch path, :mod:`napari_gleason._child_run`), followed through
its event log by a :class:`~.train_runner.TrainingRunner`. Its evented status (IDLE / TRAINING /
STOPPING / DONE / CRASHED) decides which buttons are enabled; its events feed the progress bar
in the dock, the status line and the live plot. When a run ends or is stopped, its best checkpoint (else
``last.pt``) becomes the viewer's current checkpoint (:mod:`napari_gleason._session`), which the
predict widget follows.

Closing the dock or the viewer stops a running training: napari cancels its running tasks on
close, and the worker turns that into the stop flag (the child gets SIGTERM and still writes
``last.pt``); the dock's removal and the widget's destruction set the same flag, and quitting the
application stops every child, so nothing keeps training unseen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from trainer.errors import InputError

from .._layers import current_core
from .._llvm_guard import guard_triton
from .._child_run import run_in_child
from .._recent import checkpoint_in, remember_checkpoint
from .._session import session_of
from .._train_settings import (
    ENCODER_CHOICES,
    MODEL_ENCODERS,
    TrainSettings,
    cuda_device_count,
    default_out,
    device_choices,
)
from .._train_status import TrainState
from . import workers
from .finetune import FinetunePanel
from .loss_plot import LossPlot
from .docking import ArrangeOnFirstShow
from .train_runner import TrainingRunner

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari


class TrainWidget(ArrangeOnFirstShow, QWidget):
    #: its name in napari.yaml (docking.dock)
    display_name = "Train and fine-tune"
    #: which plugin dock it is (docking.arrange)
    dock_kind = "train"

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        guard_triton()  # the canvas (and Mesa's LLVM) exists now; workers will import torchvision
        self.viewer = viewer
        self.runner = TrainingRunner()
        self.status = self.runner.status
        self._closed = False
        self._docked_once = False
        self.data = QLineEdit()
        self.data.setPlaceholderText("dataset folder (Gleason 2019 or generic layout)")
        self._use_opened = QPushButton("opened")
        self._use_opened.setToolTip("the dataset of the core on screen")
        self._browse_data = QPushButton("…")
        self.model = QComboBox()
        self.model.addItems(list(MODEL_ENCODERS))  # the five of Table 2
        self.encoder = QComboBox()
        self.encoder.setEditable(True)
        self.encoder.addItems(ENCODER_CHOICES)
        self.gafl = QCheckBox("GAFL (eq. 6)")
        self.gafl.setChecked(True)
        self.gafl.setToolTip("Gaussian attention focal loss, weighted by the roughness map (eq. 5–6); off: focal loss")
        self.reweight = QCheckBox("re-weighting (eq. 2–4)")
        self.reweight.setChecked(True)
        self.reweight.setToolTip("train the weighting CNN that re-weights each expert's loss per pixel (eq. 2–4)")
        self.confusion = QCheckBox("confusion matrices")
        self.confusion.setToolTip("beyond the paper: learn each expert's confusion matrix per pixel (Zhang, Tanno "
                                  "et al. 2020) instead of the re-weighting; gives error:<expert> maps")
        self.iters = self._spin(1, 1_000_000, 1000)
        self.batch_size = self._spin(1, 256, 2)
        self.size = self._spin(32, 4096, 1024)
        self.size.setSingleStep(32)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(0.001)
        self.lr.setValue(0.01)
        self.device = QComboBox()
        self.device.addItems(device_choices())
        self.out = QLineEdit()
        self.out.setPlaceholderText("new run folder (default: ~/napari-gleason-runs/<model>-<time>)")
        self._browse_out = QPushButton("…")
        self.init = QLineEdit()
        self.init.setPlaceholderText("optional: start from this checkpoint (fine-tuning)")
        self._browse_init = QPushButton("…")
        self.use_torchrun = QCheckBox("run with torchrun on")
        self.gpus = self._spin(2, max(2, cuda_device_count()), max(2, cuda_device_count()))
        self._start = QPushButton("Start")
        self._stop = QPushButton("Stop")
        self._estimate = QPushButton("Estimate time")
        self._estimate.setToolTip("time one step of these networks on this machine and project the run, "
                                  "before starting it (reads no data)")
        self._estimating = None  # the worker while it runs
        self.progress = QProgressBar()  # determinate: repaints once per iteration, never animates
        self.progress.setFormat("%v / %m iterations")
        self.progress.setRange(0, 1)
        self.status_line = QLabel(self.status.text())
        self.status_line.setWordWrap(True)
        self.plot = LossPlot(self.runner.series)
        self.finetune = FinetunePanel(viewer, self)
        self._build_layout()
        self._add_callbacks()
        self._on_model_changed()
        self._on_status_changed(self.status.state)

    @staticmethod
    def _spin(lo: int, hi: int, value: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setValue(value)
        return box

    @staticmethod
    def _row(*widgets) -> QHBoxLayout:
        row = QHBoxLayout()
        for i, w in enumerate(widgets):
            row.addWidget(w, 1 if i == 0 else 0)
        return row

    def _build_layout(self) -> None:
        form = QFormLayout()
        form.addRow("data", self._row(self.data, self._use_opened, self._browse_data))
        form.addRow("model", self._row(self.model, QLabel("encoder"), self.encoder))
        form.addRow("loss", self._row(self.gafl, self.reweight, self.confusion))
        form.addRow("iterations", self._row(self.iters, QLabel("batch"), self.batch_size))
        form.addRow("input size", self._row(self.size, QLabel("lr"), self.lr))
        form.addRow("device", self.device)
        form.addRow("output", self._row(self.out, self._browse_out))
        form.addRow("start from", self._row(self.init, self._browse_init))
        if cuda_device_count() > 1:  # multi-GPU only where there are several GPUs
            form.addRow("multi-GPU", self._row(self.use_torchrun, self.gpus, QLabel("GPUs")))
        buttons = self._row(self._start, self._stop, self._estimate)
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.addLayout(form)
        inner.addLayout(buttons)
        inner.addWidget(self.progress)
        inner.addWidget(self.status_line)
        inner.addWidget(self.plot, 1)
        inner.addWidget(self.finetune)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # the plot fits the width
        scroll.setWidget(body)
        QVBoxLayout(self).addWidget(scroll)
        self.setMinimumWidth(470)
        self.fit_scroll = scroll  # the horizontal scroll bar is off: nothing may be cut at the right edge

    def _add_callbacks(self) -> None:
        self._start.clicked.connect(self.start_training)
        self._stop.clicked.connect(self._on_stop)
        self._estimate.clicked.connect(self._on_estimate)
        self._use_opened.clicked.connect(lambda: self._on_use_opened_dataset())
        self._browse_data.clicked.connect(lambda: self._browse_folder(self.data, "Training data folder"))
        self._browse_out.clicked.connect(lambda: self._browse_folder(self.out, "Output folder for the run"))
        self._browse_init.clicked.connect(self._on_browse_init)
        self.model.currentIndexChanged.connect(self._on_model_changed)
        # one annotator model at a time: the weighting CNN or the confusion matrices (or neither)
        self.reweight.toggled.connect(lambda on: on and self.confusion.setChecked(False))
        self.confusion.toggled.connect(lambda on: on and self.reweight.setChecked(False))
        self.status.changed.connect(self._on_status_changed)
        self.status.text_changed.connect(self._on_status_text)
        self.runner.signals.event.connect(self._on_progress)
        # Nothing may keep training unseen: a destroyed widget stops its run too (and the runner
        # stops every run when the application quits).
        self.destroyed.connect(self.runner.shutdown)

    # --- form --------------------------------------------------------------------------------
    def _browse_folder(self, field: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title)
        if path:
            field.setText(path)

    def _on_browse_init(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start checkpoint", "", "Checkpoints (*.pt)")
        if path:
            self.init.setText(path)

    def _on_use_opened_dataset(self, quiet: bool = False) -> bool:
        """Train on the dataset the core on screen came from."""
        info = current_core(self.viewer)
        root = info.dataset_root if info is not None else None
        if root is None:
            if not quiet:
                show_error("Train: the core on screen did not come from a dataset folder; choose one with …")
            return False
        self.data.setText(str(root))
        return True

    def _on_model_changed(self) -> None:
        default = MODEL_ENCODERS[self.model.currentText()]
        self.encoder.setEnabled(default is not None)  # HRNets have a fixed backbone
        if default is not None:
            self.encoder.setCurrentText(default)

    def settings(self) -> TrainSettings:
        """Snapshot of the form (GUI thread)."""
        model = self.model.currentText()
        if not self.data.text().strip():
            self._on_use_opened_dataset(quiet=True)
        out = self.out.text().strip() or str(default_out(None, model))
        return TrainSettings(
            data=self.data.text().strip(), out=out, model=model,
            encoder=self.encoder.currentText().strip() if self.encoder.isEnabled() else None,
            gafl=self.gafl.isChecked(), reweight=self.reweight.isChecked(), confusion=self.confusion.isChecked(),
            iters=self.iters.value(),
            batch_size=self.batch_size.value(), size=self.size.value(), lr=self.lr.value(),
            device=self.device.currentText(), init=self.init.text().strip() or None)

    # --- running -----------------------------------------------------------------------------
    def _run_config(self):
        """The form's run configuration, or None (with a notification) while not at rest or invalid."""
        if not self.status.resting:
            return None
        try:
            return self.settings().to_run_config()
        except InputError as exc:
            show_error(f"Train: {exc}")
            return None

    def start_training(self) -> bool:
        """Start the run the form describes in a child process (what Start does). False if nothing started."""
        cfg = self._run_config()
        if cfg is None:
            return False
        nproc = self.gpus.value() if self.use_torchrun.isChecked() and cuda_device_count() > 1 else 1
        what = f"training {cfg.model.name}" + (f" (torchrun, {nproc} GPUs)" if nproc > 1 else "")
        return self.start_job(run_in_child, cfg, nproc, what=what, total=cfg.train.iters, on_done=self._on_run_done)

    def _on_estimate(self) -> bool:
        """Project the run's time in a worker (it builds and times the networks: never on this thread)."""
        cfg = self._run_config() if self._estimating is None else None
        if cfg is None:
            return False
        from trainer.training_setup import estimate_run

        self._estimate.setEnabled(False)
        self.status_line.setText("estimating the run time …")

        def done() -> None:
            self._estimating = None
            if not self._closed and workers.alive(self):
                self._estimate.setEnabled(self.status.resting)

        def show(text: str) -> None:
            if not self._closed and workers.alive(self):
                self.status_line.setText(text)

        self._estimating = workers.start(estimate_run, cfg, what="Train: estimating the run time",
                                         on_return=show, on_finish=done)
        return True

    def start_job(self, job, *args, what: str, total: int, on_done=None, **kwargs) -> bool:
        """Run ``job`` through the runner with the plot live (the fine-tune panel uses it too)."""
        started = self.runner.start(job, *args, what=what, total=total, on_done=on_done, **kwargs)
        if started:
            self.plot.start(x_max=total)
            self._on_progress()
        return started

    def _on_progress(self, _event=None) -> None:
        if not self._closed and workers.alive(self):
            self.progress.setRange(0, self.runner.total)
            self.progress.setValue(min(self.runner.iteration, self.runner.total))

    def _on_stop(self) -> bool:
        """Stop after the current iteration (last.pt is kept); a no-op unless training."""
        return self.runner.stop()

    def _on_status_changed(self, state: TrainState) -> None:
        if self._closed or not workers.alive(self):
            return
        resting = state in (TrainState.IDLE, TrainState.DONE, TrainState.CRASHED)
        self._start.setEnabled(resting)
        self._stop.setEnabled(state is TrainState.TRAINING)
        self._estimate.setEnabled(resting and self._estimating is None)
        for w in (self.data, self.model, self.encoder, self.gafl, self.reweight, self.confusion, self.iters,
                  self.batch_size,
                  self.size, self.lr, self.device, self.out, self.init, self._use_opened, self._browse_data,
                  self._browse_out, self._browse_init, self.use_torchrun, self.gpus):
            w.setEnabled(resting and (w is not self.encoder or MODEL_ENCODERS[self.model.currentText()] is not None))
        self.finetune.set_enabled(resting)
        self.status_line.setText(self.status.text())
        if resting:
            self.plot.stop()

    def _on_status_text(self, text: str) -> None:
        if not self._closed and workers.alive(self):
            self.status_line.setText(text)

    def _on_run_done(self, finished) -> None:
        """Make the run's best checkpoint (else last.pt) the viewer's current one, and remember it."""
        if finished is None:
            return
        path = finished.best_path or finished.last_path
        if not path or checkpoint_in(path) is None:
            return
        remember_checkpoint(path)
        session_of(self.viewer).set_checkpoint(path)  # the predict widget follows it
        self.status_line.setText(f"{self.status.text()}\ncheckpoint offered for prediction: {Path(path).name} "
                                 f"in {Path(path).parent}")

    # --- closing -----------------------------------------------------------------------------
    def event(self, e) -> bool:
        # napari removes a dock by un-parenting its widget: stop training with it
        if e.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked_once = True
            elif self._docked_once:
                self._on_close()
        return super().event(e)

    def _on_close(self) -> None:
        """Stop a running training (it still writes last.pt) and detach from the widgets."""
        if self._closed:
            return
        self._closed = True
        self.plot.shutdown()
        self.runner.shutdown()

