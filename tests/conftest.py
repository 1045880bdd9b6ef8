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
