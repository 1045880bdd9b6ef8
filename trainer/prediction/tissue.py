"""Where the tissue is on an H&E core image: a bool mask, glass (background) ``False``.

The reliability heat maps (``weight:<expert>``, ``error:<expert>``) are only meaningful on tissue:
on glass every expert writes "benign" (or nothing) and the networks' outputs there are noise. The
GUI blanks them outside this mask.

Method: optical density (Beer–Lambert, ``-ln((I + 1) / 256)``, the largest of the three channels,
so a pale eosin-only stroma still counts), slightly smoothed, thresholded with Otsu's method,
the threshold clamped to :data:`OD_RANGE` (an image that is all tissue or all glass has no
meaningful Otsu split); then objects smaller than ``min_object`` of the image are dropped (dust,
debris) and enclosed holes are filled (gland lumens are white like glass but are tissue).
Big images are analysed at most ``max_side`` pixels a side (a strided read: works on lazy
sources such as the review store's image) and the mask is scaled back nearest-neighbour.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from trainer.resample import resize_nearest

#: The Otsu threshold on optical density is clamped to this range: glass of a bright-field scan is
#: below ~0.06 (every channel ≥ 240), the palest stroma's darkest channel above ~0.2 (≤ 210).
OD_RANGE = (0.06, 0.2)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """float32 H×W: the largest per-channel optical density ``-ln((I + 1) / 256)`` (0 = white)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    darkest = rgb[..., :3].min(axis=2).astype(np.float32)
    return -np.log((darkest + 1.0) / 256.0)


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    if values.size == 0 or float(values.max()) == float(values.min()):
        return float("nan")
    return float(threshold_otsu(values, nbins=256))


def tissue_mask(image, *, max_side: int | None = 1024, min_object: float = 0.002, smooth: float = 1.0,
                od_range: tuple[float, float] = OD_RANGE) -> np.ndarray:
    """bool H×W at ``image``'s shape: ``True`` on tissue, ``False`` on glass.

    ``image``: uint8 H×W×3 (or ×4; alpha ignored), a numpy array or any array-like supporting
    strided slicing. ``max_side``: analyse at most this many pixels a side (``None``: full
    resolution). ``min_object``: tissue components smaller than this share of the image area are
    dropped (holes enclosed by tissue are filled whatever their size). ``smooth``: Gaussian σ in
    analysed pixels before thresholding (single nuclei and lumens must not speckle the mask).
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    step = 1 if max_side is None else max(1, math.ceil(max(h, w) / max_side))
    small = np.asarray(image[::step, ::step])
    od = optical_density(small)
    if smooth > 0:
        od = ndi.gaussian_filter(od, smooth)
    lo, hi = od_range
    otsu = _otsu(od)
    threshold = hi if math.isnan(otsu) else min(max(otsu, lo), hi)
    mask = od > threshold
    min_px = max(1, int(round(min_object * mask.size)))
    labels, n = ndi.label(mask)
    if n:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_px
        keep[0] = False
        mask = keep[labels]
    mask = ndi.binary_fill_holes(mask)
    if step == 1 and mask.shape == (h, w):
        return mask
    return resize_nearest(mask, (h, w))


def blank_outside(values: np.ndarray, mask: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """float32 copy of ``values`` (H×W, or C×H×W) with ``fill`` where ``mask`` (H×W) is False.

    ``mask`` is resized nearest-neighbour when its shape differs from the map's (a model-resolution
    map of a full-resolution mask, or the other way round).
    """
    values = np.asarray(values, dtype=np.float32)
    hw = values.shape[-2:]
    if mask.shape != hw:
        mask = resize_nearest(mask, hw)
    return np.where(mask, values, np.float32(fill)).astype(np.float32, copy=False)


__all__ = ["OD_RANGE", "optical_density", "tissue_mask", "blank_outside"]
