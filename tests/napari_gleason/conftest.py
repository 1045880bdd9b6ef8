"""Fixtures for the plugin tests that need no viewer (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)

