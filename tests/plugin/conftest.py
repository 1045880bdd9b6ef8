"""Fixtures for the plugin tests that need no viewer (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_plugin import confusion_run  # noqa: F401  (a session fixture shared with tests/gui)


@pytest.fixture
def rng():
    return np.random.default_rng(0)

