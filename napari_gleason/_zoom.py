"""Model-resolution maps drawn at the core's own shape without making them full size.

At the paper's setting the network sees a 5120² core resized to 1024²: its probabilities, the
weighting CNN's weights (eq. 2) and the roughness map (eq. 5) exist at 1024². Upsampling the eleven
float maps of a six-expert core to 5120² would take ~1.2 GB and seconds; :class:`ZoomView` instead
*looks* like an ``H×W`` array and reads the model map nearest-neighbour only for the region napari
asks for. :func:`zoom_pyramid` stacks such views into a multiscale pyramid, so each layer has the
image's shape, scale and translate (registered pixel for pixel) while napari reads only what is on
screen. The index rule is ``nearest-exact`` (pixel centres), the same as
:func:`trainer.data.augment.resize_masks`, so the class map and the float maps agree.
"""

from __future__ import annotations

import numpy as np

#: Below this size (either side) a zoomed map is simply materialised: at most ~16 MB per map.
MATERIALISE_UP_TO = 2048


def source_index(out_len: int, src_len: int) -> np.ndarray:
    """Source index of each output pixel: the source pixel its centre falls in (``nearest-exact``)."""
    idx = ((np.arange(out_len) + 0.5) * (src_len / out_len)).astype(np.intp)
    return np.minimum(idx, src_len - 1)


class ZoomView:
    """A read-only ``shape`` view of the 2-D array ``source`` (nearest-neighbour), read lazily."""

    def __init__(self, source: np.ndarray, shape: tuple[int, int]):
        self.source = np.asarray(source)
        if self.source.ndim != 2:
            raise ValueError(f"ZoomView needs a 2-D source, got shape {self.source.shape}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = self.source.dtype
        self.ndim = 2
        self._rows = source_index(self.shape[0], self.source.shape[0])
        self._cols = source_index(self.shape[1], self.source.shape[1])

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):  # napari passes plain slices, but be forgiving
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (2 - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (2 - len(key))
        rows, cols = self._rows[key[0]], self._cols[key[1]]
        if np.ndim(rows) == 0 and np.ndim(cols) == 0:
            return self.source[rows, cols]
        if np.ndim(rows) == 0:
            return self.source[rows][cols]
        if np.ndim(cols) == 0:
            return self.source[rows, cols]
        return self.source[np.ix_(rows, cols)]

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"ZoomView({self.source.shape} -> {self.shape}, {self.dtype})"


def zoom_pyramid(source: np.ndarray, shape: tuple[int, int]):
    """``source`` shown at ``shape``: a plain array when small, else a list of lazy levels.

    Levels halve down to about the source's own size (napari picks the level on screen); each
    is a :class:`ZoomView` of the same source, so no level costs memory.
    """
    h, w = int(shape[0]), int(shape[1])
    if max(h, w) <= MATERIALISE_UP_TO:
        return np.asarray(ZoomView(source, (h, w)))
    levels = [ZoomView(source, (h, w))]
    while max(levels[-1].shape) > max(np.shape(source)):
        lh, lw = levels[-1].shape
        levels.append(ZoomView(source, ((lh + 1) // 2, (lw + 1) // 2)))
    return levels


def zoom_to(source: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``source`` upsampled (nearest-exact) to a real ``shape`` array: for class maps, which are small (uint8)."""
    return np.asarray(ZoomView(source, shape))
