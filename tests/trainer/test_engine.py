"""The one training loop: tiny CPU runs that learn, resume exactly, stop, refuse NaN, fine-tune."""

import json
import math

import pytest
import torch

from trainer import events as ev
from trainer.checkpoint import load_checkpoint
from trainer.engine import poly_lr, train
from trainer.errors import CheckpointError, InputError, NonFiniteLossError

from tests.tiny_runs import tiny_config


def run_all(cfg, **kw):
    return list(train(cfg, **kw))


def losses_of(events):
    return [e.losses for e in events if isinstance(e, ev.IterationDone)]


def test_training_lowers_the_loss(synthetic_data, tmp_path):
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=30, val_every=30, checkpoint_every=30,
                      train__lr=0.02, loss__loss="focal", loss__reweight=False)
    events = run_all(cfg)
    totals = [l["total"] for l in losses_of(events)]
    assert len(totals) == 30
    assert sum(totals[-5:]) / 5 < 0.8 * sum(totals[:5]) / 5
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert "ValidationDone" in kinds and "CheckpointSaved" in kinds


def test_every_term_and_lambda_schedule_logged(synthetic_data, tmp_path):
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=5, lambda_step=2)
    events = run_all(cfg)
    its = [e for e in events if isinstance(e, ev.IterationDone)]
    for e in its:
        assert {"total", "vote", "weighted"} <= set(e.losses)
        assert any(k.startswith("weight/") for k in e.losses)
        n = (e.iteration - 1) // 2  # λ of the iteration index before the step
        assert e.lambda1 == pytest.approx(1 / (1 + math.tanh(n)))
        assert e.lambda2 == pytest.approx(math.tanh(n) / (1 + math.tanh(n)))
        assert e.losses["total"] == pytest.approx(e.lambda1 * e.losses["vote"] + e.lambda2 * e.losses["weighted"], rel=1e-5)
    # the run folder: config, JSON-lines log, checkpoints
    run = tmp_path / "run"
    logged = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [d["kind"] for d in logged] == [type(e).__name__ for e in events]
    assert json.loads((run / "config.json").read_text())["loss"]["loss"] == "gafl"
    last = load_checkpoint(run / "last.pt")
    assert last["iteration"] == 5 and last["weighting"] is not None
    assert (run / "best.pt").is_file()


CONFUSION = {"loss__confusion": True, "loss__reweight": False}
#: the separate trunk and this project's earlier objective, kept as options
CONFUSION_TRUNK = {**CONFUSION, "loss__weight_stride": 8, "loss__confusion_form": "trunk",
                   "loss__confusion_objective": "vote"}


@pytest.mark.parametrize("form", ["heads", "trunk"])
def test_confusion_run_logs_resumes_and_fine_tunes(synthetic_data, tmp_path, form):
    """--confusion in the one engine: its terms logged, an exact resume, a fine-tune start — the default
    (Zhang et al.'s heads and objective) and the trunk with the vote objective."""
    options = {"heads": CONFUSION, "trunk": CONFUSION_TRUNK}[form]
    full = run_all(tiny_config(synthetic_data, tmp_path / "full", iters=4, **options))
    its = [e for e in full if isinstance(e, ev.IterationDone)]
    for e in its:
        assert {"total", "vote", "noisy", "trace", "error/1", "error/3", "error/4"} <= set(e.losses)
        assert "weighted" not in e.losses
        if form == "trunk":
            expected = e.lambda1 * e.losses["vote"] + e.lambda2 * (e.losses["noisy"] + 0.01 * e.losses["trace"])
        else:  # the vote warm-up's weight falls from 1 to 0 over the first 20 % of the run; α = 0.1
            expected = e.lambda1 * e.losses["vote"] + e.losses["noisy"] + 0.1 * e.losses["trace"]
            assert e.lambda1 == pytest.approx(max(0.0, 1 - (e.iteration - 1) / (0.2 * 4))) and e.lambda2 == 1.0
        assert e.losses["total"] == pytest.approx(expected, rel=1e-5)
    assert its[-1].lambda2 > 0
    last = load_checkpoint(tmp_path / "full" / "last.pt")
    assert last["weighting"] is None and last["confusion"] is not None
    assert last["confusion_config"]["num_experts"] == 3 and last["confusion_config"]["form"] == form
    if form == "trunk":
        assert last["confusion_config"]["stride"] == 8

    part = tiny_config(synthetic_data, tmp_path / "part", iters=4, **options)
    seen = []
    for e in train(part, stop=lambda: len(seen) >= 2):
        if isinstance(e, ev.IterationDone):
            seen.append(e.losses)
    rest = losses_of(run_all(part, resume=True))
    for a, b in zip(losses_of(full), seen + rest):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6, abs=1e-7)

    tune = tiny_config(synthetic_data, tmp_path / "tune", iters=1, train__init=str(tmp_path / "full" / "last.pt"),
                       train__lr=1e-9, train__min_lr=0.0, **options)
    texts = [e.text for e in run_all(tune) if isinstance(e, ev.Message)]
    assert any("confusion network from the checkpoint" in t for t in texts)
    # the fine-tune really started from those weights (one step at a negligible rate keeps them),
    # which differ from a fresh start's
    before, after = last["confusion"], load_checkpoint(tmp_path / "tune" / "last.pt")["confusion"]
    for key in ("head.weight", "backbone.conv1.weight" if form == "trunk" else "reduce.0.weight"):
        assert torch.allclose(after[key], before[key], atol=1e-6)
    fresh = tiny_config(synthetic_data, tmp_path / "fresh", iters=1, train__lr=1e-9, train__min_lr=0.0, **options)
    run_all(fresh)
    assert not torch.allclose(load_checkpoint(tmp_path / "fresh" / "last.pt")["confusion"]["head.weight"],
                              before["head.weight"], atol=1e-6)


