"""Label re-weighting (section 2.1): weighting CNN (eq. 2), weighted loss (eq. 3), total loss (eq. 4),
and the λ schedule (eq. 7-8).

Shapes: B images, N experts (fixed per run, e.g. "1", "3", "4"), K = N + 1 label maps (vote first).
The per-pixel loss maps come from :func:`trainer.losses.gaf_loss` / :func:`~trainer.losses.focal_loss_multi`
called once on the stacked targets ``B×(N+1)×H×W``; :func:`combine_losses` reduces them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trainer.annotators.backbone import TRUNK_STRIDES, resnet18_trunk


class WeightingCNN(nn.Module):
    """φ_weight of eq. (2): image → per-pixel reliability weights of the N experts.

    As the authors built it (their ``fcn_mul_label`` configs), by default: a ResNet-18 whose four
    stages all have stride 1 — output stride 4, 512 channels, a 256² map at a 1024² input — and a
    3×3 conv head to N channels, then a softmax over experts (paper §3.2: "replace the fully
    connected layer with a softmax layer"). ImageNet initialisation when ``pretrained`` is given
    (the authors initialise from ImageNet; no hub is needed for a local ResNet-18 file).
    The N logits are resized bilinearly to the segmentation output size *before* the softmax, so
    the masked softmax is exact at every output pixel: absent experts get weight exactly 0 and the
    present ones sum to 1. (The authors resize the weight map nearest; the paper says bilinear.)

    Args:
        num_experts: N.
        pretrained: False, True (ImageNet via the timm hub) or a local ResNet-18 state dict path.
        input_scale: run the CNN on the input resized by this factor (e.g. 0.5 for speed); the
            output is still resized to the requested size.
        stride: 4 (the authors'), or this project's earlier cuts of ResNet-18: 32 (layer4), 16
            (after layer3, 256 channels), 8 (after layer2, 128 channels). In training mode
            BatchNorm needs more than one value per channel: ``B · (H·s/stride)² > 1``.
        head_kernel: 3 (the authors') or 1 (the earlier 1×1 head).
    """

    def __init__(self, num_experts: int, pretrained: bool | str | Path = False, input_scale: float = 1.0,
                 stride: int = 4, head_kernel: int = 3):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be ≥ 1, got {num_experts}")
        if not 0 < input_scale <= 1:
            raise ValueError(f"input_scale must be in (0, 1], got {input_scale}")
        if int(stride) not in TRUNK_STRIDES:
            raise ValueError(f"stride must be one of {sorted(TRUNK_STRIDES)}, got {stride}")
        if head_kernel not in (1, 3):
            raise ValueError(f"head_kernel must be 1 or 3, got {head_kernel}")
        self.num_experts = num_experts
        self.input_scale = float(input_scale)
        self.stride = int(stride)
        #: plain dict that rebuilds the architecture: ``WeightingCNN.from_config(config)`` (checkpoints)
        self.config = {"num_experts": int(num_experts), "input_scale": self.input_scale,
                       "stride": self.stride, "head_kernel": int(head_kernel)}
        self.backbone, channels = resnet18_trunk(pretrained, self.stride, "the weighting CNN (resnet18)")
        self.head = nn.Conv2d(channels, num_experts, kernel_size=head_kernel, padding=head_kernel // 2)

    @classmethod
    def from_config(cls, config: dict) -> "WeightingCNN":
        """Rebuild from a checkpoint's ``weighting_config`` (older ones filled in by
        :func:`trainer.checkpoint.weighting_config_of`)."""
        return cls(**dict(config))

    def forward(self, x: Tensor, present: Tensor | None = None, size: tuple[int, int] | None = None) -> Tensor:
        """Weights for each expert at each pixel.

        Args:
            x: ``B×3×H×W`` normalised network input.
            present: ``B×N`` bool, which experts annotated each image (None = all).
            size: output ``(h, w)``; default the input's ``(H, W)``.

        Returns:
            float32 ``B×N×h×w``; over the experts present for an image the weights sum to 1, absent
            experts are exactly 0 (an image with no expert present gets all zeros).
        """
        size = tuple(size) if size is not None else tuple(x.shape[-2:])
        if self.input_scale != 1.0:
            x = F.interpolate(x, scale_factor=self.input_scale, mode="bilinear", align_corners=False)
        logits = self.head(self.backbone.forward_features(x))  # B×N×h'×w' at the trunk's stride
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        b, n = logits.shape[:2]
        if present is None:
            return torch.softmax(logits, dim=1)
        present = present.to(device=logits.device, dtype=torch.bool)
        if present.shape != (b, n):
            raise ValueError(f"present must be B×N = {(b, n)}, got {tuple(present.shape)}")
        # an image without any expert would softmax over all -inf (NaN, also in the gradient):
        # unmask it and zero it afterwards instead
        keep = present | ~present.any(dim=1, keepdim=True)
        logits = logits.masked_fill(~keep[:, :, None, None], float("-inf"))
        w = torch.softmax(logits, dim=1)
        return w * present[:, :, None, None]


LAMBDA_FORMS = ("paper", "authors")


def lambda_schedule(iteration: int, step: int = 1000, form: str = "paper") -> tuple[float, float]:
    """Eq. (7)-(8): ``n = iteration // step``; λ1 = 1/(1+tanh n), λ2 = tanh n/(1+tanh n).

    λ1 + λ2 = 1; at n = 0 only the vote loss counts, and λ2 → 1/2 as n grows. ``form="authors"``
    uses their code's ``2·(sigmoid(n) − ½) = tanh(n/2)`` in place of tanh n (a slower rise).
    """
    n = max(int(iteration), 0) // int(step)
    if form == "paper":
        t = math.tanh(n)
    elif form == "authors":
        t = math.tanh(n / 2)
    else:
        raise ValueError(f"lambda form must be one of {LAMBDA_FORMS}, got {form!r}")
    return 1.0 / (1.0 + t), t / (1.0 + t)


def combine_losses(
    vote_map: Tensor,
    expert_maps: Tensor,
    weights: Tensor,
    present: Tensor,
    valid_vote: Tensor,
    valid_experts: Tensor,
    lambda1: float = 1.0,
    lambda2: float = 0.0,
    expert_names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Reduce the per-pixel losses of Fig. 1 to the scalar terms of eq. (3)-(4).

    Args:
        vote_map: ``B×H×W`` per-pixel loss against the majority vote (eq. 1).
        expert_maps: ``B×N×H×W`` per-pixel losses l_n against each expert.
        weights: ``B×N×H×W`` weight heatmap from :class:`WeightingCNN` (0 for absent experts).
        present: ``B×N`` bool, experts that annotated each image.
        valid_vote: ``B×H×W`` bool, pixels where the vote is not ignored.
        valid_experts: ``B×N×H×W`` bool, pixels where expert n's label is not ignored.
        lambda1, lambda2: balancing weights of eq. (4) (see :func:`lambda_schedule`).
        expert_names: if given, the dict also holds ``expert/<name>`` logging values.

    Returns:
        dict of scalar tensors:

        * ``vote`` = Σ valid_vote·vote_map / #valid_vote pixels (mean over the batch's valid pixels);
        * ``weighted`` (eq. 3): per pixel ``s = 1/N_b Σ_n l_n w_n`` over the experts present in image b
          with a valid label there (N_b = number of experts *present* in image b, as in the paper, so
          with softmax weights the term is ~1/N of a plain mean); then Σ s / #pixels where at least one
          present expert has a valid label;
        * ``total`` = λ1·vote + λ2·weighted (eq. 4);
        * ``expert/<name>`` (detached): unweighted mean of l_n over its valid pixels in images where n
          is present (NaN-free: 0 when it has none).

        Empty denominators count as 1, so a batch with nothing valid gives 0, not NaN.
    """
    b, n = expert_maps.shape[:2]
    if weights.shape != expert_maps.shape or valid_experts.shape != expert_maps.shape:
        raise ValueError(
            f"expert_maps {tuple(expert_maps.shape)}, weights {tuple(weights.shape)} and "
            f"valid_experts {tuple(valid_experts.shape)} must all be B×N×H×W"
        )
    present = present.to(dtype=torch.bool, device=expert_maps.device)
    pv = valid_experts & present[:, :, None, None]  # B×N×H×W: counted expert pixels

    vote_mask = valid_vote.to(vote_map.dtype)
    vote = (vote_map * vote_mask).sum() / vote_mask.sum().clamp_min(1)

    n_present = present.sum(dim=1).clamp_min(1).to(expert_maps.dtype)  # N_b of eq. (3)
    per_pixel = (expert_maps * weights * pv).sum(dim=1) / n_present[:, None, None]  # B×H×W, eq. (3)
    any_valid = pv.any(dim=1)
    weighted = per_pixel.sum() / any_valid.sum().clamp_min(1)

    out = {"vote": vote, "weighted": weighted, "total": lambda1 * vote + lambda2 * weighted}  # eq. (4)
    if expert_names is not None:
        if len(expert_names) != n:
            raise ValueError(f"{len(expert_names)} expert names for {n} experts")
        with torch.no_grad():
            sums = (expert_maps * pv).sum(dim=(0, 2, 3))
            counts = pv.sum(dim=(0, 2, 3)).clamp_min(1)
            for name, mean in zip(expert_names, sums / counts):
                out[f"expert/{name}"] = mean
    return out
