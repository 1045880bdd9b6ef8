"""What the live plot shows, accumulated from the engine's events (no Qt, no matplotlib).

Three panels: every loss term (``total``, ``vote``, ``weighted``, … as the engine names them),
the λ schedule (eq. 7–8) with the mean learned weight of each expert (``weight/<expert>``, both in
[0, 1]), and the validation Dice per class plus the mean. Each series is a pair of lists
``(iterations, values)``; adding an event is O(1), so the GUI thread can take every event while the
plot redraws on its own clock (in its own thread: :meth:`TrainingSeries.snapshot`); :func:`decimate`
thins long series for drawing.
"""

from __future__ import annotations

import math

from trainer import events as ev

PANELS = ("losses", "schedule", "dice")


class TrainingSeries:
    def __init__(self):
        self.panels: dict[str, dict[str, tuple[list[int], list[float]]]] = {p: {} for p in PANELS}
        self.version = 0  # bumps on every change: the plot redraws only when it moved

    def clear(self) -> None:
        self.panels = {p: {} for p in PANELS}
        self.version += 1

    def _add(self, panel: str, name: str, x: int, y: float) -> None:
        xs, ys = self.panels[panel].setdefault(name, ([], []))
        xs.append(int(x))
        ys.append(float("nan") if y is None else float(y))

    def add(self, event: ev.Event) -> bool:
        """Record ``event``; True if it added a point."""
        if isinstance(event, ev.IterationDone):
            for name, value in event.losses.items():
                if name.startswith("weight/"):
                    self._add("schedule", f"mean weight {name.split('/', 1)[1]}", event.iteration, value)
                else:
                    self._add("losses", name, event.iteration, value)
            self._add("schedule", "λ1", event.iteration, event.lambda1)
            self._add("schedule", "λ2", event.iteration, event.lambda2)
        elif isinstance(event, ev.ValidationDone):
            for name, value in event.dice.items():
                self._add("dice", name, event.iteration, value)
            self._add("dice", "mean", event.iteration, event.mean_dice)
        else:
            return False
        self.version += 1
        return True

    def series(self, panel: str, name: str) -> tuple[list[int], list[float]]:
        return self.panels[panel].get(name, ([], []))

    def names(self, panel: str) -> list[str]:
        return list(self.panels[panel])

    def snapshot(self) -> dict[str, dict[str, tuple[list, list, int]]]:
        """What the plot renders, handed to its render thread: each series' lists and current length.

        O(number of series): the lists are not copied. Series only ever grow (``clear`` makes new
        ones), so the render thread reads the first ``n`` points safely while the GUI thread appends.
        """
        return {p: {name: (xs, ys, len(xs)) for name, (xs, ys) in d.items()} for p, d in self.panels.items()}


def decimate(xs: list, ys: list, max_points: int = 400) -> tuple[list, list]:
    """At most ``max_points`` points: the mean of each run of consecutive points (keeps the trend)."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    step = math.ceil(n / max_points)
    out_x, out_y = [], []
    for i in range(0, n, step):
        chunk = [y for y in ys[i:i + step] if not math.isnan(y)]
        out_x.append(xs[min(i + step, n) - 1])
        out_y.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    return out_x, out_y
