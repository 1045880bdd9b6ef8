"""Zhang et al.'s per-annotator confusion heads on the segmentation network's own decoder features.

Zhang, Tanno et al. (NeurIPS 2020, ``Models.py``: ``UNet_CMs``) do not train a second network: one
U-Net's last decoder features feed both the segmentation layer and, per annotator, a small head
(``cm_layers``) that outputs a C×C matrix per pixel. The matrices then share everything the
segmentation network has learnt about the tissue, and cost only the heads.

Their head as written (two double-conv blocks at the decoder's width, at full resolution) would cost
more than HRNet18 itself on its 270-channel, 256² features at a 1024² input; this one keeps the idea
(shared features, a matrix per expert and pixel) at a small cost:

* a 1×1 convolution reduces the decoder's F channels to ``width`` (32), batch norm, ReLU;
* one 3×3 convolution at that width (the spatial context of one of their double convs), BN, ReLU;
* a 1×1 convolution to N·C·C logits — each expert's own linear read-out of the shared features;
* a softmax over the label axis i makes every column ``A[:, j]`` a distribution (their code
  normalises a Softplus output the same way).

The heads run at the decoder's resolution (stride 4 for HRNet and DeepLabV3+, 8 for PSPNet, 1 for
U-Net); training resizes the logits to the input, inference computes every map at the decoder's
resolution and resizes only the finished maps (:mod:`trainer.prediction.predictor`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: channels the decoder features are reduced to before the per-expert read-out
DEFAULT_WIDTH = 32


class ConfusionHeads(nn.Module):
    """Decoder features ``B×F×h×w`` → log confusion ``B×N×C×C×h'×w'`` (log-softmax over i).

    Args:
        num_experts, num_classes: N and C.
        in_channels: F, the segmentation network's :attr:`~trainer.models.Segmenter.feature_channels`.
        width: channels of the shared reduction (32).
        diag_init: every matrix starts with this on its diagonal, as :class:`.confusion.ConfusionCNN`.
    """

    form = "heads"

    def __init__(self, num_experts: int, num_classes: int, in_channels: int, width: int = DEFAULT_WIDTH,
                 diag_init: float = 0.9):
        super().__init__()
        if num_experts < 1 or num_classes < 2:
            raise ValueError(f"need ≥ 1 expert and ≥ 2 classes, got {num_experts} and {num_classes}")
        if not 1.0 / num_classes < diag_init < 1:
            raise ValueError(f"diag_init must be in (1/C, 1), got {diag_init}")
        self.num_experts, self.num_classes = int(num_experts), int(num_classes)
        #: plain dict that rebuilds the architecture (checkpoints): :func:`.confusion_from_config`
        self.config = {"form": self.form, "num_experts": self.num_experts, "num_classes": self.num_classes,
                       "in_channels": int(in_channels), "width": int(width), "diag_init": float(diag_init)}
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                    nn.ReLU(inplace=True))
        self.mix = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU(inplace=True))
        n, c = self.num_experts, self.num_classes
        self.head = nn.Conv2d(width, n * c * c, kernel_size=1)
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            # softmax over i of (b on the diagonal, 0 elsewhere) gives diag_init on the diagonal
            b = math.log(diag_init * (c - 1) / (1 - diag_init))
            self.head.bias.copy_((torch.eye(c) * b).repeat(n, 1, 1).flatten())

    def logits(self, feats: Tensor) -> Tensor:
        """Unnormalised ``B×(N·C·C)×h×w`` at the features' resolution."""
        return self.head(self.mix(self.reduce(feats)))

    def forward(self, feats: Tensor, size: tuple[int, int] | None = None,
                crop: tuple[int, int] | None = None) -> Tensor:
        """float32 log confusion ``B×N×C×C×h×w``: at the features' resolution, or resized
        (bilinear, on the logits) to ``size`` and then cropped to ``crop`` (the padded input's size
        and the input's own, see :meth:`trainer.models.Segmenter.padded_size`)."""
        logits = self.logits(feats).float()
        if size is not None and tuple(size) != tuple(logits.shape[-2:]):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        if crop is not None:
            logits = logits[..., :crop[0], :crop[1]]
        b, _, h, w = logits.shape
        logits = logits.view(b, self.num_experts, self.num_classes, self.num_classes, h, w)
        return torch.log_softmax(logits, dim=2)
