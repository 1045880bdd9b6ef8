"""Augmentation (paper §3.2), normalisation and the majority vote (eq. 1) on the training device.

At the paper's setting a GPU step needs tens of cores per second; augmenting 1024² floats in the
data workers and copying them over is what the CPU then cannot keep up with. With
``data.augment_device = "device"`` the workers hand over each core resized but *un-augmented*, as
uint8 (4× less to pin and copy than float32), together with the sample's seed from
:class:`~trainer.data.dataset.IterationSampler`; :func:`augment_batch` then does here what the
workers otherwise do in numpy (:func:`~trainer.data.augment.augment` after
:func:`~trainer.data.augment.normalise`, then :func:`~trainer.data.vote.majority_vote`):

- each sample's transform comes from :func:`~trainer.data.augment.draw_params` with
  ``np.random.default_rng(seed)`` — the same function, so the same draws in the same order as
  the worker path; a seed means the same transform on both paths;
- the image is normalised first and rescaled in normalised space (bilinear, antialiased), so the
  padding of a zoomed-out core is 0, the mean colour; masks are rescaled nearest and padded with
  ``IGNORE_INDEX`` (the image with torch's antialiased bilinear, as
  :func:`~trainer.data.augment.rescale_image` does; the masks with :mod:`trainer.resample`'s
  indices). Rescaling is the one per-sample loop: each sample has its own intermediate size;
- flips and 90° rotations of the whole batch are one gather with a per-sample index map (the 8
  flips/rotations of a square are permutations of its pixels), so there is no loop over samples or
  experts;
- the vote is :func:`~trainer.data.vote.majority_vote_torch` (same tie rules as the numpy one).

Equal to the worker path: the images to float rounding, masks and vote exactly
(``tests/trainer/data/test_device_augment.py``).

An expert channel whose ``present`` is False still votes if it holds labels, and is reset to
``IGNORE_INDEX`` after the vote (as the worker path returns it): that is how a corrected core
(:class:`~trainer.data.corrected.CorrectedCoreSet`) carries its one label map, a vote without an
expert.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.augment import AugmentParams, centre_slices, draw_params, normalise_tensor
from trainer.data.classes import IGNORE_INDEX
from trainer.data.vote import majority_vote_torch
from trainer.resample import source_index

_UINT64 = 1 << 64


def seed_to_int64(seed: int) -> int:
    """A uint64 sample seed as the int64 with the same bits (tensors and collate hold int64)."""
    seed = int(seed) % _UINT64
    return seed - _UINT64 if seed >= 1 << 63 else seed


def seed_from_int64(value: int) -> int:
    """Inverse of :func:`seed_to_int64`."""
    return int(value) % _UINT64


def _centre_fit(t: torch.Tensor, h: int, w: int, fill: float) -> torch.Tensor:
    """Centre-crop or centre-pad the last two axes of ``t`` to ``h×w`` (as ``augment._centre_fit``)."""
    out = torch.full((*t.shape[:-2], h, w), fill, dtype=t.dtype, device=t.device)
    src, dst = centre_slices(t.shape[-2:], (h, w))
    out[dst] = t[src]
    return out


def _rescale(image: torch.Tensor, masks: torch.Tensor, scaled: tuple[int, int]):
    """One sample (``1×3×H×W`` float, ``1×E×H×W`` uint8) rescaled to ``scaled``, fitted back to H×W."""
    h, w = image.shape[-2:]
    # the filter of augment.rescale_image, the worker path's: a seed gives the same sample bit for bit
    img = F.interpolate(image, size=scaled, mode="bilinear", align_corners=False, antialias=True)
    img = _centre_fit(img, h, w, 0.0)  # 0 in normalised space: the mean colour
    if masks.shape[1]:  # the one nearest rule (trainer.resample), as index lists on the device
        rows = torch.from_numpy(source_index(scaled[0], h)).to(masks.device)
        cols = torch.from_numpy(source_index(scaled[1], w)).to(masks.device)
        masks = _centre_fit(masks.index_select(-2, rows).index_select(-1, cols), h, w, IGNORE_INDEX)
    return img, masks


def dihedral_index(params: Sequence[AugmentParams], h: int, w: int, device: torch.device) -> torch.Tensor:
    """``B×(h·w)`` int64: for each output pixel, the flat index of its source pixel.

    Reproduces ``augment``'s order — horizontal flip, vertical flip, then ``np.rot90(k)`` — as
    coordinate arithmetic, for every sample at once. ``np.rot90`` of an ``H×W`` array ``m`` gives
    ``out[i, j] = m[j, W-1-i]`` (k=1), ``m[H-1-i, W-1-j]`` (k=2), ``m[H-1-j, i]`` (k=3).
    """
    k = torch.tensor([p.rot for p in params], device=device).view(-1, 1, 1)
    hflip = torch.tensor([p.hflip for p in params], device=device).view(-1, 1, 1)
    vflip = torch.tensor([p.vflip for p in params], device=device).view(-1, 1, 1)
    i = torch.arange(h, device=device).view(1, h, 1)
    j = torch.arange(w, device=device).view(1, 1, w)
    # odd k only happens on squares (draw_params), where i and j share one range
    r = torch.where(k == 0, i, torch.where(k == 1, j, torch.where(k == 2, h - 1 - i, h - 1 - j)))
    c = torch.where(k == 0, j, torch.where(k == 1, w - 1 - i, torch.where(k == 2, w - 1 - j, i)))
    r = torch.where(vflip, h - 1 - r, r)
    c = torch.where(hflip, w - 1 - c, c)
    return (r * w + c).reshape(len(params), h * w)


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = t.shape
    if ch == 0:
        return t
    flat = t.reshape(b, ch, h * w).gather(2, index[:, None, :].expand(b, ch, h * w))
    return flat.view(b, ch, h, w)


def augment_batch(
    image: torch.Tensor,
    experts: torch.Tensor,
    present: torch.Tensor,
    seeds: Sequence[int] | None,
    num_classes: int,
    tie: str = "highest",
    augment: bool = True,
) -> dict[str, torch.Tensor]:
    """Augment, normalise and vote a batch on its device.

    Args:
        image: uint8 ``B×3×H×W``, resized to the model size, not augmented.
        experts: uint8 ``B×E×H×W`` class maps (``IGNORE_INDEX`` where not annotated).
        present: bool ``B×E``, which experts annotated each core.
        seeds: each sample's augmentation seed (uint64 values, as the sampler gives them).
        num_classes, tie: the vote's classes and tie rule (eq. 1).
        augment: False: normalise and vote only (no geometric transform).

    Returns ``image`` float32 ``B×3×H×W`` (normalised), ``experts`` int64 ``B×E×H×W``,
    ``present`` bool ``B×E`` and ``vote`` int64 ``B×H×W`` — what the worker path's batch holds.
    """
    if image.dim() != 4 or image.shape[1] != 3 or image.dtype != torch.uint8:
        raise ValueError(f"image must be uint8 B×3×H×W, got {image.dtype} {tuple(image.shape)}")
    if experts.dim() != 4 or experts.shape[0] != image.shape[0] or experts.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"experts must be B×E×H×W matching the image, got {tuple(experts.shape)}")
    b, _, h, w = image.shape
    x = normalise_tensor(image)  # normalise first: the worker path rescales in normalised space
    masks = experts.to(torch.uint8)
    if augment:
        if seeds is None or len(seeds) != b:
            raise ValueError(f"need one seed per sample ({b}), got {None if seeds is None else len(seeds)}")
        params = [draw_params(np.random.default_rng(int(s)), (h, w)) for s in seeds]
        scaled = [i for i, p in enumerate(params) if p.scaled is not None]
        if scaled:
            x, masks = x.clone(), masks.clone()
            for i in scaled:  # each sample has its own intermediate size: the one per-sample loop
                x[i : i + 1], masks[i : i + 1] = _rescale(x[i : i + 1], masks[i : i + 1], params[i].scaled)
        if any(p.hflip or p.vflip or p.rot for p in params):
            index = dihedral_index(params, h, w, image.device)
            x, masks = _gather(x, index), _gather(masks, index)
    vote = majority_vote_torch(masks, num_classes, tie)  # eq. (1)
    present = present.to(device=image.device, dtype=torch.bool)
    masks = masks.masked_fill(~present[:, :, None, None], IGNORE_INDEX)
    return {"image": x.contiguous(), "experts": masks.long(), "present": present, "vote": vote}
