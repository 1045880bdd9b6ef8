"""Training and fine-tuning in a child process: the one launch path of the GUI (headless, no Qt, no torch).

A run in the napari process stalled the GUI thread (``torch.save`` and the training loop holding the
GIL, full garbage collections over napari's objects). Now the GUI only launches and follows:

- :func:`launch` writes the run's configuration as JSON into a fresh *launch folder* (a temporary
  folder: a run that fails before it starts leaves nothing in its output folder) and starts
  ``python -m trainer train --config <json>`` for one device, or the same command under ``torchrun``
  (``python -m torch.distributed.run --standalone --nproc_per_node K -m trainer …``) for K GPUs. The
  child runs in its own session at a lower CPU priority (the GUI first); a CPU run leaves one core
  to the GUI (``OMP_NUM_THREADS``). Its stdout and stderr go to files in the launch folder.
- :func:`follow_run` tails ``<run>/events.jsonl`` (the engine writes every event there, rank 0 only,
  one flushed JSON line each) with :class:`EventFollower` and yields the engine's typed events until
  the process ends. Stop is SIGTERM to the trainer (or to torchrun, which passes it on once): it
  finishes the iteration, writes ``last.pt`` and ends; a process still alive after a grace period
  is killed with its whole process group. A child that dies without its ``RunFinished`` becomes
  the error the CLI meant: exit code 2 → :class:`InputError`, 3 → :class:`NonFiniteLossError`,
  anything else (a traceback, the GPU out of memory, a kill) → :class:`ChildRunError` with the last
  lines of its stderr.
- :func:`terminate_all` stops every child still running (the application quits; also at exit), so
  nothing keeps training unseen. GPU memory is the child's: it is freed when the child ends.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

from trainer import events as ev
from trainer.atomic import atomic_write
from trainer.errors import InputError, NonFiniteLossError

POLL_SECONDS = 0.2
GRACE_SECONDS = 30.0
NICE = 10  # the child's CPU priority below the GUI's (Linux: +10 of 19)
TAIL_LINES = 12


def child_command(config_path: str | Path, nproc: int = 1, python: str = sys.executable) -> list[str]:
    """The trainer's CLI on ``config_path``: directly for one device, under torchrun for ``nproc`` > 1."""
    cli = ["-m", "trainer", "train", "--config", str(config_path)]
    if int(nproc) <= 1:
        return [python, *cli]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(int(nproc)), *cli]


class EventFollower:
    """Tail a JSON-lines event log: each :meth:`poll` returns the events of the lines completed since."""

    def __init__(self, path: str | Path, offset: int = 0):
        self.path = Path(path)
        self.offset = int(offset)
        self._partial = b""

    def poll(self) -> list[ev.Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []  # the run has not opened its log yet
        self.offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")  # the last piece is incomplete (or empty)
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                out.append(ev.event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                out.append(ev.Message(f"unreadable line in {self.path.name}: {exc}", level="warning"))
        return out


class Process(Protocol):
    def poll(self) -> int | None: ...
    def interrupt(self) -> None: ...
    def kill(self) -> None: ...
    def stderr_tail(self, lines: int = TAIL_LINES) -> str: ...


class ChildRunError(RuntimeError):
    """The training process ended without finishing its run, and not for bad input."""

    def __init__(self, code: int, tail: str, stderr: Path | None, saved: tuple[int, Path] | None = None,
                 followed: bool = False):
        how = (f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.Signals._value2member_map_
               else f"exited with code {code}")
        where = f" ({stderr})" if stderr else ""
        if saved is not None:
            kept = f" Its checkpoint of iteration {saved[0]} is kept ({saved[1]}): resume the run from it."
        elif followed:
            kept = " It had written no checkpoint, so there is nothing to resume: Start begins again."
        else:
            kept = ""
        super().__init__(f"the training process {how} before its run finished.{kept} The last lines of its "
                         f"error output{where}:\n{tail or '(empty)'}")
        self.code, self.tail, self.stderr, self.saved = code, tail, stderr, saved


_LIVE: set = set()
_LIVE_LOCK = threading.Lock()


def live_children() -> list[ChildProcess]:
    """The launched children that have not ended yet."""
    with _LIVE_LOCK:
        return [c for c in _LIVE if c.popen.poll() is None]


def terminate_all() -> None:
    """Ask every running child to stop (SIGTERM: it still writes last.pt)."""
    for child in live_children():
        child.interrupt()


atexit.register(terminate_all)


class ChildProcess:
    """A launched trainer: its own session, stdout/stderr in ``folder``, at a lower CPU priority."""

    def __init__(self, cmd: list[str], folder: Path, env: dict | None = None):
        self.cmd, self.folder = cmd, Path(folder)
        self.stdout_path, self.stderr_path = self.folder / "stdout.log", self.folder / "stderr.log"
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                          start_new_session=True)
        try:  # threads and processes the child starts later inherit it
            os.setpriority(os.PRIO_PROCESS, self.popen.pid, NICE)
        except (AttributeError, OSError):
            pass
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            with _LIVE_LOCK:
                _LIVE.discard(self)
        return code

    def interrupt(self) -> None:
        """SIGTERM to the trainer (or torchrun) only: data-loader workers and DDP ranks are its to end."""
        try:
            os.kill(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            with open(self.stderr_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 64 * 1024))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _child_env(cfg) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # where ``trainer`` is, installed or not
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    device = str(cfg.train.device)
    torch = sys.modules.get("torch")  # already imported for the device list: ask it; else assume a GPU
    on_cpu = device == "cpu" or (device == "auto" and torch is not None and not torch.cuda.is_available())
    if on_cpu and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))  # one core left to the GUI
    return env


