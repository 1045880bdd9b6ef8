"""Per-pixel losses: focal loss, the roughness heatmap (eq. 5) and the GAF loss (eq. 6).

Every function here returns a *per-pixel* map (``B×H×W`` or ``B×K×H×W``), zero at ignored
pixels. Reductions (mean over valid pixels, the weighting of eq. 3) happen in
:mod:`trainer.reweighting`, so the N+1 losses of Fig. 1 share one code path.

All arithmetic runs in float32 even under ``torch.autocast``: the focal term ``(1-p)^γ`` with
γ < 1 and ``log p`` near 0 are exactly where half precision loses everything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# MEAN/STD (ImageNet, 0-255 scale) are the network input's normalisation; re-exported here so the
# roughness map of a raw image (GUI) is computed on exactly what the network sees.
from trainer.data.augment import MEAN, STD
from trainer.data.classes import IGNORE_INDEX

# eq. (5)'s constants and Gaussian live in the torch-free module the GUI draws the map with.
from trainer.roughness import BORDERS, KERNELS, KSIZE, LAMBDA_A, LAMBDA_B, SIGMA, HeatmapParams  # noqa: F401, E402
from trainer.roughness import gaussian_kernel1d as _kernel_weights  # noqa: E402
from trainer.roughness import roughness_map as _roughness_map_np  # noqa: E402

# Floor for (1 - p_t) before the power: d/dp (1-p)^γ is infinite at p = 1 for γ < 1 and autograd
# would turn inf * 0 into NaN. The loss itself changes by < 1e-12 · |log p_t|, i.e. not at all.
_FOCAL_EPS = 1e-12

AlphaLike = float | Sequence[float] | Tensor | None


def _alpha_per_class(alpha: AlphaLike, num_classes: int, device: torch.device) -> Tensor | None:
    """``alpha`` as a float32 vector of length C (None stays None = α_t ≡ 1)."""
    if alpha is None:
        return None
    if isinstance(alpha, (int, float)):
        return torch.full((num_classes,), float(alpha), dtype=torch.float32, device=device)
    a = torch.as_tensor(alpha, dtype=torch.float32, device=device).flatten()
    if a.numel() != num_classes:
        raise ValueError(f"alpha has {a.numel()} entries but the logits have {num_classes} classes")
    return a


def focal_loss_multi(
    logits: Tensor,
    targets: Tensor,
    alpha: AlphaLike = None,
    gamma: float = 0.1,
    ignore_index: int = IGNORE_INDEX,
    heatmap: Tensor | None = None,
) -> Tensor:
    """Focal loss of one prediction against K label maps at once (GAF with a ``heatmap``).

    Args:
        logits: ``B×C×H×W`` raw scores (any float dtype).
        targets: ``B×K×H×W`` integer class maps (e.g. the vote and the N experts of Fig. 1);
            ``ignore_index`` marks pixels that count for nothing.
        alpha: None (α_t = 1), one float for every class, or a per-class sequence of length C.
        gamma: focusing parameter γ (the authors' configs use 0.1; γ = 0 is cross-entropy).
        heatmap: optional ``B×H×W`` eq. (5) map multiplying all K losses (:func:`gaf_loss`).

    Returns:
        float32 ``B×K×H×W`` map ``-α_t (1-p_t)^γ log p_t``, exactly 0 at ignored pixels.

    The paper writes ``L_focal = -Σ_t α_t (1-p_t)^γ p_t`` (section 2.2), dropping the log; that is a
    typo for Lin et al.'s focal loss [13], which is what is implemented here.
    """
    if targets.dim() != 4 or logits.dim() != 4:
        raise ValueError(f"expected logits B×C×H×W and targets B×K×H×W, got {tuple(logits.shape)}, {tuple(targets.shape)}")
    if logits.shape[0] != targets.shape[0] or logits.shape[2:] != targets.shape[2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not match")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logp = F.log_softmax(logits.float(), dim=1)  # B×C×H×W, stable log p
        t = torch.where(targets != ignore_index, targets, torch.zeros_like(targets)).long()
        # gather along the class axis with a K-channel index: out[b,k] = logp[b, t[b,k]]
        logpt = torch.gather(logp, 1, t)  # B×K×H×W
        return focal_of_log_likelihood(logpt, targets, logits.shape[1], alpha, gamma, ignore_index, heatmap)


def focal_of_log_likelihood(
    logpt: Tensor,
    targets: Tensor,
    num_classes: int,
    alpha: AlphaLike = None,
    gamma: float = 0.1,
    ignore_index: int = IGNORE_INDEX,
    heatmap: Tensor | None = None,
) -> Tensor:
    """``-α_t (1-p_t)^γ log p_t`` from the log-likelihood ``logpt`` (``B×K×H×W``) of each label in
    ``targets`` — times the eq. (5) ``heatmap`` (``B×H×W``, the GAF loss of eq. 6) when given —
    float32, exactly 0 where ``targets == ignore_index``.

    :func:`focal_loss_multi` passes the network's own ``log p_t``; the confusion model passes the
    likelihood of each expert's label under ``p̃ = A·p``, so both share α, γ and the heatmap here.
    """
    valid = targets != ignore_index
    with torch.autocast(device_type=logpt.device.type, enabled=False):
        loss = focal_from_log_prob(logpt.float(), gamma)
        a = _alpha_per_class(alpha, num_classes, logpt.device)
        if a is not None:
            loss = loss * a[torch.where(valid, targets, torch.zeros_like(targets)).long()]
        if heatmap is not None:
            loss = loss * heatmap.detach().float()[:, None]
        return torch.where(valid, loss, torch.zeros_like(loss))


def focal_from_log_prob(logpt: Tensor, gamma: float) -> Tensor:
    """``-(1 - p)^γ log p`` from ``log p`` (float32), stable at p → 1 and for γ < 1.

    Shared by the focal loss of the network's own prediction and the noisy-label likelihood of
    the confusion model (:mod:`trainer.annotators.confusion`).
    """
    if gamma == 0:
        return -logpt
    one_minus_p = (-torch.expm1(logpt)).clamp_min(_FOCAL_EPS)  # 1 - p_t without cancellation
    return -one_minus_p.pow(gamma) * logpt


def focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: AlphaLike = None,
    gamma: float = 0.1,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Focal loss per pixel: logits ``B×C×H×W``, target ``B×H×W`` → float32 ``B×H×W`` (0 where ignored)."""
    return focal_loss_multi(logits, target.unsqueeze(1), alpha, gamma, ignore_index)[:, 0]


def gaussian_kernel1d(ksize: int = KSIZE, sigma: float = SIGMA, device=None, dtype=torch.float32,
                      kernel: str = "authors") -> Tensor:
    """:func:`trainer.roughness.gaussian_kernel1d`'s weights (the authors' ``gkern`` by default, or a
    sampled Gaussian; see there) as a tensor."""
    return torch.tensor(_kernel_weights(ksize, sigma, kernel), device=device, dtype=dtype)


def gaussian_blur(x: Tensor, ksize: int = KSIZE, sigma: float = SIGMA, kernel: str = "authors",
                  border: str = "zero") -> Tensor:
    """Blur each channel of ``B×C×H×W`` with a separable Gaussian (:func:`gaussian_kernel1d`).

    ``border="zero"`` (the authors' ``F.conv2d(img, gkern, padding=2)``) pads with zeros — on the
    normalised input, so a border pixel is compared with a blur that includes "mean grey";
    ``border="reflect"`` is reflect-101 (``dcb|abcd|cba``: OpenCV's default, SciPy's ``mirror``).
    The 2-D kernel is the outer product of the 1-D one, so two 1-D passes give the same result.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    b, c, h, w = x.shape
    r = ksize // 2
    k = gaussian_kernel1d(ksize, sigma, device=x.device, dtype=x.dtype, kernel=kernel)
    y = x.reshape(b * c, 1, h, w)
    if border == "reflect":
        y = F.pad(y, (r, r, r, r), mode="reflect")
        pad = 0
    else:
        pad = r
    y = F.conv2d(y, k.view(1, 1, 1, ksize), padding=(0, pad))  # along W
    y = F.conv2d(y, k.view(1, 1, ksize, 1), padding=(pad, 0))  # along H
    return y.reshape(b, c, h, w)


def roughness_map(x: Tensor, **eq5) -> Tensor:
    """Gaussian attention heatmap of eq. (5) on the channel mean of the (normalised) network input.

    Args:
        x: ``B×3×H×W`` or ``B×1×H×W`` network input (ImageNet-normalised, as the network sees it).
        eq5: the settings of eq. (5) by name, :class:`~trainer.roughness.HeatmapParams`' fields
            (``lambda_a``, ``lambda_b``, ``ksize``, ``sigma``, ``kernel``, ``border``; defaults the authors').

    Returns:
        float32 ``B×H×W`` map ``λa·|I − Gauss(I)| + λb`` with ``I`` the channel mean. Detached: it is a
        prior computed from the input, not something to learn through.
    """
    p = HeatmapParams(**eq5)  # an unknown name is a TypeError here
    if x.dim() != 4:
        raise ValueError(f"expected B×C×H×W input, got {tuple(x.shape)}")
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        i = x.detach().float().mean(dim=1, keepdim=True)  # B×1×H×W
        heat = p.lambda_a * (i - gaussian_blur(i, p.ksize, p.sigma, p.kernel, p.border)).abs() + p.lambda_b  # eq. (5)
    return heat[:, 0]


def roughness_map_numpy(image: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD,
                        **eq5) -> np.ndarray:
    """Roughness map of an ``H×W×3`` (or grey ``H×W``) image on the 0-255 scale → float32 ``H×W``.

    Normalises like the network input (per-channel ``(v - mean) / std``) so the GUI shows exactly
    the heatmap the loss uses; grey images are stacked to three channels first (DESIGN.md).
    NumPy/SciPy (:func:`trainer.roughness.roughness_map`), equal to :func:`roughness_map` to float
    rounding.
    """
    return _roughness_map_np(image, mean, std, **eq5)


def heatmap_options(loss_config: dict | None) -> dict:
    """The eq. (5) settings a run used, as keyword arguments of :func:`roughness_map` (and the
    numpy and banded versions), read from a run's ``config["loss"]`` (an older checkpoint's as
    :func:`trainer.checkpoint.run_config_of` fills it in: the kernel it trained with)."""
    return HeatmapParams.from_loss(loss_config).kwargs()


def gaf_loss(
    logits: Tensor,
    target: Tensor,
    image: Tensor | None = None,
    alpha: AlphaLike = None,
    gamma: float = 0.1,
    ignore_index: int = IGNORE_INDEX,
    heatmap: Tensor | None = None,
    **eq5,
) -> Tensor:
    """Gaussian attention focal loss, eq. (6): ``W_heat ⊙ L_focal`` per pixel.

    Args:
        logits: ``B×C×H×W``.
        target: ``B×H×W`` (one label map) or ``B×K×H×W`` (vote + experts in one batched call).
        image: ``B×3×H×W`` normalised network input; ignored if ``heatmap`` is given.
        heatmap: precomputed ``B×H×W`` :func:`roughness_map` (compute it once per batch).
        eq5: the heatmap's settings, as :func:`roughness_map` takes them (when ``heatmap`` is None).

    Returns:
        float32 map shaped like ``target``, 0 at ignored pixels.
    """
    if heatmap is None:
        if image is None:
            raise ValueError("gaf_loss needs the network input image or a precomputed heatmap")
        heatmap = roughness_map(image, **eq5)
    heatmap = heatmap.detach().float()
    if heatmap.shape[-2:] != target.shape[-2:]:
        # the model's logits are at the input size; this only triggers for a heatmap at another size
        heatmap = F.interpolate(heatmap[:, None], size=target.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if target.dim() == 3:
        return focal_loss_multi(logits, target.unsqueeze(1), alpha, gamma, ignore_index, heatmap)[:, 0]
    return focal_loss_multi(logits, target, alpha, gamma, ignore_index, heatmap)


#: How a per-pixel loss map becomes a scalar. ``"authors"``: the mean over batch × **classes** ×
#: pixels, as the authors' loss (a one-hot B×C×H×W map averaged whole, loss weight 1, no
#: ``avg_factor``) — i.e. the per-pixel loss divided by C. ``"pixel"``: the mean over pixels of the
#: per-pixel loss (summed over classes), this project's first reading: C× the authors' (4× on
#: Gleason), so the same learning rate acts like a C× larger one.
REDUCTIONS = ("authors", "pixel")


def reduction_scale(reduction: str, num_classes: int) -> float:
    """Factor on a per-pixel loss map so that its mean over valid pixels is the ``reduction``'s."""
    if reduction == "authors":
        return 1.0 / num_classes
    if reduction == "pixel":
        return 1.0
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
