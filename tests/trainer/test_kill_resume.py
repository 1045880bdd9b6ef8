"""kill -9 during training, also in the middle of a checkpoint write: last.pt and best.pt stay loadable
and --resume continues with the same next losses as an uninterrupted run (seeded, CPU)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from trainer import events as ev
from trainer.checkpoint import load_checkpoint
from trainer.engine import train

from tests.tiny_runs import tiny_config

ITERS = 6

# The child slows every fsync of a checkpoint so that the kill can land mid-write. For the best.pt
# case validation is made to improve every time, so best.pt is rewritten at every iteration
# (validation changes no weights and draws no random numbers, so the losses stay those of the
# reference run).
CHILD = textwrap.dedent("""
    import os, sys, time
    real = os.fsync
    def slow_fsync(fd):
        time.sleep(0.4)
        real(fd)
    os.fsync = slow_fsync  # trainer.atomic's, which writes the checkpoints
    if os.environ.get("ALWAYS_BETTER"):
        import trainer.training_setup as ts
        calls = []
        def better(self):
            calls.append(1)
            return {}, float(len(calls))
        ts.TrainingSetup.validate = better
    from trainer.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _cli_args(data, out, val_every):
    return ["train", "--data", str(data), "--model", "pspnet", "--encoder", "resnet18", "--size", "64",
            "--iters", str(ITERS), "--device", "cpu", "--out", str(out), "--checkpoint-every", "1",
            "--val-every", str(val_every), "--lambda-step", "2", "--weight-stride", "8"]  # as tiny_config


@pytest.mark.slow
@pytest.mark.parametrize("which", ["last", "best"])
def test_kill_during_checkpoint_write_then_resume(synthetic_data, tmp_path, which):
    val_every = 3 if which == "last" else 1
    ref_cfg = tiny_config(synthetic_data, tmp_path / "ref", iters=ITERS, checkpoint_every=1, val_every=val_every)
    reference = [e.losses["total"] for e in train(ref_cfg) if isinstance(e, ev.IterationDone)]

    run = tmp_path / "killed"
    # the child computes with as many threads as this process: a different count changes the
    # order of the convolutions' sums, and "exact" resume is compared to 1e-6
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(torch.get_num_threads()))
    if which == "best":
        env["ALWAYS_BETTER"] = "1"
    child = subprocess.Popen([sys.executable, "-c", CHILD, *_cli_args(synthetic_data, run, val_every)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        killed_mid_write = False
        while time.time() < deadline and child.poll() is None:
            tmps = list(run.glob(f".{which}.pt.*.tmp")) if run.exists() else []
            if tmps and (run / f"{which}.pt").exists():  # a second one is being written over the first
                os.kill(child.pid, signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.02)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert killed_mid_write, "the child finished before it could be killed"
    assert child.returncode == -signal.SIGKILL

    last = load_checkpoint(run / "last.pt")  # loadable despite the kill mid-write
    done = int(last["iteration"])
    assert 1 <= done < ITERS
    if which == "best":
        best = load_checkpoint(run / "best.pt")  # the previous best, whole
        assert 1 <= int(best["iteration"]) <= done + 1

    cfg = tiny_config(synthetic_data, run, iters=ITERS, checkpoint_every=1, val_every=val_every)
    resumed = [e.losses["total"] for e in train(cfg, resume=True) if isinstance(e, ev.IterationDone)]
    assert len(resumed) == ITERS - done
    assert resumed == pytest.approx(reference[done:], rel=1e-6, abs=1e-7)
    # the partial temp file of the killed write is never mistaken for a checkpoint
    assert load_checkpoint(run / "last.pt")["iteration"] == ITERS
    assert load_checkpoint(run / "best.pt")["iteration"] >= 1
