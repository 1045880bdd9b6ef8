"""Fixtures for the plugin tests that need no viewer."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_plugin import make_two_expert_dataset


@pytest.fixture
def two_expert_dataset(tmp_path):
    return make_two_expert_dataset(tmp_path / "gleason data")


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to napari's show_error by the reader (no viewer needed)."""
    got: list[str] = []
    import napari_gleason._reader as reader

    monkeypatch.setattr(reader, "show_error", got.append)
    return got


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    """Recent checkpoints go to a temporary folder, never to the user's ~/.config."""
    monkeypatch.setenv("NAPARI_GLEASON_HOME", str(tmp_path / "napari-gleason settings"))