def test_exact_resume_gives_the_same_next_losses(synthetic_data, tmp_path):
    full = losses_of(run_all(tiny_config(synthetic_data, tmp_path / "full", iters=6)))
    part = tiny_config(synthetic_data, tmp_path / "part", iters=6)
    stop_after = 3
    seen = []
    for e in train(part, stop=lambda: len(seen) >= stop_after):
        if isinstance(e, ev.IterationDone):
            seen.append(e.losses)
        if isinstance(e, ev.RunFinished):
            assert e.stopped and e.iteration == stop_after
    assert load_checkpoint(tmp_path / "part" / "last.pt")["iteration"] == stop_after
    rest = losses_of(run_all(part, resume=True))
    assert len(rest) == 6 - stop_after
    for a, b in zip(full, seen + rest):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6, abs=1e-7)


def test_stop_is_honoured_within_one_iteration(synthetic_data, tmp_path):
    import threading

    flag = threading.Event()
    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=50)
    n = 0
    for e in train(cfg, stop=flag):
        if isinstance(e, ev.IterationDone):
            n += 1
            if n == 2:
                flag.set()
        last = e
    assert isinstance(last, ev.RunFinished) and last.stopped and last.iteration == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(synthetic_data, tmp_path):
    import re

    cfg = tiny_config(synthetic_data, tmp_path / "run", iters=2, loss__loss="focal", loss__reweight=False)
    run_all(cfg)
    cfg.train.iters, cfg.train.lr, cfg.train.checkpoint_every = 30, 1e12, 1
    with pytest.raises(NonFiniteLossError, match="last good checkpoint") as info:
        run_all(cfg, resume=True)
    nan_at = int(re.search(r"at iteration (\d+)", str(info.value)).group(1))
    kept = int(re.search(r"iteration (\d+)\) is kept", str(info.value)).group(1))
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck["iteration"] == kept < nan_at
    assert all(torch.isfinite(t).all() for t in ck["model"].values() if t.is_floating_point())


def test_fine_tune_from_checkpoint_and_refuse_other_architecture(synthetic_data, tmp_path):
    run_all(tiny_config(synthetic_data, tmp_path / "a", iters=2))
    cfg = tiny_config(synthetic_data, tmp_path / "b", iters=2, train__init=str(tmp_path / "a" / "last.pt"))
    events = run_all(cfg)
    assert any(isinstance(e, ev.Message) and "initialised" in e.text for e in events)
    other = tiny_config(synthetic_data, tmp_path / "c", iters=2, model="unet",
                        train__init=str(tmp_path / "a" / "last.pt"))
    with pytest.raises(CheckpointError, match="pspnet"):
        run_all(other)


def test_bad_options(synthetic_data, tmp_path):
    """A device this machine lacks and a missing dataset fail before anything is written, on a CPU
    machine and a CUDA one alike: one past the last CUDA index never exists."""
    missing = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    why = "does not exist" if torch.cuda.is_available() else "no CUDA device is available"
    with pytest.raises(InputError, match=why):
        run_all(tiny_config(synthetic_data, tmp_path / "r", train__device=missing))
    assert not (tmp_path / "r").exists()
    with pytest.raises(InputError, match="does not exist"):
        run_all(tiny_config(tmp_path / "does not exist", tmp_path / "r2"))
    assert not (tmp_path / "r2").exists()


def test_poly_lr():
    assert poly_lr(0.01, 0, 100, 0.9, 1e-4) == pytest.approx(0.01)
    assert poly_lr(0.01, 100, 100, 0.9, 1e-4) == pytest.approx(1e-4)
    assert poly_lr(0.01, 50, 100, 0.9, 0.0) == pytest.approx(0.01 * 0.5 ** 0.9)
