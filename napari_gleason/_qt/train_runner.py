"""Run one training at a time in a child process and keep the GUI informed.

:class:`TrainingRunner` owns what a run needs on the GUI side: the evented
:class:`~napari_gleason._train_status.TrainStatus`, the plot's
:class:`~napari_gleason._train_series.TrainingSeries`, the iteration counter and the stop flag. (No
napari ``progress`` bar: its animated status-bar indicator alone kept the GUI thread 65–75 % busy
and stalled it 115–140 ms per frame in a shown window on software OpenGL, with nothing training;
the train widget shows a plain ``QProgressBar`` that repaints once per iteration.)
The job (:func:`napari_gleason._child_run.run_in_child`, or the fine-tune job that ends in it)
launches the trainer as a child process and follows its event log in a napari worker thread, which
only reads a file and sleeps: the training itself (its GIL, its ``torch.save``, its garbage) is in
another process. Each event arrives here in a Qt slot on the GUI thread and costs O(1) (append a
point, set a counter, one line of text): the plot redraws on its own timer.

Stop sets a ``threading.Event``; the follower sends the child SIGTERM, and the trainer finishes
the iteration, writes ``last.pt`` and ends with ``RunFinished(stopped=True)``. ``worker.quit()``
would only act at the next yield, so :class:`EngineStoppingWorker` turns napari's own quit
(closing the viewer cancels running tasks) into the same stop flag, and quitting the application
sends every child SIGTERM at once (:func:`stop_all_runs`). The runner is a plain Python object, not
a child widget: it outlives a closed dock until its worker has finished, and :meth:`shutdown` cuts
it off from the widgets. A child that crashes (a traceback, the GPU out of memory) is a
notification holding the last lines of its stderr; napari keeps running.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QObject, Signal

from trainer import events as ev

from . import workers
from .._child_run import terminate_all
from .._train_series import TrainingSeries
from .._train_status import TrainState, TrainStatus, advice


class EngineStoppingWorker(GeneratorWorker):
    """A generator worker whose ``quit()`` asks the run to stop cleanly instead of abandoning it."""

    stop_event: threading.Event | None = None

    def quit(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()  # the child ends within one iteration, saving last.pt
        else:
            super().quit()


def _describe(exc: BaseException, what: str) -> str:
    return advice(workers.original(exc), what)


#: Every runner alive, so that quitting the application stops all their runs (see stop_all_runs).
_LIVE: weakref.WeakSet = weakref.WeakSet()
_QUIT_HOOKED = False


def stop_all_runs() -> None:
    """Ask every running training to stop (the application is quitting): SIGTERM to each child now,
    as the worker threads that follow them may not get to it."""
    for runner in list(_LIVE):
        runner.stop_event.set()
    terminate_all()


def _hook_quit() -> None:
    global _QUIT_HOOKED
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None and not _QUIT_HOOKED:
        app.aboutToQuit.connect(stop_all_runs)
        _QUIT_HOOKED = True


class RunnerSignals(QObject):
    """Qt signals of a runner, emitted on the GUI thread (tests wait on them with ``qtbot.waitSignal``)."""

    event = Signal(object)  # every engine event
    finished = Signal(object)  # the run ended: its RunFinished, or None after an error


class TrainingRunner:
    def __init__(self):
        self.signals = RunnerSignals()  # no Qt parent: it lives as long as the runner
        self.status = TrainStatus()
        self.series = TrainingSeries()
        self.stop_event = threading.Event()
        self.worker = None
        self.iteration = 0  # what the progress bar shows: the last iteration done, of total
        self.total = 0
        self.events: list[ev.Event] = []
        self.finished: ev.RunFinished | None = None
        self.listeners: list[Callable[[ev.Event], None]] = []
        self.what = "training"
        self._on_done: Callable[[ev.RunFinished | None], None] | None = None
        self._ui = True
        _LIVE.add(self)
        _hook_quit()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, job: Callable, *args, what: str, total: int,
              on_done: Callable[[ev.RunFinished | None], None] | None = None, **kwargs) -> bool:
        """Start ``job(*args, stop=<flag>, **kwargs)``; False (nothing started) unless resting."""
        if self.running or not self.status.start(total):
            return False
        self.stop_event = threading.Event()  # a fresh flag: an old worker still ending keeps its own
        self.series.clear()
        self.events, self.finished, self.what, self._on_done = [], None, what, on_done
        self.iteration, self.total = 0, max(int(total), 1)
        stop = self.stop_event

        class Worker(EngineStoppingWorker):
            stop_event = stop

        self.worker = workers.start(
            job, *args, what=what, stop=stop, on_yield=self._on_event,
            on_error=self._on_error, on_finish=self._on_finish, describe=_describe, worker_class=Worker, **kwargs)
        return True

    def stop(self) -> bool:
        """Ask the running job to stop after its current iteration; False if nothing is running
        or Stop was already pressed."""
        if not self.running or not self.status.request_stop():
            return False
        self.stop_event.set()
        return True

    def shutdown(self) -> None:
        """The widget is going away: stop the run (it still saves last.pt) and drop all UI links."""
        self.stop_event.set()
        self._ui = False
        self.listeners.clear()
        self._on_done = None
        for signal in (self.status.changed, self.status.text_changed):
            signal.disconnect()

    # --- slots (GUI thread) --------------------------------------------------------------------
    def _on_event(self, event: ev.Event) -> None:
        self.events.append(event)
        self.series.add(event)
        self.status.on_event(event)
        if isinstance(event, ev.RunStarted):
            self.total, self.iteration = max(event.total_iterations, 1), event.start_iteration
        elif isinstance(event, ev.IterationDone):
            self.iteration = event.iteration
        elif isinstance(event, ev.RunFinished):
            self.finished = event
        for listener in list(self.listeners):
            listener(event)
        self.signals.event.emit(event)

    def _on_error(self, exc: BaseException) -> None:
        self.status.crash(_describe(exc, self.what))

    def _on_finish(self) -> None:
        self.worker = None
        crashed = self.status.state is TrainState.CRASHED
        self.status.finish(self.finished)
        done, self._on_done = self._on_done, None
        if done is not None and not crashed and self._ui:
            done(self.finished)
        self.signals.finished.emit(None if crashed else self.finished)
