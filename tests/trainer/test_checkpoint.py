"""Checkpoints: atomic writes, weights_only loading, refusal of code-running pickles."""

import errno
import math
import os

import pytest
import torch

from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.errors import CheckpointError, InputError


def _payload():
    return {"model_config": {"name": "x", "num_classes": 4}, "model": {"w": torch.arange(6.0)},
            "iteration": 3, "config": {"train": {"lr": 0.01, "out": "r"}}, "rng": {"torch": torch.get_rng_state()}}


def test_round_trip_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "sub dir é" / "last.pt", _payload())
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(6.0))
    assert loaded["iteration"] == 3
    # plain torch.load with weights_only=True works too: the file is plain data
    assert torch.load(path, weights_only=True)["format"] == "napari-gleason/checkpoint"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_folder_resolves_to_best_then_last(tmp_path):
    save_checkpoint(tmp_path / "last.pt", _payload())
    assert load_checkpoint(tmp_path)["iteration"] == 3
    p = _payload(); p["iteration"] = 9
    save_checkpoint(tmp_path / "best.pt", p)
    assert load_checkpoint(tmp_path)["iteration"] == 9


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(InputError, match="last.pt: cannot write the checkpoint .No space left on device.; "
                                         "the previous last.pt is kept"):
        save_checkpoint(path, {"model_config": {}, "model": {}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-gleason/checkpoint", "model": _Evil(), "model_config": {}}, path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "evil.pt" in str(info.value)


def test_truncated_and_garbage(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")


def test_foreign_and_newer_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, plain)
    with pytest.raises(CheckpointError, match="not a napari-gleason checkpoint"):
        load_checkpoint(plain)
    newer = tmp_path / "newer.pt"
    torch.save({**_payload(), "format": "napari-gleason/checkpoint", "version": 99}, newer)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(newer)


# ------------------------------------------------------ payload, older checkpoints, rebuilding
def _networks():
    from trainer.models import create_model
    from trainer.reweighting import WeightingCNN

    torch.manual_seed(0)
    model = create_model("unet", 4, encoder="resnet18")
    weighting = WeightingCNN(3, stride=32, head_kernel=1)
    return model, weighting


def test_training_payload_round_trips_and_rebuilds_the_networks(tmp_path):
    from trainer.checkpoint import networks_from_payload, training_payload
    from trainer.data.classes import GLEASON_SCHEME

    model, weighting = _networks()
    opt = torch.optim.SGD([*model.parameters(), *weighting.parameters()], lr=0.1, momentum=0.9)
    payload = training_payload(model=model, weighting=weighting, confusion=None, optimizer=opt, iteration=7,
                               best=-math.inf, best_iteration=None, config={"train": {"lr": 0.1}},
                               scheme=GLEASON_SCHEME, experts=("1", "3", "4"), input_size=64,
                               device=torch.device("cpu"))
    assert payload["best_metric"] is None and payload["confusion"] is None and payload["iteration"] == 7
    loaded = load_checkpoint(save_checkpoint(tmp_path / "last.pt", payload))  # weights_only=True
    rebuilt, w2, c2, scheme = networks_from_payload(loaded, tmp_path / "last.pt")
    assert c2 is None and scheme.names == GLEASON_SCHEME.names
    x = torch.randn(1, 3, 64, 64)
    model.eval(), rebuilt.eval(), weighting.eval(), w2.eval()
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
        assert torch.equal(weighting(x), w2(x))


def test_older_checkpoints_read_with_the_settings_they_trained_with():
    from trainer.checkpoint import LEGACY_LOSS, run_config_of, weighting_config_of
    from trainer.config import RunConfig

    # written before the authors' kernel, reduction and weighting CNN became the defaults
    old = {"config": {"loss": {"loss": "gafl", "gauss_ksize": 5, "gauss_sigma": 3.0, "reweight": True},
                      "train": {"lr": 0.01}},
           "weighting_config": {"num_experts": 3, "pretrained": False, "input_scale": 1.0}}
    cfg = RunConfig.from_dict(run_config_of(old))
    assert (cfg.loss.gauss_kernel, cfg.loss.gauss_border, cfg.loss.reduction) == ("sampled", "reflect", "pixel")
    assert (cfg.loss.weight_stride, cfg.loss.weight_head_kernel) == (32, 1)
    assert weighting_config_of(old) == {"num_experts": 3, "pretrained": False, "input_scale": 1.0,
                                        "stride": 32, "head_kernel": 1}
    assert old["config"]["loss"] == {"loss": "gafl", "gauss_ksize": 5, "gauss_sigma": 3.0, "reweight": True}
    # a config that names a setting keeps it; one without a loss section means today's defaults
    new = {"config": {"loss": {"gauss_ksize": 5, "gauss_kernel": "authors", "reduction": "authors"}}}
    filled = run_config_of(new)["loss"]
    assert filled["gauss_kernel"] == "authors" and filled["reduction"] == "authors"
    assert filled["gauss_border"] == LEGACY_LOSS["gauss_border"]  # absent: older than the key
    assert run_config_of({"config": {"train": {"lr": 0.1}}}) == {"train": {"lr": 0.1}}
    assert weighting_config_of({"weighting_config": None}) is None


def test_weights_that_do_not_fit_name_the_file(tmp_path):
    from trainer.checkpoint import check_compatible, networks_from_payload
    from trainer.data.classes import GLEASON_SCHEME

    model, weighting = _networks()
    good = {"model_config": dict(model.config), "model": model.state_dict(),
            "weighting_config": dict(weighting.config), "weighting": weighting.state_dict(),
            "scheme": GLEASON_SCHEME.to_dict()}
    wrong_classes = {**good, "model_config": {**good["model_config"], "num_classes": 5}}
    with pytest.raises(CheckpointError, match=r"weights do not fit the unet with 5 classes.*size mismatch") as info:
        networks_from_payload(wrong_classes, tmp_path / "a.pt")
    assert "a.pt" in str(info.value)
    other_head = {**good, "weighting_config": {**good["weighting_config"], "head_kernel": 3}}
    with pytest.raises(CheckpointError, match="weighting CNN weights do not fit"):
        networks_from_payload(other_head, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="checkpoint holds unet \\(resnet18\\) with 4 classes, but this run uses "
                                              "pspnet \\(resnet18\\) with 4 classes"):
        check_compatible(good, {**good["model_config"], "name": "pspnet"}, "this run")


def test_confusion_checkpoints_from_before_the_heads_read_as_the_trunk_and_vote_objective(tmp_path):
    """A checkpoint written before Zhang et al.'s heads: its confusion config has no ``form`` and its
    loss section no ``confusion_form``. It loads as the separate trunk, trains on (fine-tune, resume)
    with the objective it had, and predicts its error maps."""
    import numpy as np

    from trainer.annotators import ConfusionCNN
    from trainer.checkpoint import networks_from_payload, run_config_of, save_checkpoint
    from trainer.config import RunConfig
    from trainer.data.classes import GLEASON_SCHEME
    from trainer.prediction.predictor import load_predictor
    from trainer.models import create_model
    from trainer.prediction import predict

    torch.manual_seed(0)
    model, conf = create_model("pspnet", 4, encoder="resnet18"), ConfusionCNN(3, 4, stride=8)
    old_config = {k: v for k, v in conf.config.items() if k != "form"}
    payload = {"model_config": dict(model.config), "model": model.state_dict(), "confusion_config": old_config,
               "confusion": conf.state_dict(), "scheme": GLEASON_SCHEME.to_dict(), "experts": ["1", "3", "4"],
               "input_size": 64, "iteration": 2,
               "config": {"loss": {"loss": "focal", "gauss_ksize": 5, "confusion": True, "reweight": False,
                                   "confusion_trace": 0.01, "lambda_step": 1000}}}
    cfg = RunConfig.from_dict(run_config_of(payload))
    assert (cfg.loss.confusion_form, cfg.loss.confusion_objective, cfg.loss.confusion_nll) == ("trunk", "vote", False)
    assert cfg.loss.lambda_step == 1000 and cfg.loss.confusion_trace == 0.01
    _, _, rebuilt, _ = networks_from_payload(payload, tmp_path / "old.pt")
    assert isinstance(rebuilt, ConfusionCNN) and rebuilt.config == {**old_config, "form": "trunk"}
    save_checkpoint(tmp_path / "old.pt", payload)
    pred = load_predictor(tmp_path / "old.pt", "cpu", precision="fp32")
    assert not pred.heads
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = predict(pred, image, core="c", experts=["1", "3", "4"])
    assert sorted(out.errors) == ["1", "3", "4"] and out.confusion is not None
