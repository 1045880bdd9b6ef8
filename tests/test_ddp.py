"""DDP with two CPU processes (gloo): both ranks end with identical weights, and they differ from
a single-process run on the same seed (each rank saw other samples, so gradients were averaged)."""

import socket

import pytest
import torch.multiprocessing as mp

from test_engine import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, out, results):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from trainer import events as ev
    from trainer.engine import train

    cfg = tiny_config(data, out, iters=3, val_every=100, checkpoint_every=100)
    finished = [e for e in train(cfg) if isinstance(e, ev.RunFinished)][0]
    results[rank] = finished.extra["param_checksum"]


@pytest.mark.slow
def test_ddp_two_cpu_processes_keep_identical_weights(synthetic_data, tmp_path):
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    results = manager.dict()
    mp.start_processes(_worker, args=(2, _free_port(), str(synthetic_data), str(tmp_path / "ddp"), results),
                       nprocs=2, join=True, start_method="spawn")
    assert set(results.keys()) == {0, 1}
    assert results[0] == results[1]
    # only rank 0 writes the run folder
    assert (tmp_path / "ddp" / "last.pt").is_file()

    from trainer import events as ev
    from trainer.engine import train

    single = tiny_config(synthetic_data, tmp_path / "single", iters=3, val_every=100, checkpoint_every=100)
    one = [e for e in train(single) if isinstance(e, ev.RunFinished)][0].extra["param_checksum"]
    assert one != results[0]
