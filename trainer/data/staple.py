"""The one STAPLE of the code base: SimpleITK's multi-label STAPLE (Warfield et al. 2004; Rohlfing
et al. 2004), an EM estimate of the truth and of each expert's confusion matrix, as a class map.

Used by the review widget (consensus beside the vote) and by the Table-2 benchmark (training on the
STAPLE consensus). Pixels STAPLE leaves undecided take the majority vote (eq. 1), so the consensus
never has holes.

STAPLE has no spatial term: once its estimates are made, a pixel's label depends only on the
experts' labels there. So on a large core the estimates come from a regular grid of at most
:data:`STAPLE_MAX_PIXELS` pixels, and every full-resolution pixel takes the label STAPLE gave the
same combination of expert labels on the grid (a table lookup; a combination the grid never saw
takes the vote). The result is at full resolution and agrees with STAPLE on every pixel on
99.9999 % of the pixels of the 5120² benchmark core (≥ 99.8 % of a 128² test core), in a fraction
of the time and memory (every-pixel STAPLE of a 5120² core with six experts: ≈ 1 GB, tens of s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from trainer.data.classes import IGNORE_INDEX
from trainer.data.vote import majority_vote

#: Pixels of the grid on which STAPLE estimates its parameters (see the module docstring).
STAPLE_MAX_PIXELS = 1_000_000
#: Label combinations above which the lookup table would be too large: STAPLE runs on every pixel.
_MAX_COMBINATIONS = 1 << 22


def _sitk_staple(arrays: list[np.ndarray], num_classes: int) -> np.ndarray:
    """SimpleITK's multi-label STAPLE on class maps; ``IGNORE_INDEX`` is passed as label
    ``num_classes`` (as 255 it would make STAPLE estimate 256×256 confusion matrices, which takes
    minutes even on a small core) and comes back as ``IGNORE_INDEX``; undecided pixels come back
    as ``num_classes + 1``."""
    import SimpleITK as sitk

    images = [sitk.GetImageFromArray(np.minimum(a, num_classes)) for a in arrays]
    out = sitk.GetArrayFromImage(sitk.MultiLabelSTAPLE(images, num_classes + 1)).astype(np.uint8)
    out[out == num_classes] = IGNORE_INDEX
    return out


def _combinations(arrays: list[np.ndarray], num_classes: int) -> tuple[np.ndarray, int]:
    """Per pixel, the experts' labels as one integer (class index, or ``num_classes`` for an
    ignored pixel, in base ``num_classes + 1``) and the number of possible integers."""
    base = num_classes + 1
    total = base ** len(arrays)
    codes = np.zeros(arrays[0].shape, np.uint16 if total <= 1 << 16 else np.uint32)
    scale = 1
    for a in arrays:
        digit = np.minimum(a, num_classes).astype(codes.dtype)
        if scale != 1:
            digit *= codes.dtype.type(scale)
        codes += digit
        scale *= base
    return codes, total


def staple(masks: Mapping[str, np.ndarray] | Sequence[np.ndarray], num_classes: int,
           fallback: np.ndarray | None = None, max_pixels: int | None = STAPLE_MAX_PIXELS) -> np.ndarray:
    """Multi-label STAPLE consensus (SimpleITK) as a uint8 class map at the masks' resolution.

    ``IGNORE_INDEX`` pixels are passed to STAPLE as one more label, ``num_classes`` (it has no
    notion of "missing"), and come back as ``IGNORE_INDEX`` where STAPLE picks it. Undecided pixels take
    ``fallback`` (default: the vote). A core of more than ``max_pixels`` pixels is estimated on a
    regular grid and labelled through the table of label combinations (module docstring);
    ``max_pixels=None`` runs STAPLE on every pixel. Undecided pixels take the majority vote (eq. 1,
    ties to the higher grade) unless ``fallback`` is given.
    """
    masks = list(masks.values()) if isinstance(masks, Mapping) else list(masks)
    arrays = [np.ascontiguousarray(m, dtype=np.uint8) for m in masks]
    if not arrays:
        raise ValueError("STAPLE needs at least one expert")
    if len(arrays) == 1:  # STAPLE of one rater is that rater
        return arrays[0].copy()
    undecided = num_classes + 1
    step = 1 if max_pixels is None else max(1, math.ceil(math.sqrt(arrays[0].size / max_pixels)))
    if step == 1 or (num_classes + 1) ** len(arrays) > _MAX_COMBINATIONS:
        out = _sitk_staple(arrays, num_classes)
    else:
        codes, total = _combinations(arrays, num_classes)
        grid = (slice(None, None, step),) * 2
        on_grid = _sitk_staple([np.ascontiguousarray(a[grid]) for a in arrays], num_classes)
        table = np.full(total, undecided, np.uint8)  # combinations the grid never saw: undecided
        table[codes[grid].ravel()] = on_grid.ravel()
        out = table[codes]
    holes = out == undecided
    if holes.any():
        out[holes] = (majority_vote(arrays, num_classes) if fallback is None else fallback)[holes]
    return out
