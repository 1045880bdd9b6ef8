"""Resizing, augmentation (paper §3.2) and normalisation of a core and its expert masks.

Paper §3.2: each image is resized to the model size (1024² in the paper); the image randomly
flips, rotates by 90°, 180° or 270° with probability 0.5, and is randomly rescaled within
0.9–1.1. Every geometric step is applied identically to the image and to every expert mask.

- Images are resized bilinearly with antialiasing, masks with nearest-neighbour, so masks only
  ever hold values that were already there (:mod:`trainer.resample`, the one rule of each; the
  random rescale uses torch's implementation of the same filter, :func:`rescale_image`).
- Rescaling keeps the output size: a zoomed-in core is centre-cropped, a zoomed-out one is
  centre-padded — the image with the mean colour (0 after normalisation; pass
  ``image_fill=0.0`` for an already normalised image), the masks with ``IGNORE_INDEX``.
- Flips are horizontal and vertical, each with probability 0.5. Rotations by 90°/270° need a
  square image; on a non-square one the rotation is always 180° so shapes are kept.
- Randomness comes only from the ``numpy.random.Generator`` passed in, and the same number of
  draws is made whatever the options, so a seed always means the same transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, Union

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.classes import IGNORE_INDEX
from trainer.resample import resize_nearest
from trainer.roughness import MEAN, STD  # ImageNet mean/std, 0-255 scale: one definition, torch-free

Masks = Union[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray]]
M = TypeVar("M", np.ndarray, list, dict)


def _split_masks(masks: Masks) -> tuple[np.ndarray, object]:
    """Masks as one E×H×W uint8 stack, plus what is needed to give them back in kind."""
    if isinstance(masks, Mapping):
        keys = list(masks)
        arrays = [np.asarray(masks[k]) for k in keys]
        kind: object = keys
    elif isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise ValueError(f"masks must be E×H×W, got shape {masks.shape}")
        return masks, "array"
    else:
        arrays, kind = [np.asarray(m) for m in masks], "list"
    if not arrays:
        return np.zeros((0, 0, 0), np.uint8), kind
    return np.stack(arrays), kind


def _join_masks(stack: np.ndarray, kind: object) -> Masks:
    if kind == "array":
        return stack
    if kind == "list":
        return list(stack)
    return dict(zip(kind, stack))  # type: ignore[arg-type]


def rescale_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The augmentation's rescale of ``H×W×C`` (uint8 stays uint8, floats become float32): torch's
    antialiased bilinear ``interpolate``, the filter of :func:`trainer.resample.resize_image` (tests
    hold the two equal), because the device-side augmentation rescales with the same torch call and a
    seed must give the same sample bit for bit on both paths (a float-rounding difference grows to
    1e-3 of the loss within three iterations)."""
    h, w = size
    out = np.empty((h, w, image.shape[2]), np.float32)
    for c in range(image.shape[2]):  # one channel at a time, as the device path's batched call computes it
        t = torch.from_numpy(np.ascontiguousarray(image[..., c], dtype=np.float32))[None, None]
        out[..., c] = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def centre_slices(have_hw, want_hw) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(source, destination) slices of the last two axes that centre-crop or centre-pad
    ``have_hw`` to ``want_hw`` (shared by the numpy and the device augmentation)."""
    src, dst = [], []
    for have, want in zip(have_hw, want_hw):
        if have >= want:  # crop
            a = (have - want) // 2
            src.append(slice(a, a + want))
            dst.append(slice(0, want))
        else:  # pad
            a = (want - have) // 2
            src.append(slice(0, have))
            dst.append(slice(a, a + have))
    return (..., *src), (..., *dst)


def _centre_fit(arr: np.ndarray, h: int, w: int, fill: float | np.ndarray) -> np.ndarray:
    """Centre-crop or centre-pad the last two axes of ``arr`` (…×h'×w') to ``h×w``."""
    out = np.empty(arr.shape[:-2] + (h, w), dtype=arr.dtype)
    out[...] = fill
    src, dst = centre_slices(arr.shape[-2:], (h, w))
    out[dst] = arr[src]
    return out


@dataclass(frozen=True)
class AugmentParams:
    """One sample's transform, applied in this order: rescale (then centre crop/pad), flips, rot90.

    ``scaled`` is the ``(h, w)`` the core is resized to before it is centre-fitted back to its
    own shape (None: no rescale); ``rot`` is the number of 90° turns (``np.rot90``'s ``k``, 0–3).
    """

    scaled: tuple[int, int] | None
    hflip: bool
    vflip: bool
    rot: int


def draw_params(
    rng: np.random.Generator,
    shape: tuple[int, int],
    flip: bool = True,
    rot90_p: float = 0.5,
    scale: tuple[float, float] | None = (0.9, 1.1),
) -> AugmentParams:
    """Draw the transform of a ``shape = (H, W)`` core from ``rng``.

    The one place the random numbers are drawn, shared by :func:`augment` (numpy, in the data
    workers) and :mod:`trainer.data.device_augment` (torch, on the training device), so a seed
    means the same transform on both paths. A fixed number of draws is made whatever the
    options: the seed alone fixes the transform.
    """
    h, w = int(shape[0]), int(shape[1])
    u_scale, u_hflip, u_vflip, u_rot = rng.random(4)
    k = int(rng.integers(1, 4))
    scaled = None
    if scale is not None:
        ratio = scale[0] + u_scale * (scale[1] - scale[0])
        sh, sw = max(1, round(h * ratio)), max(1, round(w * ratio))
        scaled = None if (sh, sw) == (h, w) else (sh, sw)
    rot = 0
    if u_rot < rot90_p:
        rot = k if h == w else 2  # 90°/270° would change a non-square shape
    return AugmentParams(scaled, bool(flip and u_hflip < 0.5), bool(flip and u_vflip < 0.5), rot)


def augment(
    image: np.ndarray,
    masks: M,
    rng: np.random.Generator,
    flip: bool = True,
    rot90_p: float = 0.5,
    scale: tuple[float, float] | None = (0.9, 1.1),
    image_fill: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, M]:
    """Random rescale, flips and 90° rotations (paper §3.2), identical for image and masks.

    ``image`` is ``H×W×C`` (uint8, or float e.g. already normalised); ``masks`` an ``E×H×W``
    array, a list of ``H×W`` arrays or a dict of them, returned in the same kind. Shapes are
    kept. ``image_fill`` is the colour of padded image pixels (default :data:`MEAN`).
    """
    h, w = image.shape[:2]
    stack, kind = _split_masks(masks)
    if stack.shape[0] and stack.shape[-2:] != (h, w):
        raise ValueError(f"masks are {stack.shape[-2:]}, image is {(h, w)}")
    p = draw_params(rng, (h, w), flip=flip, rot90_p=rot90_p, scale=scale)
    img = np.moveaxis(image, -1, 0)  # C×H×W: every step below acts on the last two axes
    if p.scaled is not None:
        fill = MEAN if image_fill is None else image_fill
        fill_c = np.asarray(fill, dtype=np.float64).reshape(-1, 1, 1) * np.ones((img.shape[0], 1, 1))
        if image.dtype == np.uint8:
            fill_c = np.rint(fill_c)
        scaled = np.moveaxis(rescale_image(image, p.scaled), -1, 0)
        img = _centre_fit(scaled, h, w, fill_c.astype(image.dtype))
        stack = _centre_fit(resize_nearest(stack, p.scaled), h, w, IGNORE_INDEX)
    if p.hflip:
        img, stack = img[..., ::-1], stack[..., ::-1]
    if p.vflip:
        img, stack = img[..., ::-1, :], stack[..., ::-1, :]
    if p.rot:
        img, stack = np.rot90(img, p.rot, axes=(-2, -1)), np.rot90(stack, p.rot, axes=(-2, -1))
    img = np.ascontiguousarray(np.moveaxis(img, 0, -1))
    return img, _join_masks(np.ascontiguousarray(stack), kind)  # type: ignore[return-value]


def normalise(image: np.ndarray) -> np.ndarray:
    """``uint8 H×W×3`` → float32 ``H×W×3`` with :data:`MEAN` subtracted and divided by :data:`STD`."""
    mean = np.asarray(MEAN, dtype=np.float32)
    std = np.asarray(STD, dtype=np.float32)
    return (image.astype(np.float32) - mean) / std


def normalise_tensor(image: torch.Tensor) -> torch.Tensor:
    """``B×3×H×W`` on any device (uint8 or float, 0-255 scale) → float32, :data:`MEAN` subtracted and
    divided by :data:`STD` (as :func:`normalise` does in numpy). The one torch normalisation: training
    on the device, whole-core and tiled inference all use it."""
    mean = torch.tensor(MEAN, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    return (image.float() - mean) / std
