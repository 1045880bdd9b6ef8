"""The review widget: the class legend, experts, consensus and disagreement, each rater's grade of
the core, the model's estimate of each expert's confusion, roughness, export for the core on screen.

The widget holds no copy of the core: it reads the image and expert layers (by role) whenever
the core on screen changes — opened by the reader, the browser, the sample data or a script —
and recomputes the derived layers in workers. Changes are coalesced with a short timer, so
loading a core with six experts (seven layer events) triggers one recomputation.

The reader only returns layer data, so napari adds a newly opened core's layers beside the last
core's: once they are in (a zero-delay timer after the new image layer arrives), this widget
removes every napari-gleason layer of the previous opening (its ``opened`` token differs), and a
layer of the same role keeps the user's visibility and opacity. A core opened from a dataset
folder or a store of several cores names it (``browse``): the dataset browser is docked on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from trainer.data.core import role_prefix

from .._layers import CoreInfo, current_core, find_layer, layer_meta, level0, role_of
from .._warmup import MODULES, prime_unit_registry, warm_imports
from .confusion import ConfusionPanel
from .consensus import ConsensusPanel
from .docking import ArrangeOnFirstShow
from .experts import ExpertsPanel
from .export import ExportPanel
from .grades import GradesPanel
from .legend import ClassLegend
from .roughness import RoughnessPanel

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

REFRESH_DELAY_MS = 150

#: napari's drawing side of a labels layer, imported ahead with the data side (:mod:`.._warmup`).
VIEWER_MODULES = ("napari._vispy.layers.labels", "napari._vispy.overlays.labels_polygon")

#: Roles whose arrival or removal means "another core" (derived layers are ours: ignore them).
_CORE_ROLES = ("image", "expert")


class ReviewWidget(ArrangeOnFirstShow, QWidget):
    #: its name in napari.yaml (docking.dock)
    display_name = "Review experts"
    #: which plugin dock it is (docking.arrange)
    dock_kind = "review"

    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        warm_imports(MODULES + VIEWER_MODULES)  # what the first opening imports, while the user picks a file
        QTimer.singleShot(0, prime_unit_registry)  # and napari's first layer would build, once idle
        self.viewer = viewer
        self.info: CoreInfo | None = None
        self._key = None
        self._image_layer = None
        self._newest = None
        self.title = QLabel("Open a core (File ▸ Open, a dataset folder, or File ▸ Open Sample ▸ napari-gleason)")
        self.title.setWordWrap(True)
        self.legend = ClassLegend()  # the labels layers' colours, named
        self.experts = ExpertsPanel(viewer)
        self.consensus = ConsensusPanel(viewer)
        self.grades = GradesPanel(viewer)  # below the agreement table: each rater's grade of the core
        self.confusion = ConfusionPanel(viewer)  # beside the pairwise agreement table: the model's view
        self.roughness = RoughnessPanel(viewer)
        self.export = ExportPanel(viewer)
        body = QWidget()
        inner = QVBoxLayout(body)
        for w in (self.title, self.experts, self.consensus, self.grades, self.confusion, self.roughness, self.export):
            inner.addWidget(w)
        inner.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.addWidget(self.legend)  # above the scrolled panels: the colours stay named whatever is in view
        outer.addWidget(scroll)
        self.setMinimumWidth(420)
        self.fit_scroll = scroll  # every panel's buttons whole, none behind the right edge
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        # Wait a moment before recomputing: a new core's first frame is drawn first, and the
        # seven layer events of one core load coalesce into one recomputation.
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._add_callbacks()
        self._schedule_refresh()

    def _add_callbacks(self) -> None:
        self._timer.timeout.connect(self._on_core_changed)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)

    @property
    def busy(self) -> bool:
        """True while anything is still being computed (tests wait on this)."""
        return (self._timer.isActive() or self.consensus.busy or self.grades.busy or self.roughness.busy
                or self.export.busy)

    def _on_layers_changed(self, event) -> None:
        role = role_of(event.value)
        if role == "image" and event.type == "inserted" and layer_meta(event.value, "opened") is not None:
            self._newest = event.value
            QTimer.singleShot(0, self._drop_previous_core)  # after napari added the rest of this core
        if role is not None and role_prefix(role) in _CORE_ROLES:
            self._schedule_refresh()

    def _drop_previous_core(self) -> None:
        """Remove the layers of every earlier opening once a new core's layers are all in."""
        newest = self._newest
        if newest is None or newest not in self.viewer.layers:
            return
        token = layer_meta(newest, "opened")
        mine = {role_of(lyr): lyr for lyr in self.viewer.layers if layer_meta(lyr, "opened") == token}
        old = [lyr for lyr in self.viewer.layers
               if role_of(lyr) is not None and layer_meta(lyr, "opened") != token]
        for layer in old:
            same = mine.get(role_of(layer))
            if same is not None:  # the user's look of this role carries over to the new core
                same.visible, same.opacity = layer.visible, layer.opacity
            self.viewer.layers.remove(layer)

    def _schedule_refresh(self, event=None) -> None:
        self._timer.start()

    def _watch_image(self, layer) -> None:
        """Follow the image layer's data: the browser swaps cores by updating it in place."""
        if layer is self._image_layer:
            return
        if self._image_layer is not None:
            self._image_layer.events.data.disconnect(self._schedule_refresh)
        self._image_layer = layer
        if layer is not None:
            layer.events.data.connect(self._schedule_refresh)

    def _on_core_changed(self) -> None:
        """Re-read the core from the layers; recompute only if it really is another core."""
        info = current_core(self.viewer)
        self._watch_image(find_layer(self.viewer, "image"))
        self.experts.refresh()
        self.confusion.set_core(None if info is None else info.name)
        self.legend.set_coding(None if info is None else info.coding)
        if info is None:
            self.info, self._key = None, None
            return
        key = (info.name, id(level0(info.image)), tuple(info.experts),
               tuple(id(level0(lyr)) for lyr in info.experts.values()))
        if key == self._key:
            return
        self.info, self._key = info, key
        self._offer_browser(info)
        h, w = level0(info.image).shape[:2]
        self.title.setText(f"<b>{info.name}</b> — {w}×{h} px, experts {', '.join(info.experts) or 'none'}")
        self.refresh_now(info)

    def _offer_browser(self, info: CoreInfo) -> None:
        """A core opened from a dataset folder or a store of several cores: dock the browser on it."""
        path = layer_meta(info.image, "browse")
        if path is None:
            return
        from .docking import dock
        from .browser import BrowserWidget

        dock(self.viewer, BrowserWidget).browse(path, current=info.name)

    def refresh_now(self, info: CoreInfo | None = None) -> None:
        """Recompute consensus, disagreement and roughness for the core on screen."""
        info = info or current_core(self.viewer)
        if info is None:
            return
        # Expert layers are read-only overlays: the worker reads their level 0 itself.
        self.consensus.compute(info, {e: level0(lyr) for e, lyr in info.experts.items()})
        self.roughness.compute(info)
        self.export.refresh(info)
