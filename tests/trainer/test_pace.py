"""Runs sized to the machine (trainer.pace): the projection before the first iteration, intervals
that scale with --iters, and a stop that acts inside an iteration and keeps an exact state."""

from __future__ import annotations

import torch

from tests.tiny_runs import tiny_config
from trainer import events as ev
from trainer.checkpoint import load_checkpoint
from trainer.config import interval_of
from trainer.engine import train
from trainer.pace import format_duration, project_step_seconds, projection_message


def test_projection_message_names_the_sizes_that_fit_on_a_cpu():
    cpu = torch.device("cpu")
    # The case: ~395 s per iteration at 1024², 10k iterations on 2 cores.
    msg = projection_message(395.0, 10_000, 1024, cpu)
    assert "45.7 days" in msg and "more than" in msg
    assert "--iters 9" in msg  # 3600 / 395
    assert "--size 128 --iters" in msg  # even 128² (395/64 s) does not fit 10k iterations in an hour
    short = projection_message(0.2, 1000, 256, cpu)
    assert short.startswith("projected run time: 3 min") and "more than" not in short
    gpu = projection_message(395.0, 10_000, 1024, torch.device("cuda"))
    assert "more than" not in gpu  # the budget is the CPU's
    fits = projection_message(2.0, 5000, 512, cpu)  # 2.8 h; 256² is 4× cheaper: 42 min
    assert "--size 256 (42 min)" in fits
    assert project_step_seconds(0.1, 1024, 256) == 0.1 * 16 * 3
    assert [format_duration(s) for s in (45, 600, 7200, 5 * 86400)] == ["45 s", "10 min", "2.0 h", "5.0 days"]


def test_intervals_scale_with_a_short_run(synthetic_data, tmp_path):
    assert interval_of(None, 10_000) == 1000 and interval_of(None, 60) == 6 and interval_of(250, 60) == 250
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=6)
    cfg.train.val_every = cfg.train.checkpoint_every = None  # the CLI's default
    events = list(train(cfg))
    saved = [e.iteration for e in events if isinstance(e, ev.CheckpointSaved) and e.which == "last"]
    assert saved == [1, 2, 3, 4, 5, 6]  # 6 // 10 -> every iteration; a kill leaves one to resume
    projected = [e.text for e in events if isinstance(e, ev.Message) and e.text.startswith("projected")]
    assert len(projected) == 1 and "6 iterations at 64²" in projected[0]
    assert any(isinstance(e, ev.Message) and e.text.startswith("remaining run time") for e in events)


def _stop_after(calls_after_arming: int):
    """A stop signal that turns on at its ``calls_after_arming``-th call after ``arm()``: the engine
    checks it once after an iteration, once before the next, then before every module's forward."""
    state = {"armed": False, "calls": 0}

    def should_stop() -> bool:
        if state["armed"]:
            state["calls"] += 1
        return state["calls"] >= calls_after_arming

    return should_stop, state


def test_a_stop_inside_an_iteration_acts_at_once_and_keeps_the_last_complete_state(synthetic_data, tmp_path):
    ref_cfg = tiny_config(synthetic_data, tmp_path / "ref", iters=2, checkpoint_every=100)
    list(train(ref_cfg))
    ref = load_checkpoint(tmp_path / "ref" / "last.pt")

    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=2, checkpoint_every=100)
    should_stop, state = _stop_after(40)  # deep inside the second iteration's forward
    events = []
    for event in train(cfg, stop=should_stop):
        events.append(event)
        if isinstance(event, ev.IterationDone) and event.iteration == 1:
            state["armed"] = True
    finished = events[-1]
    assert isinstance(finished, ev.RunFinished) and finished.stopped and finished.iteration == 1
    assert state["calls"] == 40  # it acted at the first check that saw the flag
    assert not [e for e in events if isinstance(e, ev.IterationDone) and e.iteration == 2]
    assert any(isinstance(e, ev.Message) and "stopped inside iteration 2" in e.text for e in events)
    kept = load_checkpoint(tmp_path / "run" / "last.pt")
    assert kept["iteration"] == 1
    # Resuming gives what the uninterrupted run gave: the dropped forward changed no batch-norm
    # statistic and no random state.
    list(train(tiny_config(synthetic_data, tmp_path / "run", iters=2, checkpoint_every=100), resume=True))
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed["iteration"] == 2
    for key, value in ref["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_a_stop_inside_the_backward_also_acts(synthetic_data, tmp_path):
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=2, checkpoint_every=100)
    should_stop, state = _stop_after(10**9)
    events = []
    gen = train(cfg, stop=should_stop)
    for event in gen:
        events.append(event)
        if isinstance(event, ev.Message) and event.text.startswith("projected"):
            state["armed"] = True  # count the checks of the whole first iteration
        if isinstance(event, ev.IterationDone) and event.iteration == 1:
            per_iteration = state["calls"]
    # The forward's checks come first; the last ones are the gradients' (one per parameter).
    cfg2 = tiny_config(synthetic_data, tmp_path / "run2", iters=2, checkpoint_every=100)
    should_stop, state = _stop_after(per_iteration - 5)
    state["armed"] = True
    events = list(train(cfg2, stop=should_stop))
    assert events[-1].stopped and events[-1].iteration == 0
    assert any(isinstance(e, ev.Message) and "stopped inside iteration 1" in e.text for e in events)
