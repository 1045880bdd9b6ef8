"""The one pyramid rule, for the review store's levels and the exported OME-TIFFs.

Each level halves the one before: images and float maps by the mean of 2×2 blocks (floor of odd
sizes; integer images rounded; NaN stays NaN), labels by taking every other pixel (ceil of odd
sizes) so that they keep their values. NumPy only.
"""

from __future__ import annotations

import numpy as np


def level_shapes(h: int, w: int, n_levels: int, kind: str) -> list[tuple[int, int]]:
    """The ``(h, w)`` of each level under the pyramid rule (``kind``: ``labels`` or anything else)."""
    shapes = [(h, w)]
    for _ in range(n_levels - 1):
        ph, pw = shapes[-1]
        shapes.append(((ph + 1) // 2, (pw + 1) // 2) if kind == "labels" else (ph // 2, pw // 2))
    return shapes


def halve(block: np.ndarray, kind: str) -> np.ndarray:
    """The next level of ``block`` (``…×h×w``) under the pyramid rule."""
    if kind == "labels":
        return np.ascontiguousarray(block[..., ::2, ::2])
    h, w = block.shape[-2] // 2 * 2, block.shape[-1] // 2 * 2
    integer = np.issubdtype(block.dtype, np.integer)
    b = block[..., :h, :w].astype(np.uint32 if integer else np.float32)
    total = b[..., ::2, ::2] + b[..., 1::2, ::2] + b[..., ::2, 1::2] + b[..., 1::2, 1::2]
    return ((total + 2) // 4 if integer else total / 4).astype(block.dtype)


def pyramid(level0: np.ndarray, kind: str, n_levels: int | None = None, min_size: int = 512) -> list[np.ndarray]:
    """In-memory pyramid of ``level0`` (``…×h×w``): ``n_levels`` levels, or until the smaller side
    is at most ``min_size``."""
    levels = [np.ascontiguousarray(level0)]
    while (len(levels) < n_levels) if n_levels is not None else min(levels[-1].shape[-2:]) > min_size:
        levels.append(halve(levels[-1], kind))
    return levels