def launch(cfg, nproc: int = 1, python: str = sys.executable) -> tuple[ChildProcess, Path, int]:
    """Write ``cfg`` (a RunConfig) into a launch folder and start its child; returns
    (process, the run's event log, the log's size before the run)."""
    cfg.data.path = str(Path(cfg.data.path).resolve())
    cfg.train.out = str(Path(cfg.train.out).resolve())
    if cfg.train.init:
        cfg.train.init = str(Path(cfg.train.init).resolve())
    try:
        folder = Path(tempfile.mkdtemp(prefix="napari-gleason-run-"))
    except OSError as exc:  # a full or read-only temporary folder: a notification, not a traceback
        raise InputError(f"cannot make the run's launch folder ({exc.strerror or exc})", tempfile.gettempdir()) from exc
    config_path = folder / "config.json"
    with atomic_write(config_path, "w", what="the run's configuration") as f:
        f.write(json.dumps(cfg.to_dict(), indent=2))
    log = Path(cfg.train.out) / "events.jsonl"
    offset = log.stat().st_size if log.exists() else 0  # a failed earlier attempt may have left lines
    proc = ChildProcess(child_command(config_path, nproc, python), folder, _child_env(cfg))
    return proc, log, offset


def exit_error(code: int, tail: str, stderr: Path | None, saved: tuple[int, Path] | None = None,
               followed: bool = False) -> Exception:
    """The exception the CLI's exit ``code`` stands for (its ``error:`` line says what); a crash
    says which checkpoint it left (``saved``: iteration and path of the last ``last.pt`` written)
    or, when the run was ``followed`` from its start, that it left none."""
    said = next((line[len("error: "):] for line in reversed(tail.splitlines()) if line.startswith("error: ")), None)
    if code == 2 and said:
        return InputError(said)
    if code == 3 and said:
        return NonFiniteLossError(said)
    return ChildRunError(code, tail, stderr, saved, followed)


def follow_run(proc: Process, log: str | Path, offset: int = 0, stop: threading.Event | None = None,
               poll_seconds: float = POLL_SECONDS, grace_seconds: float = GRACE_SECONDS):
    """Yield the run's events until ``proc`` exits; stop it when ``stop`` is set.

    A run that exits without its ``RunFinished`` after Stop ends with a synthesised, stopped
    ``RunFinished`` (the last checkpoint written is kept); without Stop it raises what the exit
    code means (:func:`exit_error`).
    """
    follower = EventFollower(log, offset)
    finished: ev.RunFinished | None = None
    last_iteration, run_dir = 0, Path(log).parent
    saved: tuple[int, Path] | None = None
    stop_sent_at: float | None = None
    while True:
        code = proc.poll()  # read the exit code first: lines written before it are then all there
        for event in follower.poll():
            if isinstance(event, ev.IterationDone):
                last_iteration = event.iteration
            elif isinstance(event, ev.CheckpointSaved) and event.which == "last":
                saved = (event.iteration, Path(event.path))
            elif isinstance(event, ev.RunStarted) and event.start_iteration and saved is None:
                saved = (event.start_iteration, Path(event.run_dir) / "last.pt")  # a resumed run's start
            elif isinstance(event, ev.RunFinished):
                finished = event
            yield event
        if code is not None:
            break
        if stop is not None and stop.is_set():
            if stop_sent_at is None:
                proc.interrupt()
                stop_sent_at = time.monotonic()
            elif time.monotonic() - stop_sent_at > grace_seconds:
                proc.kill()
        time.sleep(poll_seconds)
    if finished is not None:
        return
    if stop_sent_at is not None:
        best = run_dir / "best.pt"
        yield ev.Message("the training process was stopped; the last checkpoint it wrote is kept")
        yield ev.RunFinished(last_iteration, True, str(run_dir / "last.pt"), str(best) if best.exists() else None,
                             None)
        return
    raise exit_error(code, proc.stderr_tail(), getattr(proc, "stderr_path", None), saved, followed=offset == 0)


def run_in_child(cfg, nproc: int = 1, stop: threading.Event | None = None, python: str = sys.executable):
    """Worker generator: launch ``cfg`` (on ``nproc`` GPUs under torchrun when > 1) and follow it.

    The launch folder (config, stdout, stderr) is removed after a clean end and kept otherwise.
    """
    proc, log, offset = launch(cfg, nproc, python)
    where = f"torchrun on {nproc} GPUs" if nproc > 1 else "a child process"
    yield ev.Message(f"training in {where} (pid {proc.pid}); its output: {proc.folder}")
    try:
        yield from follow_run(proc, log, offset, stop)
    except BaseException:
        if proc.poll() is None:  # the follower itself was abandoned: never leave the child behind
            proc.interrupt()
        raise
    if proc.poll() == 0:
        shutil.rmtree(proc.folder, ignore_errors=True)
