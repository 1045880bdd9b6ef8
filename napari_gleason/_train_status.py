"""The training status the train widget shows and its buttons follow (evented, no Qt).

States: ``IDLE`` (nothing ran, or a run was stopped), ``TRAINING``, ``STOPPING`` (Stop pressed;
the engine finishes the iteration, saves ``last.pt`` and ends), ``DONE`` (ran to the end),
``CRASHED`` (an error; a notification says what to do). ``IDLE``, ``DONE`` and ``CRASHED`` are
the *resting* states: Start is enabled there and Stop is not. Illegal requests (Stop while
resting, Stop twice, Start while running) are refused by returning ``False``, never by raising:
they are clicks, not bugs.

The status also digests the engine's events into what the status line says: iteration, speed,
ETA, device, best Dice. :func:`advice` turns an exception into a message with what to do.
"""

from __future__ import annotations

import math
import time
from enum import Enum

from psygnal import Signal

from trainer import events as ev
from trainer.errors import CheckpointError, InputError, NonFiniteLossError


class TrainState(str, Enum):
    IDLE = "idle"
    TRAINING = "training"
    STOPPING = "stopping"
    DONE = "done"
    CRASHED = "crashed"


RESTING = (TrainState.IDLE, TrainState.DONE, TrainState.CRASHED)


class TrainStatus:
    changed = Signal(object)  # the new TrainState
    text_changed = Signal(str)  # the status line

    def __init__(self, clock=time.perf_counter):
        self.clock = clock  # tests pass a fake one
        self.state = TrainState.IDLE
        self.iteration = 0
        self.total = 0
        self.start_iteration = 0
        self.device = ""
        self.best_dice: float | None = None
        self.message = ""
        self.last_event: ev.Event | None = None
        self._t_first: float | None = None

    @property
    def resting(self) -> bool:
        return self.state in RESTING

    def _set(self, state: TrainState, message: str = "") -> None:
        self.state, self.message = state, message
        self.changed.emit(state)
        self.text_changed.emit(self.text())

    # --- requests ----------------------------------------------------------------------------
    def start(self, total: int = 0) -> bool:
        if not self.resting:
            return False
        self.iteration, self.total, self.start_iteration = 0, int(total), 0
        self.device, self.best_dice, self.last_event, self._t_first = "", None, None, None
        self._set(TrainState.TRAINING, "starting …")
        return True

    def request_stop(self) -> bool:
        """Stop pressed: only a running training can be asked to stop, and only once."""
        if self.state is not TrainState.TRAINING:
            return False
        self._set(TrainState.STOPPING, "stopping after this iteration …")
        return True

    def finish(self, finished: ev.RunFinished | None) -> None:
        """The worker ended without an error: DONE if it ran to the end, IDLE if it was stopped."""
        if self.state is TrainState.CRASHED:
            return
        if finished is None or finished.stopped:
            at = f" at iteration {finished.iteration}" if finished else ""
            self._set(TrainState.IDLE, f"stopped{at}; last.pt kept")
        else:
            self._set(TrainState.DONE, f"done: {finished.iteration} iterations in {finished.seconds:.0f} s")

    def crash(self, message: str) -> None:
        self._set(TrainState.CRASHED, message)

    # --- events ------------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        self.last_event = event
        if isinstance(event, ev.RunStarted):
            self.device, self.total = event.device, event.total_iterations
            self.iteration = self.start_iteration = event.start_iteration
            self.message = ""
        elif isinstance(event, ev.IterationDone):
            if self._t_first is None:  # time from the first iteration on: setup is not training speed
                self._t_first = self.clock() - event.seconds
                self.start_iteration = event.iteration - 1
            self.iteration, self.total = event.iteration, event.total_iterations
        elif isinstance(event, ev.ValidationDone) and not math.isnan(event.mean_dice):
            self.best_dice = max(self.best_dice or -math.inf, event.mean_dice)
        elif isinstance(event, ev.Message):
            self.message = event.text
        else:
            return
        self.text_changed.emit(self.text())

    def seconds_per_iteration(self) -> float | None:
        done = self.iteration - self.start_iteration
        if self._t_first is None or done <= 0:
            return None
        return (self.clock() - self._t_first) / done

    def eta_seconds(self) -> float | None:
        spi = self.seconds_per_iteration()
        return None if spi is None else spi * max(self.total - self.iteration, 0)

    def text(self) -> str:
        parts = [self.state.value]
        if self.total:
            parts.append(f"iteration {self.iteration}/{self.total}")
        spi, eta = self.seconds_per_iteration(), self.eta_seconds()
        if spi is not None and self.state in (TrainState.TRAINING, TrainState.STOPPING):
            parts.append(f"{spi:.2f} s/it, ETA {format_duration(eta)}")
        if self.device:
            parts.append(f"device {self.device}")
        if self.best_dice is not None:
            parts.append(f"best mean Dice {self.best_dice:.3f}")
        line = " · ".join(parts)
        return f"{line}\n{self.message}" if self.message else line


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def advice(exc: BaseException, what: str = "training") -> str:
    """A one-paragraph notification: what went wrong and what to do about it."""
    from ._child_run import ChildRunError

    text = " ".join(str(exc).split())
    if _is_cuda_oom(exc):
        said = f"\n{exc.tail}" if isinstance(exc, ChildRunError) else ""
        return (f"{what}: the GPU ran out of memory. Lower the batch size or the input size, pick a smaller "
                f"model, or train on the CPU (slow).{said}")
    if isinstance(exc, ChildRunError):  # a traceback: its last lines, as the child wrote them
        return f"{what} failed: {exc}"
    if isinstance(exc, NonFiniteLossError):
        return f"{what}: {text}"  # the engine's message already says what was kept and what to try
    if isinstance(exc, CheckpointError):
        return f"{what}: {text}. Choose a checkpoint of the same model and classes, or none."
    if isinstance(exc, InputError):
        return f"{what}: {text}. Fix or remove that file (or choose other data) and start again."
    if isinstance(exc, OSError) and exc.filename:  # read-only or full disk, e.g. writing the run folder
        return (f"{what}: {exc.filename}: cannot write there ({exc.strerror or text}). Choose another output "
                "folder (or free some space) and start again.")
    return f"{what} failed: {type(exc).__name__}: {text}"


def _is_cuda_oom(exc: BaseException) -> bool:
    """The GPU ran out of memory (the child's stderr says so; the GUI does not import torch for this)."""
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
