"""Qt-free logic behind the train widget: settings → RunConfig, the status model, the plot series."""

import math

import pytest

from napari_gleason._plot_render import PlotRenderer, finite
from napari_gleason._train_series import TrainingSeries, decimate
from napari_gleason._train_settings import TrainSettings, finetune_config
from trainer.config import interval_of
from napari_gleason._train_status import (
    TrainState,
    TrainStatus,
    advice,
    format_duration,
)
from trainer import events as ev
from trainer.errors import CheckpointError, InputError, NonFiniteLossError


def settings(tmp_path, **kw):
    (tmp_path / "data").mkdir(exist_ok=True)
    return TrainSettings(data=str(tmp_path / "data"), out=str(tmp_path / "run"), **kw)


def test_settings_become_the_run_config(tmp_path):
    cfg = settings(tmp_path, model="pspnet", encoder="resnet18", gafl=False, reweight=False, iters=250,
                   batch_size=4, size=512, lr=0.005, device="cpu").to_run_config()
    assert (cfg.model.name, cfg.model.encoder) == ("pspnet", "resnet18")
    assert (cfg.loss.loss, cfg.loss.reweight) == ("focal", False)
    assert (cfg.train.iters, cfg.train.batch_size, cfg.data.size, cfg.train.lr) == (250, 4, 512, 0.005)
    assert cfg.train.val_every == cfg.train.checkpoint_every == 25  # ~10 points on the Dice plot
    assert cfg.train.out == str(tmp_path / "run") and cfg.train.init is None
    hr = settings(tmp_path, model="hrnet18", encoder="resnet50").to_run_config()
    assert hr.model.encoder is None and hr.loss.loss == "gafl" and hr.loss.reweight  # the paper's defaults
    assert settings(tmp_path, model="unet", encoder=None).to_run_config().model.encoder == "resnet34"
    assert interval_of(None, 20_000) == 1000 and interval_of(None, 5) == 1 and interval_of(7, 60) == 7
    conf = settings(tmp_path, reweight=False, confusion=True).to_run_config()
    assert conf.loss.confusion and not conf.loss.reweight
    with pytest.raises(InputError, match="not both"):
        settings(tmp_path, reweight=True, confusion=True).to_run_config()


def test_finetune_config_keeps_the_checkpoints_model_and_adds_the_corrected_core(tmp_path):
    (tmp_path / "data").mkdir()
    base = {"data": {"path": str(tmp_path / "data"), "size": 64},
            "model": {"name": "pspnet", "encoder": "resnet18"}, "loss": {"loss": "gafl", "reweight": True},
            "train": {"iters": 2, "lr": 0.01, "out": "old"}}
    corrected = [{"name": "c", "image": "c.png", "mask": "c_mask.png"}]
    cfg = finetune_config(base, checkpoint="old/best.pt", corrected=corrected, iters=300, lr=0.001, device="cpu",
                          out=tmp_path / "ft")
    assert (cfg.model.name, cfg.model.encoder, cfg.data.size) == ("pspnet", "resnet18", 64)
    assert cfg.data.corrected == corrected and cfg.train.init == "old/best.pt"
    assert (cfg.train.iters, cfg.train.lr, cfg.train.val_every) == (300, 0.001, 300)
    assert cfg.train.checkpoint_every == 30  # a crashed fine-tuning run leaves a checkpoint to resume
    with pytest.raises(InputError, match="needs the dataset"):
        finetune_config({**base, "data": {"path": str(tmp_path / "gone")}}, checkpoint="x", corrected=corrected,
                        iters=1, lr=0.1, device="cpu", out=tmp_path / "ft2")


def test_status_transitions_refuse_illegal_clicks():
    status, seen = TrainStatus(), []
    status.changed.connect(seen.append)
    assert status.request_stop() is False  # Stop before Start
    assert status.start(10) and status.state is TrainState.TRAINING
    assert status.start(10) is False  # Start while training
    assert status.request_stop() and status.request_stop() is False  # Stop twice
    status.finish(ev.RunFinished(3, True, "last.pt", None, None))
    assert status.state is TrainState.IDLE and "stopped at iteration 3" in status.text()
    assert status.start(10)
    status.finish(ev.RunFinished(10, False, "last.pt", "best.pt", 0.5, seconds=12))
    assert status.state is TrainState.DONE and status.resting
    assert status.start(10)
    status.crash("training: bad file")
    status.finish(None)  # the worker's finished signal after its error: still CRASHED
    assert status.state is TrainState.CRASHED and status.resting and "bad file" in status.text()
    assert seen == [TrainState.TRAINING, TrainState.STOPPING, TrainState.IDLE, TrainState.TRAINING,
                    TrainState.DONE, TrainState.TRAINING, TrainState.CRASHED]


