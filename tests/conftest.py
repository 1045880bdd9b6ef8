"""Shared fixtures. GUI fixtures (make_napari_viewer) come from napari's pytest plugin."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm/SMP must fail at once, not after 40 s

import pytest


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A small synthetic Gleason-layout dataset (known truth, six biased experts), 96² cores."""
    from trainer.synthetic import write_dataset

    out = tmp_path_factory.mktemp("synthetic") / "gleason synthetic"
    write_dataset(out, cores=10, size=96, seed=7)
    return out


@pytest.fixture(scope="session")
def tiny_run(synthetic_data, tmp_path_factory):
    """A 2-iteration PSPNet-r18 run at 64² with GAFL + re-weighting: its folder holds last.pt/best.pt."""
    from trainer.config import RunConfig
    from trainer.engine import train

    cfg = RunConfig()
    cfg.data.path = str(synthetic_data)
    cfg.data.size = 64
    cfg.model.name, cfg.model.encoder = "pspnet", "resnet18"
    cfg.train.iters, cfg.train.val_every, cfg.train.checkpoint_every = 2, 2, 2
    cfg.train.device = "cpu"
    cfg.train.out = str(tmp_path_factory.mktemp("runs") / "tiny run")
    for _ in train(cfg):
        pass
    return cfg.train.out
