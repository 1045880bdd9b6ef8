"""Pixel-wise majority vote over the experts who annotated a core, eq. (1).

``P_vote = major(P_1, …, P_N)``. Only experts present vote: ``IGNORE_INDEX`` pixels (an
absent expert, an ignored value) cast no vote, and a pixel nobody voted on is
``IGNORE_INDEX``. The paper does not say how ties are broken; ``tie`` decides:

- ``"highest"`` (default): the highest tied class index, i.e. the higher Gleason grade —
  the clinically cautious choice, and it keeps rare high grades in the training target;
- ``"lowest"``: the lowest tied class index;
- ``"ignore"``: the pixel becomes ``IGNORE_INDEX`` (no loss is computed there).

Both versions loop over classes only (never over pixels). The NumPy version checks that every
value is a class index or ``IGNORE_INDEX``; the torch version skips that check (it would cost a
device sync per batch) and simply lets any other value cast no vote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from trainer.data.classes import IGNORE_INDEX

if TYPE_CHECKING:  # torch is imported on use, so the NumPy vote stays cheap to import (napari)
    import torch

TIE_RULES: tuple[str, ...] = ("highest", "lowest", "ignore")

MaskStack = Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]


def _check_tie(tie: str) -> None:
    if tie not in TIE_RULES:
        raise ValueError(f"tie must be one of {TIE_RULES}, got {tie!r}")


def _as_stack(masks: MaskStack) -> np.ndarray:
    """E×H×W uint8 from an array, a list of H×W arrays or an expert -> mask mapping."""
    if isinstance(masks, Mapping):
        masks = list(masks.values())
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise ValueError(f"masks must be E×H×W, got shape {masks.shape}")
        return masks
    if len(masks) == 0:
        raise ValueError("no masks to vote on (pass an E×H×W array with E=0 for an all-ignored map)")
    return np.stack([np.asarray(m) for m in masks])


def majority_vote(masks: MaskStack, num_classes: int, tie: str = "highest") -> np.ndarray:
    """Majority vote, eq. (1): ``uint8 H×W`` class map from ``E×H×W`` expert class maps."""
    _check_tie(tie)
    stack = _as_stack(masks)
    bad = (stack >= num_classes) & (stack != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f"masks hold values {np.unique(stack[bad]).tolist()}, not classes 0..{num_classes - 1}")
    # uint8 counts (≤ 255 experts): a 5120² core with 4 classes needs 105 MB, not 420 MB.
    cdtype = np.uint8 if stack.shape[0] < 256 else np.int32
    counts = np.stack([(stack == c).sum(axis=0, dtype=cdtype) for c in range(num_classes)])
    best = counts.max(axis=0)
    tied = counts == best[None]
    # Weight tied classes by rank so one max() picks the highest (or lowest) tied index.
    rdtype = np.uint8 if num_classes < 255 else np.int32
    rank = np.arange(1, num_classes + 1, dtype=rdtype)[:, None, None]
    if tie == "lowest":
        out = num_classes - (tied * rank[::-1]).max(axis=0)
    else:
        out = (tied * rank).max(axis=0) - 1
        if tie == "ignore":
            out[tied.sum(axis=0) > 1] = IGNORE_INDEX
    out[best == 0] = IGNORE_INDEX  # nobody voted here
    return out.astype(np.uint8)


def majority_vote_torch(masks: "torch.Tensor", num_classes: int, tie: str = "highest") -> "torch.Tensor":
    """Majority vote, eq. (1), on a tensor ``E×H×W`` or ``B×E×H×W`` → int64 ``H×W`` / ``B×H×W``.

    Runs on the tensor's device; vectorised over pixels and batch.
    """
    import torch

    _check_tie(tie)
    if masks.dim() not in (3, 4):
        raise ValueError(f"masks must be E×H×W or B×E×H×W, got shape {tuple(masks.shape)}")
    counts = torch.stack([(masks == c).sum(dim=-3, dtype=torch.int32) for c in range(num_classes)], dim=-3)
    best = counts.amax(dim=-3, keepdim=True)
    tied = (counts == best).to(torch.int32)
    shape = [1] * (counts.dim() - 3) + [num_classes, 1, 1]
    rank = torch.arange(1, num_classes + 1, dtype=torch.int32, device=masks.device).view(shape)
    if tie == "lowest":
        out = num_classes - (tied * rank.flip(-3)).amax(dim=-3)
    else:
        out = (tied * rank).amax(dim=-3) - 1
        if tie == "ignore":
            out = out.masked_fill(tied.sum(dim=-3) > 1, IGNORE_INDEX)
    out = out.masked_fill(best.squeeze(-3) == 0, IGNORE_INDEX)
    return out.to(torch.int64)
