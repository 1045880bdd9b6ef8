"""Following a child run through its event log (a fake log written by a thread; no GPU, no child needed).

The real child (``python -m trainer train``) is exercised by tests/napari_gleason/_qt/test_gui_train.py."""

import json
from pathlib import Path
import sys
import threading
import time

import pytest

from napari_gleason._child_run import ChildRunError, EventFollower, child_command, exit_error, follow_run
from napari_gleason._train_status import advice
from trainer import events as ev
from trainer.errors import InputError, NonFiniteLossError

EVENTS = [ev.RunStarted("run", 0, 3, "cuda:0", 2, {"train": 4}, ["1", "3"], ["benign", "G3"]),
          *(ev.IterationDone(i, 3, {"total": 1.0 / i}, 0.5, 0.5, 0.01, 0.2) for i in (1, 2, 3)),
          ev.ValidationDone(3, {"benign": 0.9, "G3": float("nan")}, 0.9, True),
          ev.CheckpointSaved(3, "run/best.pt", "best"),
          ev.RunFinished(3, False, "run/last.pt", "run/best.pt", 0.9, 1.5)]


def line(event) -> bytes:
    return (json.dumps(event.to_dict()) + "\n").encode()


class FakeProcess:
    """A 'torchrun' whose life is decided by the test: exits when told or when interrupted."""

    def __init__(self, exit_on_interrupt=True, stderr=""):
        self.code = None
        self.stderr = stderr
        self.interrupted = 0
        self.killed = 0
        self.exit_on_interrupt = exit_on_interrupt

    def poll(self):
        return self.code

    def interrupt(self):
        self.interrupted += 1
        if self.exit_on_interrupt:
            self.code = 130

    def kill(self):
        self.killed += 1
        self.code = -9

    def stderr_tail(self, lines=12):
        return "\n".join(self.stderr.splitlines()[-lines:])


def writer(path, chunks, proc=None, pause=0.02, exit_code=0):
    """Append ``chunks`` to ``path`` from a thread (splitting lines mid-way), then end ``proc``."""

    def run():
        with open(path, "ab") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(pause)
        if proc is not None:
            proc.code = exit_code

    t = threading.Thread(target=run)
    t.start()
    return t


def test_one_launch_path_the_cli_alone_or_under_torchrun():
    assert child_command("/r/cfg.json", 1, python="/py") == ["/py", "-m", "trainer", "train", "--config", "/r/cfg.json"]
    cmd = child_command("/r/cfg.json", 4, python="/py")
    assert cmd == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                   "-m", "trainer", "train", "--config", "/r/cfg.json"]
    assert child_command("c.json", 2)[0] == child_command("c.json")[0] == sys.executable


def test_follower_rebuilds_events_from_half_written_lines(tmp_path):
    log = tmp_path / "events.jsonl"
    follower = EventFollower(log)
    assert follower.poll() == []  # no log yet: nothing, no error
    data = b"".join(line(e) for e in EVENTS[:3])
    cut = len(line(EVENTS[0])) + 7  # the second line arrives in two pieces
    log.write_bytes(data[:cut])
    assert follower.poll() == [EVENTS[0]]
    with open(log, "ab") as fh:
        fh.write(data[cut:])
    assert follower.poll() == EVENTS[1:3]
    assert follower.poll() == []


