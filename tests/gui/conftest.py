"""GUI fixtures: a napari viewer (headless under pytest-xvfb), notifications, waiting for workers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The hand-made cores and datasets live beside the plain plugin tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin"))


@pytest.fixture
def two_expert_dataset(tmp_path):
    from helpers_plugin import make_two_expert_dataset

    return make_two_expert_dataset(tmp_path / "gleason data")


@pytest.fixture
def notes():
    """Every napari notification shown during the test (severity, message)."""
    from napari.utils.notifications import notification_manager

    got = []

    def keep(notification):
        got.append(notification)

    notification_manager.notification_ready.connect(keep)
    yield got
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture
def wait_idle(qtbot):
    """Wait until a widget's workers are done (their results land in Qt slots)."""

    def wait(widget, timeout: int = 60_000):
        qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)

    return wait
