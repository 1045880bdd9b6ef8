"""How responsive the GUI thread is: the longest gap between ticks of a 10 ms ``QTimer``.

A timer on the GUI thread fires every 10 ms while the event loop is free; a slot that blocks (a
slow redraw, a big layer update) or a worker that starves the GUI thread (holding the GIL in a
tight Python loop) shows up as a long gap. The benchmark (``benchmarks/bench_gui.py``) and a GUI
test run it during training.
"""

from __future__ import annotations

import time

from qtpy.QtCore import QObject, Qt, QTimer

TICK_MS = 10


class GapProbe(QObject):
    def __init__(self, parent=None, tick_ms: int = TICK_MS):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self._on_tick)
        self._last: float | None = None
        self.gaps_ms: list[float] = []

    def start(self) -> None:
        self.gaps_ms, self._last = [], time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._timer.stop()
        return self.max_gap_ms

    def pause(self) -> None:
        """Stop measuring (e.g. while taking a screenshot, which blocks on purpose)."""
        self._timer.stop()

    def resume(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    @property
    def max_gap_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    def percentile(self, q: float) -> float:
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def _on_tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps_ms.append((now - self._last) * 1000)
        self._last = now
