"""With several GPUs the train widget launches torchrun and follows its event log (faked here)."""

import json
import threading
import time
from pathlib import Path

import pytest

import napari_gleason._qt.train as train_module
from napari_gleason._torchrun import follow_run
from trainer import events as ev


class FakeTorchrun:
    """Stands in for the subprocess: writes the run's events.jsonl from a thread, line by line."""

    def __init__(self, log, n_iters):
        self.code = None
        self.interrupted = False
        events = [ev.RunStarted(str(log.parent), 0, n_iters, "cuda:0", 2, {"train": 5}, ["1", "3", "4"],
                                ["benign", "G3", "G4", "G5"])]
        events += [ev.IterationDone(i, n_iters, {"total": 2.0 / i, "vote": 1.0 / i}, 0.5, 0.5, 0.01, 0.05)
                   for i in range(1, n_iters + 1)]
        events += [ev.ValidationDone(n_iters, {"benign": 0.7, "G3": 0.5, "G4": 0.4, "G5": 0.3}, 0.475, True),
                   ev.RunFinished(n_iters, False, str(log.parent / "last.pt"), None, 0.475, 1.0)]
        self.thread = threading.Thread(target=self._write, args=(log, events))
        self.thread.start()

    def _write(self, log, events):
        with open(log, "a") as fh:
            for e in events:
                if self.interrupted:
                    break
                fh.write(json.dumps(e.to_dict()) + "\n")
                fh.flush()
                time.sleep(0.01)
        self.code = 0

    def poll(self):
        return self.code

    def interrupt(self):
        self.interrupted = True

    def kill(self):
        self.code = -9


@pytest.fixture
def two_gpus(monkeypatch):
    launched = []

    def fake_job(cfg, nproc, stop=None):
        log = Path(cfg.train.out) / "events.jsonl"
        log.parent.mkdir(parents=True)
        proc = FakeTorchrun(log, cfg.train.iters)
        launched.append((cfg, nproc))
        yield ev.Message(f"torchrun on {nproc} GPUs")
        yield from follow_run(proc, log, 0, stop, poll_seconds=0.01)
        proc.thread.join()

    monkeypatch.setattr(train_module, "cuda_device_count", lambda: 2)
    monkeypatch.setattr(train_module, "torchrun_job", fake_job)
    return launched


def test_multi_gpu_run_is_launched_and_followed_like_a_threaded_one(two_gpus, train_widget, synthetic_data,
                                                                    tmp_path, run_to_end):
    viewer, w = train_widget(synthetic_data, tmp_path / "ddp run", iters=5)
    assert w.gpus.value() == 2
    w.use_torchrun.setChecked(True)
    finished = run_to_end(w, w._on_start)
    (cfg, nproc), = two_gpus
    assert nproc == 2 and cfg.model.name == "pspnet" and cfg.train.iters == 5
    assert not finished.stopped and finished.iteration == 5
    assert [e.iteration for e in w.runner.events if isinstance(e, ev.IterationDone)] == [1, 2, 3, 4, 5]
    assert w.runner.series.series("losses", "total")[0] == [1, 2, 3, 4, 5]
    assert "device cuda:0" in w.status_line.text() and w.status.state.value == "done"
