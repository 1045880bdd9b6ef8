"""Roughness panel: the paper's attention map, eq. (5), with live λa, λb and Gaussian size/σ.

The map comes from the trainer's torch-free eq. (5) (:func:`trainer.roughness.roughness_map`,
held equal to the loss's torch version by the tests), so it is exactly the ``W_heat`` the GAF loss
(eq. 6) weights pixels with, and drawing it does not load torch into the napari process. By default it is computed
where the loss computes it: on the core resized to the model's input size (1024² in the paper,
§3.2), and drawn over the full-size image with the matching scale. "full resolution" runs eq. (5)
on the original pixels instead (seconds on a 5120² core).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox

from trainer.roughness import HeatmapParams

from .._layers import CoreInfo, level0, set_layer
from . import workers

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

MODEL_SIZE = 1024
#: The paper's λa, λb, Gaussian size and σ (§3.2): the trainer's torch-free defaults.
_PAPER = HeatmapParams()
LAMBDA_A, LAMBDA_B, KSIZE, SIGMA = _PAPER.lambda_a, _PAPER.lambda_b, _PAPER.ksize, _PAPER.sigma
#: Spin boxes fire on every step of a held arrow key; wait this long for the value to settle.
DEBOUNCE_MS = 250


@dataclass(frozen=True)
class RoughnessParams(HeatmapParams):
    """Eq. (5)'s settings and the size the widget computes the map at."""

    size: int | None = MODEL_SIZE  # None: full resolution


def roughness_job(image: np.ndarray, params: RoughnessParams) -> tuple[np.ndarray, RoughnessParams]:
    """Headless: eq. (5) on ``image`` (uint8 H×W×3), resized to ``params.size`` first if set."""
    from trainer.resample import resize_image
    from trainer.roughness import roughness_map

    image = np.asarray(image)
    if params.size is not None and image.shape[:2] != (params.size, params.size):
        image = resize_image(image, params.size)  # the trainer's resize: what the network sees
    kw = asdict(params)
    kw.pop("size")
    return roughness_map(image, **kw), params


def _roughness_with_range(image: np.ndarray, params: RoughnessParams):
    """:func:`roughness_job` plus the colour range (min, 99.5th percentile), also off the GUI thread."""
    heat, params = roughness_job(image, params)
    lo, hi = float(heat.min()), float(np.percentile(heat, 99.5))
    return heat, params, (lo, hi if hi > lo else lo + 1.0), float(heat.max())


class RoughnessPanel(QGroupBox):
    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Roughness (attention map, eq. 5)", parent)
        self.viewer = viewer
        self.info: CoreInfo | None = None
        self.params = RoughnessParams()
        self._worker = None
        self._pending = False
        self._generation = 0
        self.lambda_a = self._double(0.0, 1000.0, LAMBDA_A, 5.0, "λa: weight of |I − Gauss(I)|")
        self.lambda_b = self._double(0.0, 100.0, LAMBDA_B, 0.5, "λb: the floor every pixel gets")
        self.ksize = QSpinBox()
        self.ksize.setRange(1, 31)
        self.ksize.setSingleStep(2)  # OpenCV's Gaussian needs an odd kernel size
        self.ksize.setValue(KSIZE)
        self.sigma = self._double(0.1, 50.0, SIGMA, 0.5, "σ of the Gaussian")
        self.resolution = QComboBox()
        self.resolution.addItems([f"model input ({MODEL_SIZE}², as the loss sees it)", "full resolution"])
        self.status = QLabel("")
        form = QFormLayout(self)
        form.addRow("λa", self.lambda_a)
        form.addRow("λb", self.lambda_b)
        form.addRow("Gaussian size", self.ksize)
        form.addRow("Gaussian σ", self.sigma)
        form.addRow("computed on", self.resolution)
        form.addRow(self.status)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._add_callbacks()

    @staticmethod
    def _double(lo: float, hi: float, value: float, step: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(value)
        box.setToolTip(tip)
        return box

    def _add_callbacks(self) -> None:
        for box in (self.lambda_a, self.lambda_b, self.ksize, self.sigma):
            box.valueChanged.connect(self._timer.start)
        self.resolution.currentIndexChanged.connect(self._timer.start)
        self._timer.timeout.connect(self._on_params_changed)

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._timer.isActive()

    def read_params(self) -> RoughnessParams:
        ksize = self.ksize.value() | 1  # force odd even if typed
        size = MODEL_SIZE if self.resolution.currentIndex() == 0 else None
        return RoughnessParams(lambda_a=self.lambda_a.value(), lambda_b=self.lambda_b.value(), ksize=ksize,
                               sigma=self.sigma.value(), size=size)

    # --- handlers ----------------------------------------------------------------------------
    def compute(self, info: CoreInfo) -> None:
        self.info = info
        self._on_params_changed()

    def _on_params_changed(self) -> None:
        """Snapshot the parameters and the image, then run eq. (5) in a worker."""
        self._timer.stop()
        if self.info is None:
            return
        self.params = self.read_params()
        if self._worker is not None:  # one job at a time; the latest parameters run next
            self._pending = True
            return
        self._generation += 1
        gen = self._generation
        self.status.setText("computing …")
        self._worker = workers.start(
            _roughness_with_range, level0(self.info.image), self.params, what=f"roughness map of {self.info.name}",
            on_return=lambda result: self._on_ready(gen, result), on_finish=self._on_finished,
        )

    def _on_finished(self) -> None:
        self._worker = None
        if self._pending:
            self._pending = False
            self._on_params_changed()

    def _on_ready(self, gen: int, result) -> None:
        heat, params, limits, top = result
        if gen != self._generation or self.info is None or self._pending:
            return
        image = self.info.image
        h, w = level0(image).shape[:2]
        factor = np.array([h / heat.shape[0], w / heat.shape[1]])
        scale = np.asarray(image.scale[-2:]) * factor
        # a model pixel covers `factor` image pixels; its centre sits (factor-1)/2 pixels in
        translate = np.asarray(image.translate[-2:]) + (factor - 1) / 2 * np.asarray(image.scale[-2:])
        # the colour range comes from the worker: napari computes none on the GUI thread
        set_layer(self.viewer, "roughness", heat, core=self.info.name, scheme=self.info.scheme,
                  scale=tuple(scale), translate=tuple(translate), contrast_limits=limits)
        where = "full resolution" if params.size is None else f"{params.size}² model input"
        self.status.setText(f"λa={params.lambda_a:g}, λb={params.lambda_b:g}, size {params.ksize}, "
                            f"σ={params.sigma:g} on the {where}; range {limits[0]:.2f}–{top:.2f}")
