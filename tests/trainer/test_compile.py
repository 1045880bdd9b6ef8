"""Optional torch.compile: same losses as eager, checkpoints without ``_orig_mod.`` prefixes that resume
and predict as before, and a compiler failure as one line with exit code 2."""

from __future__ import annotations

import pytest
from tests.tiny_runs import tiny_config

from trainer import events as ev
from trainer.checkpoint import load_checkpoint
from trainer.cli import _overrides, build_parser, main
from trainer.config import RunConfig, merge
from trainer.engine import train
from trainer.errors import InputError
from trainer.prediction.predictor import load_predictor


def _losses(events):
    return [e.losses for e in events if isinstance(e, ev.IterationDone)]


def test_compiled_run_matches_eager_and_checkpoints_stay_plain(synthetic_data, tmp_path):
    # aot_eager traces forward and backward like inductor does, without a C++ build (fast on CPU)
    eager = _losses(train(tiny_config(synthetic_data, tmp_path / "eager", iters=3)))
    cfg = tiny_config(synthetic_data, tmp_path / "compiled", iters=3, train__compile=True,
                      train__compile_backend="aot_eager")
    compiled = _losses(train(cfg))
    assert len(compiled) == len(eager) == 3
    for a, b in zip(eager, compiled):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6)
    ck = load_checkpoint(tmp_path / "compiled" / "last.pt")
    plain = load_checkpoint(tmp_path / "eager" / "last.pt")
    for net in ("model", "weighting"):
        assert not any("_orig_mod" in k for k in ck[net])
        assert list(ck[net]) == list(plain[net])
    assert ck["config"]["train"]["compile"] is True
    load_predictor(tmp_path / "compiled" / "last.pt", "cpu")  # predict loads it as any checkpoint
    cfg.train.iters = 4
    assert len(_losses(train(cfg, resume=True))) == 1  # resume, compiled again


def test_compile_failure_is_one_line_and_exit_2(synthetic_data, tmp_path, capsys):
    from torch._dynamo import register_backend

    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler found\nsecond line of compiler noise")

    register_backend(broken, name="napari_gleason_test_broken")
    args = ["train", "--data", str(synthetic_data), "--model", "pspnet", "--encoder", "resnet18", "--size", "64",
            "--iters", "2", "--device", "cpu", "--no-reweight", "--out", str(tmp_path / "run")]
    assert main(args + ["--compile", "--compile-backend", "napari_gleason_test_broken"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: torch.compile failed (backend 'napari_gleason_test_broken')")
    assert "RuntimeError: no C++ compiler found" in err[0] and "second line" not in err[0]
    assert not (tmp_path / "run" / "last.pt").exists()

    assert main(args + ["--compile", "--compile-backend", "no-such-backend"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "unknown torch.compile backend 'no-such-backend'" in err[0] and "aot_eager" in err[0]


def _config_from(argv):
    a = build_parser().parse_args(["train", "--data", "d", *argv])
    return RunConfig.from_dict(merge({}, _overrides(a)))


def test_cli_flags_reach_the_config():
    cfg = _config_from([])
    assert cfg.train.compile is False and cfg.train.compile_backend == "inductor"
    assert cfg.data.augment_device == "auto" and cfg.data.cache_dir is None
    assert _config_from(["--compile"]).train.compile == "default"
    assert _config_from(["--compile", "max-autotune"]).train.compile == "max-autotune"
    assert _config_from(["--compile", "off"]).train.compile is False
    assert _config_from(["--compile-backend", "eager"]).train.compile_backend == "eager"
    cfg = _config_from(["--augment-device", "device", "--cache-dir", "/tmp/c"])
    assert cfg.data.augment_device == "device" and cfg.data.cache_dir == "/tmp/c"
    with pytest.raises(SystemExit):
        _config_from(["--compile", "fastest"])
    with pytest.raises(InputError, match="train.compile"):
        RunConfig.from_dict({"train": {"compile": "fastest"}})



def _ddp_worker(rank, world, port, data, out, results):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    cfg = tiny_config(data, out, iters=2, val_every=100, checkpoint_every=100, train__compile=True,
                      train__compile_backend="aot_eager", data__augment_device="device")
    finished = list(train(cfg))[-1]  # run to the end: the engine then leaves the process group
    assert isinstance(finished, ev.RunFinished)
    results[rank] = finished.extra["param_checksum"]


@pytest.mark.slow
def test_ddp_of_compiled_modules_keeps_ranks_in_sync(synthetic_data, tmp_path):
    """Inner modules compiled, then DDP-wrapped (two gloo processes), with device augmentation."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.Manager().dict()
    mp.start_processes(_ddp_worker, args=(2, port, str(synthetic_data), str(tmp_path / "ddp"), results),
                       nprocs=2, join=True, start_method="spawn")
    assert set(results.keys()) == {0, 1} and results[0] == results[1]
    ck = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert not any("_orig_mod" in k or k.startswith("module.") for k in ck["model"])
