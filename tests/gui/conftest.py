"""Fixtures for the GUI tests only (the shared ones are in tests/conftest.py)."""

from helpers_plugin import confusion_run  # noqa: F401  (a session fixture shared with tests/plugin)