def test_status_line_counts_iterations_and_estimates_the_rest():
    now = [100.0]
    status = TrainStatus(clock=lambda: now[0])
    status.start(10)
    status.on_event(ev.RunStarted("run", 0, 10, "cpu", 1, {}, ["1"], ["benign"]))
    status.on_event(ev.IterationDone(1, 10, {"total": 1.0}, 1.0, 0.0, 0.01, 1.0))  # it started at 99 s
    now[0] = 104.0
    status.on_event(ev.IterationDone(2, 10, {"total": 1.0}, 1.0, 0.0, 0.01, 1.0))
    status.on_event(ev.ValidationDone(2, {"benign": 0.7}, 0.7, True))
    assert status.seconds_per_iteration() == pytest.approx(2.5)
    assert status.eta_seconds() == pytest.approx(20.0)
    line = status.text()
    assert "iteration 2/10" in line and "ETA 20s" in line and "device cpu" in line and "0.700" in line
    assert format_duration(3725) == "1h02m" and format_duration(None) == "—"


def test_advice_says_what_to_do():
    assert "batch size" in advice(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert "Fix or remove that file" in advice(InputError("mask is 40×50, image 96×96", "/d/Maps1_T/x.png"))
    assert "/d/Maps1_T/x.png" in advice(InputError("bad", "/d/Maps1_T/x.png"))
    assert "same model and classes" in advice(CheckpointError("holds pspnet", "a.pt"))
    assert "Lower the learning rate" in advice(NonFiniteLossError("loss became nan … Lower the learning rate"))
    full = advice(OSError(28, "No space left on device", "/runs/r/last.pt"))
    assert "/runs/r/last.pt" in full and "No space left" in full and "Choose another output folder" in full


def iteration(i, total=1.0):
    return ev.IterationDone(i, 9, {"total": total, "vote": total / 2, "weight/1": 0.6, "weight/3": 0.4},
                            1 / (1 + math.tanh(i)), math.tanh(i) / (1 + math.tanh(i)), 0.01, 0.1)


def test_series_collect_every_term_lambda_weights_and_dice():
    series = TrainingSeries()
    assert not series.add(ev.Message("hello"))
    for i in (1, 2, 3):
        assert series.add(iteration(i, total=1.0 / i))
    series.add(ev.ValidationDone(3, {"benign": 0.8, "G3": math.nan}, 0.8, True))
    assert series.series("losses", "total") == ([1, 2, 3], [1.0, 0.5, pytest.approx(1 / 3)])
    assert series.names("losses") == ["total", "vote"]
    assert series.names("schedule") == ["mean weight 1", "mean weight 3", "λ1", "λ2"]
    assert series.series("dice", "mean") == ([3], [0.8])
    assert math.isnan(series.series("dice", "G3")[1][0])
    v = series.version
    series.clear()
    assert series.names("losses") == [] and series.version == v + 1


def test_decimate_keeps_the_trend_within_the_point_budget():
    xs, ys = list(range(1, 1001)), [float(i) for i in range(1, 1001)]
    dx, dy = decimate(xs, ys, 100)
    assert len(dx) == 100 and dx[-1] == 1000 and dy[0] == pytest.approx(5.5)
    assert decimate([1, 2], [3.0, 4.0], 100) == ([1, 2], [3.0, 4.0])


def test_renderer_draws_the_snapshot_it_is_given():
    series = TrainingSeries()
    for i in (1, 2):
        series.add(iteration(i))
    series.add(ev.ValidationDone(2, {"benign": 0.5}, 0.5, True))
    snap = series.snapshot()
    series.add(iteration(3))  # appended after the snapshot: not drawn yet
    renderer = PlotRenderer()
    buf, w, h = renderer.render(snap, 400, 480, x_max=9)
    assert len(buf) == w * h * 4 and (w, h) == (400, 480)
    assert renderer.shown[("losses", "total")] == ([1, 2], [1.0, 1.0])
    assert finite(renderer.shown[("dice", "mean")][1]) == [0.5]
    assert renderer.axes["losses"].get_xlim()[1] >= 9
