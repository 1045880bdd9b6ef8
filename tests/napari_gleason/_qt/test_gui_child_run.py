"""The train widget's child process, played by a small fake (no torch: it starts in a fraction of a
second): the multi-GPU launch, a crash, closing the viewer.

The fake reads the run's config JSON like the trainer's CLI, writes the engine's events to
``<out>/events.jsonl`` (one line per iteration, every 50 ms), and on SIGTERM finishes its iteration,
writes ``last.pt`` (a marker here) and a stopped ``RunFinished``, and exits 0 — what
``python -m trainer train`` does. ``CRASH=1``: after two iterations it writes a traceback ending in
CUDA's out-of-memory line to stderr and exits 1. The real child: tests/napari_gleason/_qt/test_gui_train.py.
"""

import os
import sys
import textwrap

import pytest

import napari_gleason._child_run as child_run
import napari_gleason._qt.train as train_module
from napari_gleason._child_run import live_children
from napari_gleason._train_status import TrainState
from trainer import events as ev

FAKE = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    from trainer import events as ev
    cfg = json.loads(Path(sys.argv[1]).read_text())
    out, iters = Path(cfg["train"]["out"]), cfg["train"]["iters"]
    out.mkdir(parents=True, exist_ok=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    log = open(out / "events.jsonl", "a")
    def emit(e):
        log.write(json.dumps(e.to_dict()) + "\\n")
        log.flush()
    emit(ev.RunStarted(str(out), 0, iters, "cuda:0", int(sys.argv[2]), {"train": 5}, ["1", "3", "4"],
                       ["benign", "G3", "G4", "G5"]))
    i = 0
    while i < iters and not stop:
        time.sleep(0.05)
        i += 1
        emit(ev.IterationDone(i, iters, {"total": 2.0 / i, "vote": 1.0 / i}, 0.5, 0.5, 0.01, 0.05))
        if os.environ.get("CRASH") and i == 2:
            for k in range(30):
                print(f'  File "engine.py", line {k}, in _train', file=sys.stderr)
            print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB", file=sys.stderr)
            sys.exit(1)
    (out / "last.pt").write_text(str(i))
    emit(ev.RunFinished(i, bool(stop), str(out / "last.pt"), None, None, 1.0))
""")


@pytest.fixture
def fake_child(monkeypatch):
    """Every launch runs FAKE instead of the trainer; returns the (config path, nproc) of each launch."""
    launched = []

    def command(config_path, nproc=1, python=sys.executable):
        launched.append((config_path, nproc))
        return [python, "-c", FAKE, str(config_path), str(nproc)]

    monkeypatch.setattr(child_run, "child_command", command)
    return launched


def test_multi_gpu_run_takes_the_same_launch_path(fake_child, monkeypatch, train_widget, synthetic_data, tmp_path,
                                                  run_to_end):
    monkeypatch.setattr(train_module, "cuda_device_count", lambda: 2)
    viewer, w = train_widget(synthetic_data, tmp_path / "ddp run", iters=5)
    assert w.gpus.value() == 2
    w.use_torchrun.setChecked(True)
    finished = run_to_end(w, w.start_training)
    (config_path, nproc), = fake_child
    assert nproc == 2
    assert not finished.stopped and finished.iteration == 5
    assert [e.iteration for e in w.runner.events if isinstance(e, ev.IterationDone)] == [1, 2, 3, 4, 5]
    assert w.runner.series.series("losses", "total")[0] == [1, 2, 3, 4, 5]
    assert "device cuda:0" in w.status_line.text() and w.status.state is TrainState.DONE
    assert not os.path.exists(config_path), "the launch folder goes after a clean end"


def test_a_crash_is_a_notification_with_the_last_lines_of_stderr(fake_child, monkeypatch, train_widget,
                                                                 synthetic_data, tmp_path, run_to_end, notes):
    from napari.utils.notifications import NotificationSeverity

    monkeypatch.setenv("CRASH", "1")
    viewer, w = train_widget(synthetic_data, tmp_path / "run", iters=50)
    assert run_to_end(w, w.start_training) is None
    assert w.status.state is TrainState.CRASHED and w._start.isEnabled() and not w._stop.isEnabled()
    (note,) = [n for n in notes if n.severity is NotificationSeverity.ERROR]
    text = note.message
    assert "ran out of memory" in text and "Lower the batch size" in text
    assert text.endswith("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert 'line 29, in _train' in text and 'line 10, in _train' not in text  # the last lines only
    (config_path, _), = fake_child
    assert os.path.exists(config_path), "after a crash the launch folder (stderr.log) is kept"
    assert not live_children()
    # napari keeps running: the viewer still takes layers, and Start works again
    viewer.add_points([[1, 1]])
    assert len(viewer.layers) == 1 and w.status.resting


def test_closing_the_viewer_stops_the_child_which_writes_its_last_checkpoint(fake_child, train_widget,
                                                                             synthetic_data, tmp_path, qtbot):
    viewer, w = train_widget(synthetic_data, tmp_path / "run", iters=100_000)
    assert w.start_training()
    qtbot.waitUntil(lambda: w.status.iteration >= 1, timeout=30_000)
    (child,) = live_children()
    viewer.close()
    qtbot.waitUntil(lambda: child.popen.poll() is not None, timeout=30_000)
    assert child.popen.returncode == 0, "SIGTERM: it stopped at an iteration boundary, not killed"
    last = int((tmp_path / "run" / "last.pt").read_text())
    assert 1 <= last < 100_000
