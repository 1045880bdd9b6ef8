"""Focal loss, roughness heatmap (eq. 5) and GAF loss (eq. 6) against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from trainer.data import augment
from trainer.losses import (
    MEAN,
    STD,
    focal_loss,
    focal_loss_multi,
    gaf_loss,
    gaussian_kernel1d,
    heatmap_options,
    roughness_map,
    roughness_map_numpy,
)

# 1×3×1×3: two labelled pixels and one ignored one.
LOGITS = torch.tensor([[1.0, 0.2, 0.0], [2.0, -1.0, 0.0], [0.5, 3.0, 0.0]]).view(1, 3, 1, 3)
TARGET = torch.tensor([[[1, 0, 255]]])
ALPHA = (0.25, 0.5, 2.0)


def _focal_by_hand(z: list[float], t: int, alpha: tuple[float, ...], gamma: float) -> float:
    p = math.exp(z[t]) / sum(math.exp(v) for v in z)
    return -alpha[t] * (1 - p) ** gamma * math.log(p)


@pytest.mark.parametrize(
    "gamma, expected",
    # numbers from -α_t (1-p_t)^γ log p_t with plain Python math (p_t = 0.62853..., 0.05635...)
    [(2.0, (0.03203881861937017, 0.640283740170416)), (0.1, (0.21029318357665666, 0.7148793567315399))],
)
def test_focal_matches_hand_computed_values(gamma, expected):
    out = focal_loss(LOGITS, TARGET, alpha=ALPHA, gamma=gamma)
    assert out.shape == (1, 1, 3) and out.dtype == torch.float32
    assert out[0, 0, 0].item() == pytest.approx(expected[0], rel=1e-5)
    assert out[0, 0, 1].item() == pytest.approx(expected[1], rel=1e-5)
    assert out[0, 0, 2].item() == 0.0  # ignored pixel
    # and the literal numbers really are the formula
    assert _focal_by_hand([1.0, 2.0, 0.5], 1, ALPHA, gamma) == pytest.approx(expected[0], rel=1e-12)
    assert _focal_by_hand([0.2, -1.0, 3.0], 0, ALPHA, gamma) == pytest.approx(expected[1], rel=1e-12)


def test_focal_alpha_float_and_none():
    base = focal_loss(LOGITS, TARGET, alpha=None, gamma=0.1)
    assert torch.allclose(focal_loss(LOGITS, TARGET, alpha=3.0, gamma=0.1), 3.0 * base)
    with pytest.raises(ValueError, match="alpha has 2 entries"):
        focal_loss(LOGITS, TARGET, alpha=(1.0, 2.0))


def test_gamma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 255
    ref = F.cross_entropy(logits, target, reduction="none", ignore_index=255)
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), ref, atol=1e-6)
    # focal with γ > 0 down-weights every pixel (factor (1-p)^γ < 1)
    foc = focal_loss(logits, target, gamma=2.0)
    assert (foc <= ref + 1e-7).all() and (foc[target != 255] < ref[target != 255]).all()


def test_focal_multi_equals_separate_calls():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 8, 8, generator=g)
    targets = torch.randint(0, 4, (2, 3, 8, 8), generator=g)
    targets[:, 1, :3] = 255
    multi = focal_loss_multi(logits, targets, alpha=(1.0, 2.0, 0.5, 4.0), gamma=0.1)
    for k in range(3):
        single = focal_loss(logits, targets[:, k], alpha=(1.0, 2.0, 0.5, 4.0), gamma=0.1)
        assert torch.equal(multi[:, k], single)


def test_focal_gradient_finite_at_certain_pixels():
    # p_t == 1 exactly: d(1-p)^γ/dp is infinite for γ < 1; the loss must not produce NaN gradients
    logits = torch.tensor([[100.0, -100.0], [0.3, 0.1]]).view(1, 2, 1, 2).requires_grad_()
    out = focal_loss(logits, torch.tensor([[[0, 1]]]), gamma=0.1)
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert out[0, 0, 0].item() == pytest.approx(0.0, abs=1e-12)


def test_focal_float32_under_autocast():
    logits = torch.randn(1, 4, 4, 4).bfloat16()
    target = torch.randint(0, 4, (1, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = focal_loss(logits, target)
    assert out.dtype == torch.float32
    assert torch.allclose(out, focal_loss(logits.float(), target))


def test_authors_kernel_is_gkern_5_3():
    # the authors' gkern(5, nsig=3): the normal's mass in 5 equal bins over [-3σ, 3σ], normalised
    # (reference: SciPy's normal CDF, not our erf)
    from scipy.stats import norm

    ref = np.diff(norm.cdf(np.linspace(-3, 3, 6)))
    ref /= ref.sum()
    k = gaussian_kernel1d(5, 3.0)
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-6)
    np.testing.assert_allclose(k.numpy(), [0.035, 0.239, 0.453, 0.239, 0.035], atol=6e-4)  # the taps
    var = float((k.double() * torch.arange(-2.0, 3.0, dtype=torch.float64) ** 2).sum())
    assert math.sqrt(var) == pytest.approx(0.87, abs=0.01)  # σ ≈ 0.87 px, not 3 px


def test_sampled_kernel_is_sigma_3_px():
    k = gaussian_kernel1d(5, 3.0, kernel="sampled")
    assert k.sum().item() == pytest.approx(1.0, abs=1e-7)
    raw = [math.exp(-(x * x) / 18.0) for x in (-2, -1, 0, 1, 2)]
    assert torch.allclose(k, torch.tensor(raw) / sum(raw))
    with pytest.raises(ValueError):
        gaussian_kernel1d(4, 3.0)
    with pytest.raises(ValueError, match="kernel must be"):
        gaussian_kernel1d(5, 3.0, kernel="box")


def _reference_roughness(mean_img: np.ndarray, lambda_a: float, lambda_b: float, kernel: str = "authors",
                         border: str = "zero") -> np.ndarray:
    """eq. (5) with SciPy: the 2-D kernel as the outer product, correlate2d-style filtering."""
    from scipy.ndimage import correlate
    from scipy.stats import norm

    if kernel == "authors":
        k1 = np.diff(norm.cdf(np.linspace(-3, 3, 6)))
    else:
        k1 = np.exp(-np.arange(-2, 3) ** 2 / 18.0)
    k2 = np.outer(k1, k1)
    k2 /= k2.sum()
    mode = {"zero": "constant", "reflect": "mirror"}[border]  # mirror = reflect-101
    blurred = correlate(mean_img.astype(np.float64), k2, mode=mode, cval=0.0)
    return lambda_a * np.abs(mean_img - blurred) + lambda_b


def _scipy_roughness(mean_img: np.ndarray, lambda_a: float, lambda_b: float) -> np.ndarray:
    truncate = 2 / 3  # SciPy's radius = int(truncate·σ + 0.5) = 2 → kernel size 5
    assert int(truncate * 3.0 + 0.5) == 2
    blurred = gaussian_filter(mean_img.astype(np.float64), sigma=3.0, truncate=truncate, mode="mirror")
    return lambda_a * np.abs(mean_img - blurred) + lambda_b


@pytest.mark.parametrize("kernel", ["authors", "sampled"])
@pytest.mark.parametrize("border", ["zero", "reflect"])
def test_roughness_matches_scipy_on_channel_mean(kernel, border):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 9, 11)).astype(np.float32)
    heat = roughness_map(torch.from_numpy(x), kernel=kernel, border=border)
    assert heat.shape == (2, 9, 11) and heat.dtype == torch.float32
    for b in range(2):
        ref = _reference_roughness(x[b].mean(axis=0), 50.0, 1.0, kernel, border)  # borders included
        np.testing.assert_allclose(heat[b].numpy(), ref, rtol=1e-5, atol=1e-4)
    # one-channel input is its own mean
    one = roughness_map(torch.from_numpy(x[:, :1]), kernel=kernel, border=border)
    np.testing.assert_allclose(one[0].numpy(), _reference_roughness(x[0, 0], 50.0, 1.0, kernel, border),
                               rtol=1e-5, atol=1e-4)


def test_earlier_reading_is_scipy_gaussian_sigma_3():
    # the project's first reading (σ = 3 px, reflect-101) stays reachable and equals gaussian_filter
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 3, 9, 11)).astype(np.float32)
    heat = roughness_map(torch.from_numpy(x), kernel="sampled", border="reflect")
    np.testing.assert_allclose(heat[0].numpy(), _scipy_roughness(x[0].mean(axis=0), 50.0, 1.0), rtol=1e-5, atol=1e-4)


def test_authors_kernel_follows_finer_texture():
    # σ ≈ 0.87 px reacts to single-pixel texture far more than to a smooth ramp: on a checkerboard
    # the heat map is larger than the σ = 3 px one would suggest... and a linear ramp gives ~λb inside
    checker = torch.from_numpy(((np.indices((12, 12)).sum(0) % 2) * 2.0 - 1).astype(np.float32))[None, None]
    ramp = torch.linspace(-1, 1, 12).repeat(12, 1)[None, None]
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(roughness_map(ramp)[inner], torch.ones(1, 8, 8), atol=1e-4)
    assert roughness_map(checker)[inner].min() > 10


def test_roughness_lambdas():
    x = torch.randn(1, 3, 8, 8)
    d = roughness_map(x, lambda_a=1.0, lambda_b=0.0)
    assert torch.allclose(roughness_map(x), 50.0 * d + 1.0, atol=1e-5)
    assert torch.allclose(roughness_map(x, lambda_a=7.0, lambda_b=2.0), 7.0 * d + 2.0, atol=1e-5)
    flat = torch.full((1, 3, 8, 8), 0.7)
    assert torch.allclose(roughness_map(flat, border="reflect"), torch.ones(1, 8, 8), atol=1e-5)  # → λb
    # zero padding (the authors'): a flat image is λb inside, but its 2-px frame sees the zero border
    zero = roughness_map(flat)
    assert torch.allclose(zero[:, 2:-2, 2:-2], torch.ones(1, 4, 4), atol=1e-5)
    assert (zero[:, 0] > 1.5).all() and (zero[:, :, 0] > 1.5).all()


def test_roughness_is_detached():
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    assert not roughness_map(x).requires_grad


def test_roughness_numpy_normalises_like_network_input():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    assert (MEAN, STD) == (augment.MEAN, augment.STD)  # one normalisation for network and GUI
    imagenet_mean, imagenet_std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    norm = (img.astype(np.float64) - imagenet_mean) / imagenet_std
    ref = _reference_roughness(norm.mean(axis=-1), 50.0, 1.0)
    out = roughness_map_numpy(img)
    assert out.shape == (10, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    grey = roughness_map_numpy(img[..., 0])
    np.testing.assert_allclose(grey, roughness_map_numpy(np.stack([img[..., 0]] * 3, -1)))


def test_gaf_is_heatmap_times_focal():
    g = torch.Generator().manual_seed(2)
    image = torch.randn(2, 3, 8, 8, generator=g)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 4, (2, 3, 8, 8), generator=g)
    targets[0, 0, 0] = 255
    heat = roughness_map(image)
    single = gaf_loss(logits, targets[:, 0], image, gamma=0.1)
    assert torch.allclose(single, heat * focal_loss(logits, targets[:, 0], gamma=0.1))
    assert (single[0, 0] == 0).all()
    multi = gaf_loss(logits, targets, heatmap=heat, gamma=0.1)
    assert torch.allclose(multi, heat[:, None] * focal_loss_multi(logits, targets, gamma=0.1))
    multi.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_heatmap_options_follow_the_checkpoint_that_trained():
    # a run's own settings win; a config from before the authors' kernel (gauss_ksize, no
    # gauss_kernel) trained with the sampled kernel and reflect borders; none at all: today's defaults
    run = {"lambda_a": 7.0, "lambda_b": 2.0, "gauss_ksize": 3, "gauss_sigma": 1.5, "gauss_kernel": "sampled",
           "gauss_border": "zero"}
    assert heatmap_options(run) == {"lambda_a": 7.0, "lambda_b": 2.0, "ksize": 3, "sigma": 1.5,
                                    "kernel": "sampled", "border": "zero"}
    from trainer.checkpoint import run_config_of  # the one table of older-checkpoint rules

    older = {"config": {"loss": {"lambda_a": 50.0, "lambda_b": 1.0, "gauss_ksize": 5, "gauss_sigma": 3.0}}}
    old = heatmap_options(run_config_of(older)["loss"])
    assert (old["kernel"], old["border"]) == ("sampled", "reflect")
    assert heatmap_options({}) == {"lambda_a": 50.0, "lambda_b": 1.0, "ksize": 5, "sigma": 3.0,
                                   "kernel": "authors", "border": "zero"}
    x = torch.randn(1, 3, 9, 9)
    assert torch.allclose(roughness_map(x, **old), roughness_map(x, kernel="sampled", border="reflect"))
