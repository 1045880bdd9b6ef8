"""DDP with two CPU processes (gloo): both ranks end with identical weights, and they differ from
a single-process run on the same seed (each rank saw other samples, so gradients were averaged)."""

import socket

import pytest
import torch.multiprocessing as mp

from tests.paths import SAMPLES
from tests.tiny_runs import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, out, results, annotator="reweight"):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from trainer import events as ev
    from trainer.engine import train

    cfg = tiny_config(data, out, iters=3, val_every=100, checkpoint_every=100, **ANNOTATORS[annotator])
    finished = [e for e in train(cfg) if isinstance(e, ev.RunFinished)][0]
    results[rank] = finished.extra["param_checksum"]


ANNOTATORS = {"reweight": {}, "confusion": {"loss__confusion": True, "loss__reweight": False,
                                             "loss__weight_stride": 8}}


@pytest.mark.slow
@pytest.mark.parametrize("annotator", list(ANNOTATORS))
def test_ddp_two_cpu_processes_keep_identical_weights(synthetic_data, tmp_path, annotator):
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results = manager.dict()
    mp.start_processes(_worker, args=(2, _free_port(), str(synthetic_data), str(tmp_path / "ddp"), results, annotator),
                       nprocs=2, join=True, start_method="spawn")
    assert set(results.keys()) == {0, 1}
    assert results[0] == results[1]
    # only rank 0 writes the run folder
    assert (tmp_path / "ddp" / "last.pt").is_file()

    from trainer import events as ev
    from trainer.engine import train

    single = tiny_config(synthetic_data, tmp_path / "single", iters=3, val_every=100, checkpoint_every=100,
                         **ANNOTATORS[annotator])
    one = [e for e in train(single) if isinstance(e, ev.RunFinished)][0].extra["param_checksum"]
    assert one != results[0]


@pytest.mark.slow
def test_torchrun_cli_two_processes(tmp_path):
    """The user's path: `torchrun --nproc_per_node 2 -m trainer train …` (gloo on CPU)."""
    import json
    import os
    import subprocess
    import sys

    sample = SAMPLES
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "trainer", "train", "--data", str(sample), "--model", "pspnet", "--encoder",
           "resnet18", "--size", "64", "--iters", "2", "--device", "cpu", "--weight-stride", "8",
           "--out", str(tmp_path / "run")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("finished at iteration 2") == 1  # only rank 0 reports
    events = [json.loads(l) for l in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    started = events[0]
    assert started["kind"] == "RunStarted" and started["world_size"] == 2
    assert sum(e["kind"] == "IterationDone" for e in events) == 2


def _stop_worker(rank, world, port, data, out, results):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from trainer import events as ev
    from trainer.engine import train

    cfg = tiny_config(data, out, iters=6, val_every=100, checkpoint_every=100)
    done = {"n": 0}

    def stop():  # only rank 1 is asked to stop, after its second iteration
        return rank == 1 and done["n"] >= 2

    for e in train(cfg, stop=stop):
        if isinstance(e, ev.IterationDone):
            done["n"] = e.iteration
        if isinstance(e, ev.RunFinished):
            results[rank] = (e.iteration, e.stopped, e.extra["param_checksum"])


@pytest.mark.slow
def test_a_stop_seen_by_one_rank_stops_every_rank_at_the_same_iteration(synthetic_data, tmp_path):
    """Without agreement rank 0 would wait forever in the next step's all-reduce."""
    ctx = mp.get_context("spawn")
    results = ctx.Manager().dict()
    mp.start_processes(_stop_worker, args=(2, _free_port(), str(synthetic_data), str(tmp_path / "ddp"), results),
                       nprocs=2, join=True, start_method="spawn")
    assert results[0] == results[1]
    iteration, stopped, _ = results[0]
    assert stopped and iteration == 2

    from trainer.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["iteration"] == 2
