"""The roughness map of eq. (5) with NumPy/SciPy only: what the GUI draws, without importing torch.

``W_heat = λa·|I − Gauss(I)| + λb`` on ``I``, the channel mean of the ImageNet-normalised network
input (paper §2.2, eq. 5). :func:`trainer.losses.roughness_map` is the torch version the loss uses;
both take their Gaussian from :func:`gaussian_kernel1d` here, and a test holds the two equal for
every kernel × border option (:data:`KERNELS`, :data:`BORDERS`).

The GUI shows the map "as the loss sees it", on the core resized to the model's input size:
:func:`trainer.resample.resize_image` is the one antialiased bilinear resize, training's too.

This module imports neither torch nor anything that does: a napari process draws the map with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Paper §3.2: "Gaussian kernel with a radius of 5 and a standard deviation of 3", λa = 50, λb = 1.
#: The authors' code (``gkern(5, nsig=3)`` in their mmsegmentation fork) builds a 5-tap kernel whose
#: "3" is where the Gaussian is *cut*, at ±3σ: taps [.035 .239 .453 .239 .035], σ ≈ 0.87 px. That
#: is the default (``kernel="authors"``); ``kernel="sampled"`` reads the 3 literally as σ = 3 px.
LAMBDA_A = 50.0
LAMBDA_B = 1.0
KSIZE = 5
SIGMA = 3.0
KERNELS = ("authors", "sampled")
#: The authors convolve with zero padding (``F.conv2d(..., padding=2)``); reflect-101 is an option.
BORDERS = ("zero", "reflect")

@dataclass(frozen=True)
class HeatmapParams:
    """The settings of eq. (5), ``W = λa·|I − Gauss(I)| + λb``: the one definition of their names and
    defaults (a run's ``loss`` section, the loss, the predictor and the roughness widget use it)."""

    lambda_a: float = LAMBDA_A
    lambda_b: float = LAMBDA_B
    ksize: int = KSIZE
    sigma: float = SIGMA
    kernel: str = "authors"
    border: str = "zero"

    @classmethod
    def from_loss(cls, loss: Mapping | None) -> "HeatmapParams":
        """From a run's ``loss`` section (``gauss_ksize``, ``gauss_sigma``, ``gauss_kernel``, …); what
        it does not name takes today's default (an older checkpoint's section is filled in first by
        :func:`trainer.checkpoint.run_config_of`)."""
        lc, d = dict(loss or {}), cls()
        return cls(float(lc.get("lambda_a", d.lambda_a)), float(lc.get("lambda_b", d.lambda_b)),
                   int(lc.get("gauss_ksize", d.ksize)), float(lc.get("gauss_sigma", d.sigma)),
                   lc.get("gauss_kernel", d.kernel), lc.get("gauss_border", d.border))

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`roughness_map` (and the torch and banded versions)."""
        return asdict(self)


#: ImageNet mean/std on the 0-255 scale (mmsegmentation's; ``trainer.data.augment`` re-exports them).
MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


def gaussian_kernel1d(ksize: int = KSIZE, sigma: float = SIGMA, kernel: str = "authors") -> list[float]:
    """Normalised 1-D Gaussian weights of length ``ksize`` (a list of floats).

    ``kernel="authors"`` (default): the authors' ``gkern(ksize, nsig=sigma)`` — the normal
    distribution's mass in ``ksize`` equal bins spanning ``[-sigma, +sigma]`` standard deviations,
    i.e. ``diff(Φ(linspace(-sigma, sigma, ksize + 1)))`` normalised. ``sigma`` is then the cut-off
    in standard deviations, not a width in pixels: ``(5, 3)`` → [.035 .239 .453 .239 .035].

    ``kernel="sampled"``: ``exp(-x²/2σ²)`` sampled at ``x = -(k-1)/2 … (k-1)/2`` px (OpenCV's
    ``getGaussianKernel``), σ in pixels.
    """
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"ksize must be a positive odd number, got {ksize}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if kernel == "authors":
        edges = [-sigma + 2.0 * sigma * i / ksize for i in range(ksize + 1)]
        cdf = [0.5 * (1.0 + math.erf(e / math.sqrt(2.0))) for e in edges]
        w = [b - a for a, b in zip(cdf[:-1], cdf[1:])]
    elif kernel == "sampled":
        half = (ksize - 1) / 2
        w = [math.exp(-((i - half) ** 2) / (2.0 * sigma * sigma)) for i in range(ksize)]
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    s = sum(w)
    return [v / s for v in w]


def gaussian_blur(plane: np.ndarray, ksize: int = KSIZE, sigma: float = SIGMA, kernel: str = "authors",
                  border: str = "zero") -> np.ndarray:
    """Separable Gaussian blur of one float32 ``H×W`` plane.

    ``border="zero"`` pads with zeros (the authors' ``F.conv2d(..., padding=ksize // 2)``);
    ``"reflect"`` is reflect-101 (``dcb|abcd|cba``; SciPy's ``mirror``, torch's ``reflect``).
    """
    from scipy.ndimage import correlate1d

    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    k = np.asarray(gaussian_kernel1d(ksize, sigma, kernel), np.float32)
    mode = "constant" if border == "zero" else "mirror"
    out = correlate1d(np.asarray(plane, np.float32), k, axis=1, mode=mode, cval=0.0)
    return correlate1d(out, k, axis=0, mode=mode, cval=0.0, output=out)


def normalised_mean(image: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """``I`` of eq. (5): the channel mean of ``(v − mean) / std`` of an ``H×W×3`` (or grey ``H×W``)
    0-255 image, float32 ``H×W``. Grey images count as three equal channels (DESIGN.md)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None].repeat(3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an H×W or H×W×3 image, got shape {a.shape}")
    out = np.zeros(a.shape[:2], np.float32)
    for c in range(3):  # one channel at a time: a 5120² core stays ~100 MB in float32
        out += (a[..., c].astype(np.float32) - np.float32(mean[c])) / np.float32(std[c])
    out /= np.float32(3.0)
    return out


def roughness_map(image: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD, **eq5) -> np.ndarray:
    """Eq. (5) of an ``H×W×3`` (or grey ``H×W``) image on the 0-255 scale → float32 ``H×W``.

    The same map as :func:`trainer.losses.roughness_map` on the normalised network input (the GUI
    shows exactly the heatmap the loss uses); ``eq5``: :class:`HeatmapParams`' fields by name
    (``kernel``/``border`` as :func:`gaussian_blur`).
    """
    p = HeatmapParams(**eq5)  # an unknown name is a TypeError here
    i = normalised_mean(image, mean, std)
    heat = i - gaussian_blur(i, p.ksize, p.sigma, p.kernel, p.border)
    np.abs(heat, out=heat)
    heat *= np.float32(p.lambda_a)
    heat += np.float32(p.lambda_b)
    return heat


