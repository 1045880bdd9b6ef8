"""The two resampling rules every array of a core goes through, NumPy/SciPy only (a napari process
uses them without importing torch).

- :func:`resize_image`: antialiased bilinear, for images and float maps. Pillow's filter
  (``precompute_coeffs``), which torch's ``interpolate(..., mode="bilinear", antialias=True)``
  follows: a triangle widened by the scale factor when shrinking, each row of weights summing to
  1, applied as two sparse matrix products. Training, prediction and the GUI's roughness map all
  resize with it, so the GUI shows what the network sees.
- :func:`resize_nearest`: nearest at pixel centres, for class maps and masks (no new value
  appears): output pixel ``i`` takes source pixel ``floor((i + 0.5) · n_in / n_out)``, torch's
  ``nearest-exact`` in exact integer arithmetic (torch's float32 moves about 0.4 % of the pixels
  of a 512 → 431 resize by one). A model-resolution map shown or exported at the core's size uses
  it too.

Tensors resize with torch's ``interpolate`` in the same two modes (the predictor; the augmentation's
random rescale, :func:`trainer.data.augment.rescale_image`), except that the device-side augmentation
rescales masks with :func:`source_index`, so that a seed gives the same masks on both paths.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Columns converted to float32 at a time by :func:`resize_image`: a 5120² core never holds a full
#: float32 plane (~100 MB).
_COLUMNS = 1024


def size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of a model input size given as one side or as ``(h, w)``."""
    if np.isscalar(size):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def source_index(out_len: int, src_len: int) -> np.ndarray:
    """The source pixel of each of ``out_len`` output pixels under the nearest rule."""
    return np.minimum((2 * np.arange(out_len, dtype=np.int64) + 1) * src_len // (2 * out_len), src_len - 1)


def resize_nearest(array: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``…×H×W`` (any dtype) to ``…×h×w`` by the nearest rule; the array itself when the size matches."""
    array = np.asarray(array)
    h, w = size_hw(size)
    if array.shape[-2:] == (h, w):
        return array
    rows, cols = source_index(h, array.shape[-2]), source_index(w, array.shape[-1])
    return np.take(np.take(array, rows, axis=-2), cols, axis=-1)  # rows, then columns: 2-4× a 2-D gather


@lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int):
    """Sparse ``n_out × n_in`` matrix of the antialiased bilinear resize along one axis (cached: a
    dataset's cores, a prediction's and the GUI's resizes ask for the same few sizes again and again)."""
    from scipy.sparse import csr_matrix

    scale = n_in / n_out
    support = scale if scale > 1.0 else 1.0  # bilinear: support 1, stretched when shrinking
    inv = 1.0 / scale if scale > 1.0 else 1.0
    centre = scale * (np.arange(n_out) + 0.5)
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    taps = int((hi - lo).max())
    j = lo[:, None] + np.arange(taps)[None, :]
    valid = j < hi[:, None]
    w = np.where(valid, np.clip(1.0 - np.abs((j - centre[:, None] + 0.5) * inv), 0.0, None), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    rows = np.broadcast_to(np.arange(n_out)[:, None], j.shape)
    return csr_matrix((w[valid].astype(np.float32), (rows[valid], j[valid])), shape=(n_out, n_in))


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of ``H×W×C`` to ``size`` (uint8 stays uint8, rounded; other
    types become float32); the image itself when the size matches."""
    h, w = size_hw(size)
    image = np.asarray(image)
    if image.shape[:2] == (h, w):
        return image
    wy, wx = _weights(image.shape[0], h), _weights(image.shape[1], w)
    out = np.empty((h, w, image.shape[2]), np.float32)
    rows = np.empty((h, image.shape[1]), np.float32)
    for c in range(image.shape[2]):
        for x in range(0, image.shape[1], _COLUMNS):  # sparse · dense: a few taps per output pixel
            rows[:, x:x + _COLUMNS] = wy @ np.asarray(image[:, x:x + _COLUMNS, c], dtype=np.float32)
        out[..., c] = (wx @ np.ascontiguousarray(rows.T)).T
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out
