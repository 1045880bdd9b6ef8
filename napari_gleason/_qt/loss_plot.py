"""The live training plot in the dock: matplotlib, rendered off the GUI thread, shown as an image.

Events only append to a :class:`~napari_gleason._train_series.TrainingSeries`. :data:`REDRAW_HZ`
times a second the GUI thread checks whether it changed and, if so, hands a snapshot (references
and lengths, no copies) to this widget's render thread, which draws the figure with Agg
(:class:`~napari_gleason._plot_render.PlotRenderer`) and sends back a ``QImage``; the GUI thread
only swaps the pixmap. Requests coalesce: while one image is being drawn, only the newest request
waits. See :mod:`napari_gleason._plot_render` for why the figure is not drawn on the GUI thread.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from .._plot_render import PlotRenderer
from .._train_series import TrainingSeries

REDRAW_HZ = 4
MIN_WIDTH, MIN_HEIGHT = 300, 440


class _Relay(QObject):
    """Carries finished images from the render thread to the GUI thread (a queued connection)."""

    rendered = Signal(object, int)


class _RenderQueue:
    """At most one waiting request (the newest) for the render thread; plain data, no widget."""

    def __init__(self):
        self.cond = threading.Condition()
        self.pending = None
        self.closing = False
        self.busy = False

    def put(self, request) -> None:
        with self.cond:
            self.pending = request
            self.cond.notify()

    def take(self):
        """The next request, or None once closed (render thread)."""
        with self.cond:
            while self.pending is None and not self.closing:
                self.cond.wait()
            if self.closing:
                return None
            request, self.pending = self.pending, None
            self.busy = True
            return request

    def close(self, *_) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()


def _render_loop(queue: _RenderQueue, renderer: PlotRenderer, relay: _Relay) -> None:
    while (request := queue.take()) is not None:
        snapshot, version, w, h, x_max = request
        try:
            buf, iw, ih = renderer.render(snapshot, w, h, x_max)
            image = QImage(buf, iw, ih, QImage.Format.Format_RGBA8888).copy()  # own its pixels
            relay.rendered.emit(image, version)
        except RuntimeError:  # the widget was deleted while drawing: nothing to show it on
            return
        finally:
            queue.busy = False


class LossPlot(QWidget):
    def __init__(self, series: TrainingSeries, parent=None):
        super().__init__(parent)
        self.series = series
        self.x_max: int | None = None  # the run's last iteration, once known
        self.view = QLabel()
        self.view.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.view.setMinimumHeight(MIN_HEIGHT)
        QVBoxLayout(self).addWidget(self.view)
        self.redraws = 0
        self.rendered_version = -1
        self._requested = -1
        self._size = (0, 0)
        self._renderer = PlotRenderer()
        self._queue = _RenderQueue()
        self._relay = _Relay()
        self._relay.rendered.connect(self._on_rendered)
        threading.Thread(target=_render_loop, args=(self._queue, self._renderer, self._relay),
                         name="napari-gleason plot", daemon=True).start()
        self.destroyed.connect(self._queue.close)  # the queue, not the widget: safe after deletion
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / REDRAW_HZ))
        self._timer.timeout.connect(self._on_tick)
        self._timer.start()  # cheap when nothing changed: two comparisons

    def start(self, x_max: int | None = None) -> None:
        self.x_max = x_max
        self._on_tick()

    def stop(self) -> None:
        """The run ended: render its final state."""
        self._on_tick()

    @property
    def idle(self) -> bool:
        """True when the image on screen shows the series as it is now."""
        q = self._queue
        return self.rendered_version == self.series.version and not q.busy and q.pending is None

    def _on_tick(self) -> None:
        w, h = max(self.view.width(), MIN_WIDTH), max(self.view.height(), MIN_HEIGHT)  # the figure fits the dock
        if self.series.version == self._requested and (w, h) == self._size:
            return
        self._requested, self._size = self.series.version, (w, h)
        self._queue.put((self.series.snapshot(), self.series.version, w, h, self.x_max))

    def _on_rendered(self, image: QImage, version: int) -> None:
        self.view.setPixmap(QPixmap.fromImage(image))
        self.rendered_version = version
        self.redraws += 1

    def data(self, panel: str, name: str) -> tuple[list, list]:
        """What the image on screen shows for a series (tests compare it with the events)."""
        return self._renderer.shown[(panel, name)]

    def shutdown(self) -> None:
        self._timer.stop()
        self._queue.close()
