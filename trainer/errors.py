"""Exceptions that carry a message meant for the user.

The CLI turns :class:`InputError` into one line on stderr and exit code 2; the napari
plugin turns it into a notification. Messages always name the offending file.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a file, folder, value or checkpoint we cannot use."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.message = message  # without the path: for a caller that adds what happened next
        super().__init__(f"{path}: {message}" if path is not None else message)


class CheckpointError(InputError):
    """A checkpoint that cannot be loaded (corrupt, foreign pickle, other architecture)."""


class PretrainedUnavailable(InputError):
    """Pretrained weights were requested but could not be fetched (offline, no hub)."""


class CacheWarning(UserWarning):
    """A cache could not be written (full disk, read-only folder): the work goes on without it."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss; the last good checkpoint was kept."""


class CompileError(InputError):
    """``torch.compile`` could not compile the networks (no C++ compiler, an unsupported backend, …)."""