def test_follow_run_yields_every_event_while_a_thread_writes_them(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(line(ev.Message("an older run in the same folder")))
    offset = log.stat().st_size
    data = b"".join(line(e) for e in EVENTS)
    chunks = [data[i:i + 37] for i in range(0, len(data), 37)]
    proc = FakeProcess()
    t = writer(log, chunks, proc, pause=0.005)
    got = list(follow_run(proc, log, offset, poll_seconds=0.01))
    t.join()
    assert [type(e) for e in got] == [type(e) for e in EVENTS]
    assert got[1:4] == EVENTS[1:4] and got[-1] == EVENTS[-1]
    assert got[4].dice["benign"] == 0.9 and got[4].dice["G3"] != got[4].dice["G3"]  # NaN survives


def test_stop_interrupts_and_ends_with_a_stopped_run(tmp_path):
    log = tmp_path / "events.jsonl"
    proc = FakeProcess()
    stop = threading.Event()
    t = writer(log, [line(e) for e in EVENTS[:3]], pause=0.01)
    got = []
    for event in follow_run(proc, log, 0, stop, poll_seconds=0.01):
        got.append(event)
        if isinstance(event, ev.IterationDone):
            stop.set()
    t.join()
    assert proc.interrupted == 1 and proc.killed == 0
    assert isinstance(got[-1], ev.RunFinished) and got[-1].stopped
    assert got[-1].iteration == max(e.iteration for e in got if isinstance(e, ev.IterationDone))
    assert got[-1].last_path.endswith("last.pt")


def test_a_process_that_ignores_stop_is_killed_after_the_grace_period(tmp_path):
    proc = FakeProcess(exit_on_interrupt=False)
    stop = threading.Event()
    stop.set()
    got = list(follow_run(proc, tmp_path / "events.jsonl", 0, stop, poll_seconds=0.01, grace_seconds=0.05))
    assert proc.interrupted == 1 and proc.killed == 1
    assert got[-1].stopped


TRACEBACK = "\n".join(["Traceback (most recent call last):", *(f'  File "x.py", line {i}' for i in range(20)),
                       "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"])


def test_a_run_that_dies_without_finishing_is_an_error_with_its_stderr(tmp_path):
    log = tmp_path / "events.jsonl"
    proc = FakeProcess(stderr=TRACEBACK)
    t = writer(log, [line(EVENTS[0]), line(EVENTS[1])], proc, exit_code=1)
    got = []
    with pytest.raises(ChildRunError, match="exited with code 1") as info:
        for event in follow_run(proc, log, 0, poll_seconds=0.01):
            got.append(event)
    t.join()
    assert got == EVENTS[:2]  # everything it logged before it died was shown
    # the last 12 lines of its stderr, the out-of-memory line last; and what to do about it
    assert info.value.tail.splitlines() == TRACEBACK.splitlines()[-12:]
    text = advice(info.value, "training")
    assert "Lower the batch size" in text and text.endswith("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "line 7" not in text and "line 19" in text
    assert "killed by SIGKILL" in str(exit_error(-9, "", None))


def test_a_crash_says_whether_it_left_a_checkpoint_to_resume(tmp_path):
    """A run killed before its first checkpoint has nothing to resume, and the widget says so; one
    killed later names the checkpoint it left."""
    log = tmp_path / "events.jsonl"
    proc = FakeProcess()
    t = writer(log, [line(EVENTS[0]), line(EVENTS[1])], proc, exit_code=-9)
    with pytest.raises(ChildRunError) as info:
        list(follow_run(proc, log, 0, poll_seconds=0.01))
    t.join()
    assert info.value.saved is None and "no checkpoint, so there is nothing to resume" in str(info.value)

    log2 = tmp_path / "events2.jsonl"
    proc = FakeProcess()
    saved = ev.CheckpointSaved(2, "run/last.pt", "last")
    t = writer(log2, [line(EVENTS[0]), line(EVENTS[1]), line(EVENTS[2]), line(saved), line(EVENTS[3])], proc,
               exit_code=-9)
    with pytest.raises(ChildRunError) as info:
        list(follow_run(proc, log2, 0, poll_seconds=0.01))
    t.join()
    assert info.value.saved == (2, Path("run/last.pt"))
    assert "checkpoint of iteration 2 is kept (run/last.pt)" in str(info.value)
    assert "killed by SIGKILL" in str(info.value)


def test_the_clis_exit_codes_become_its_errors():
    bad = exit_error(2, "some warning\nerror: /d/x.png: mask is 10×10, image 40×48", None)
    assert isinstance(bad, InputError) and str(bad) == "/d/x.png: mask is 10×10, image 40×48"
    assert "Fix or remove that file" in advice(bad)
    nan = exit_error(3, "error: loss became nan at iteration 4", None)
    assert isinstance(nan, NonFiniteLossError) and "iteration 4" in str(nan)
    assert isinstance(exit_error(2, "usage: no error line", None), ChildRunError)


def test_an_unreadable_line_becomes_a_warning_not_a_crash(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"{not json\n" + line(EVENTS[0]))
    got = EventFollower(log).poll()
    assert got[0].level == "warning" and got[1] == EVENTS[0]
