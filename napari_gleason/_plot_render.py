"""The training plot as a matplotlib figure rendered with Agg to an RGBA image (no Qt).

Why not draw it on the GUI thread with ``FigureCanvasQTAgg``: a full redraw of this three-panel
figure takes 130–190 ms on the 2-core CI machine when idle and 400–870 ms while the trainer runs
beside it (measured with the responsiveness probe), and any growing axis or new legend entry needs
one. Rendering the same figure in a background thread (:class:`~napari_gleason._qt.loss_plot.LossPlot`
owns that thread) keeps the GUI thread free: it only shows the finished image. Everything
matplotlib here is touched by that one thread only (the object-oriented API, no pyplot).

Panels: every loss term; λ1/λ2 (eq. 7–8) with each expert's mean learned weight; validation Dice
per class (paper colours: benign grey, G3 red, G4 green, G5 blue) and the mean (black).
"""

from __future__ import annotations

import math

from trainer.data.classes import CLASS_COLORS, GLEASON_CLASSES

from ._train_series import PANELS, decimate

DPI = 90
MAX_POINTS = 400
TITLES = {"losses": "loss terms", "schedule": "λ1, λ2 (eq. 7–8) and mean expert weight", "dice": "validation Dice"}
DICE_COLORS = {n: tuple(v / 255 for v in c) for n, c in zip(GLEASON_CLASSES, CLASS_COLORS)} | {"mean": (0, 0, 0)}


class PlotRenderer:
    def __init__(self, width: int = 440, height: int = 520):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        # fixed margins: a layout engine would re-measure every text on every draw
        self.figure.subplots_adjust(left=0.13, right=0.97, top=0.95, bottom=0.08, hspace=0.55)
        axes = self.figure.subplots(len(PANELS), 1, sharex=True)
        self.axes = dict(zip(PANELS, axes))
        for panel, ax in self.axes.items():
            ax.set_title(TITLES[panel], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
        self.axes["dice"].set_ylim(0, 1)
        self.axes["dice"].set_xlabel("iteration", fontsize=7)
        self.lines: dict[tuple[str, str], object] = {}
        self.shown: dict[tuple[str, str], tuple[list, list]] = {}  # what the last image holds

    def render(self, snapshot: dict, width: int, height: int, x_max: int | None = None) -> tuple[bytes, int, int]:
        """Draw ``snapshot`` (from :meth:`TrainingSeries.snapshot`) at ``width``×``height`` pixels.

        Returns the RGBA bytes and the image size. ``x_max`` (the run's last iteration) fixes the
        x axis so the curves grow into a stable frame.
        """
        self.figure.set_size_inches(max(width, 200) / DPI, max(height, 240) / DPI)
        shown = {}
        for panel, ax in self.axes.items():
            added = False
            for name, (xs, ys, n) in snapshot.get(panel, {}).items():
                px, py = decimate(xs[:n], ys[:n], MAX_POINTS)
                key = (panel, name)
                shown[key] = (px, py)
                line = self.lines.get(key)
                if line is None:
                    color = DICE_COLORS.get(name) if panel == "dice" else None
                    (line,) = ax.plot(px, py, "o-" if panel == "dice" else "-", ms=3, label=name, color=color,
                                      lw=1.3 if name in ("total", "mean") else 0.9)
                    self.lines[key] = line
                    added = True
                else:
                    line.set_data(px, py)
            if added:
                ax.legend(fontsize=6, loc="upper right", ncol=2, framealpha=0.6)
            ax.relim()
            ax.autoscale_view(scalex=False, scaley=panel != "dice")
        for key in [k for k in self.lines if k not in shown]:  # a new run: forget the old run's lines
            self.lines.pop(key).remove()
            legend = self.axes[key[0]].get_legend()
            if legend is not None:
                legend.remove()
        right = x_max if x_max else max((max(x) for x, _ in shown.values() if x), default=1)
        self.axes["losses"].set_xlim(0, max(right, 1) * 1.02 + (1 if right < 10 else 0))
        self.canvas.draw()
        self.shown = shown
        buf = self.canvas.buffer_rgba()
        h, w = buf.shape[:2]
        return bytes(buf), w, h


def finite(values) -> list[float | None]:
    """NaN → None, for comparing plotted values in tests."""
    return [None if (v is None or math.isnan(v)) else float(v) for v in values]
