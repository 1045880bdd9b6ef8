"""Run plain (headless) functions and generators off the GUI thread, and report their errors.

Widgets snapshot their inputs on the GUI thread, pass them to :func:`start`, and touch layers
only in the ``on_yield`` / ``on_return`` slots, which Qt runs on the GUI thread. An exception in
the worker never dies silently and never becomes a traceback dialog: it is shown with
``show_error`` (an :class:`InputError` already names its file).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error

from trainer.errors import InputError

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A ``RuntimeError`` raised by a generator job, carried to the error slot. superqt's generator
    worker takes any ``RuntimeError`` for "the worker was deleted" and drops it with only a warning
    (no ``errored`` signal), and torch raises ``RuntimeError`` for most failures (CUDA out of memory
    included): the widget would stay busy forever."""

    def __init__(self, error: RuntimeError):
        super().__init__(str(error))
        self.error = error


def original(exc: BaseException) -> BaseException:
    """The job's own exception (unwraps :class:`JobFailed`)."""
    return exc.error if isinstance(exc, JobFailed) else exc


def passing_runtime_errors(func: Callable) -> Callable:
    """``func`` unchanged, or for a generator function one that re-raises ``RuntimeError`` as
    :class:`JobFailed` (see there)."""
    if not inspect.isgeneratorfunction(func):
        return func

    @functools.wraps(func)
    def job(*args, **kwargs):
        try:
            return (yield from func(*args, **kwargs))
        except RuntimeError as exc:
            raise JobFailed(exc) from exc

    return job


def error_message(exc: BaseException, what: str) -> str:
    if isinstance(exc, InputError):
        return f"{what}: {exc}"
    return f"{what} failed: {type(exc).__name__}: {exc}"


def start(
    func: Callable,
    *args,
    what: str,
    on_yield: Callable | None = None,
    on_return: Callable | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finish: Callable[[], None] | None = None,
    progress: dict | bool | None = None,
    describe: Callable[[BaseException, str], str] | None = None,
    worker_class: type | None = None,
    **kwargs,
):
    """Start ``func(*args, **kwargs)`` in a napari worker thread and return the worker.

    ``describe(exc, what)`` words the error notification (default :func:`error_message`); the
    train widget passes one that says what to do (lower the batch size, fix the named file, …).
    """

    def report(exc: BaseException) -> None:
        exc = original(exc)
        message = (describe or error_message)(exc, what)
        log.error("%s", message, exc_info=exc)
        show_error(message)
        if on_error is not None:
            on_error(exc)

    worker = create_worker(passing_runtime_errors(func), *args, _start_thread=False, _progress=progress, _ignore_errors=True,
                           _worker_class=worker_class, **kwargs)
    worker.errored.connect(report)
    if on_yield is not None and hasattr(worker, "yielded"):
        worker.yielded.connect(on_yield)
    if on_return is not None:
        worker.returned.connect(on_return)
    if on_finish is not None:
        worker.finished.connect(on_finish)
    worker.start()
    return worker


def alive(widget) -> bool:
    """False once Qt has deleted the widget (its Python wrapper may outlive it): a worker's result
    that arrives after its widget closed is dropped, not drawn into a deleted table."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True
