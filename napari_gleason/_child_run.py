"""Multi-GPU runs from the GUI: launch the CLI under ``torchrun`` and follow its event log.

The engine writes every event as one JSON line to ``<run>/events.jsonl`` (rank 0 only, flushed per
line). :class:`EventFollower` tails that file from where it ended at launch (a run folder may hold
an older run's lines), buffers a half-written last line, and rebuilds the events with
:func:`trainer.events.event_from_dict`; :func:`follow_run` yields them until the process ends, so
the widget handles a subprocess run exactly like a threaded one. Stop sends SIGINT to the process
group (torchrun passes it to its workers) and kills it if it has not ended after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from trainer import events as ev

POLL_SECONDS = 0.2
GRACE_SECONDS = 30.0


def torchrun_command(config_path: str | Path, nproc: int, python: str = sys.executable) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node K -m trainer train --config cfg.json``."""
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(int(nproc)),
            "-m", "trainer", "train", "--config", str(config_path)]


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


class TorchrunProcess:
    """A launched ``torchrun``: its own process group, output in ``<run>/torchrun.log``."""

    def __init__(self, cmd: list[str], log: Path, env: dict | None = None):
        self.log = log
        with open(log, "ab") as fh:
            self.popen = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)

    def poll(self) -> int | None:
        return self.popen.poll()

    def interrupt(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def launch(cfg, nproc: int, python: str = sys.executable) -> tuple[TorchrunProcess, Path, int]:
    """Write ``cfg`` beside the run and start torchrun; returns (process, event log, log offset)."""
    out = Path(cfg.train.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg.data.path = str(Path(cfg.data.path).resolve())
    cfg.train.out = str(out)
    config_path = out / "gui_config.json"
    config_path.write_text(json.dumps(cfg.to_dict(), indent=2))
    log = out / "events.jsonl"
    offset = log.stat().st_size if log.exists() else 0
    proc = TorchrunProcess(torchrun_command(config_path, nproc, python), out / "torchrun.log")
    return proc, log, offset


def follow_run(proc: Process, log: str | Path, offset: int = 0, stop: threading.Event | None = None,
               poll_seconds: float = POLL_SECONDS, grace_seconds: float = GRACE_SECONDS):
    """Yield the run's events until ``proc`` exits; stop it when ``stop`` is set.

    A run that exits without its ``RunFinished`` after Stop ends with a synthesised, stopped
    ``RunFinished`` (the last checkpoint written is kept); without Stop it is an error naming the
    exit code and the log to read.
    """
    follower = EventFollower(log, offset)
    finished: ev.RunFinished | None = None
    last_iteration, run_dir = 0, Path(log).parent
    stop_sent_at: float | None = None
    while True:
        code = proc.poll()  # read the exit code first: lines written before it are then all there
        for event in follower.poll():
            if isinstance(event, ev.IterationDone):
                last_iteration = event.iteration
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
        yield ev.Message("torchrun stopped; the last checkpoint it wrote is kept")
        yield ev.RunFinished(last_iteration, True, str(run_dir / "last.pt"), str(best) if best.exists() else None,
                             None)
        return
    raise RuntimeError(f"torchrun exited with code {code} before the run finished; see {run_dir / 'torchrun.log'}")


def torchrun_job(cfg, nproc: int, stop=None):
    """Worker generator: launch ``cfg`` on ``nproc`` GPUs and follow it."""
    proc, log, offset = launch(cfg, nproc)
    yield ev.Message(f"torchrun on {nproc} GPUs, log {proc.log}")
    yield from follow_run(proc, log, offset, stop)
