"""Pixel-wise annotator confusion model (Zhang, Tanno et al., NeurIPS 2020), beyond the paper.

The paper's weighting CNN gives each expert a softmax weight: relative to the other experts, and
following their agreement with the network. It cannot say *which* mistake an expert makes. Here a
second network predicts, for every expert n and pixel x, a confusion matrix

    A_n(x)[i, j] = p(expert n writes class i | the true class is j, image around x),

each column a distribution over the label written (softmax over i). The segmentation network's
class probabilities p(x) are the estimated truth; expert n's label is modelled as drawn from

    p̃_n(x) = A_n(x) · p(x),                                  (noisy-label likelihood)

and training maximises the likelihood of every expert's mask under p̃_n (here through the focal /
GAF loss of the paper, with γ = 0 the plain negative log-likelihood of Zhang et al.). A penalty on
the trace of A_n pushes the matrices to explain as much disagreement as possible as expert error,
which is what makes the truth identifiable when the experts' mean confusion is diagonally dominant
(Tanno et al., CVPR 2019); where a majority shares a bias, no such model can beat the vote.

Two read-outs for a pathologist:

* an **error map** per expert: the probability that the expert's label at a pixel is wrong —
  given the label, ``1 − A[l, l]·p_l / Σ_j A[l, j]·p_j`` (Bayes), or before seeing it,
  ``1 − Σ_j A[j, j]·p_j``;
* a **confusion matrix** per expert and core: ``M[j, i] = Σ_x p_j A[i, j] / Σ_x p_j`` (row = true
  class as the model sees it, column = the expert's label; rows sum to 1), e.g. "expert 3: G3 →
  G4 on 38 % of G3".

Shapes: B images, N experts, C classes; ``log_a`` is ``B×N×C×C×H×W`` indexed ``[b, n, i, j]`` with
i the label written and j the true class.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .backbone import resnet18_trunk


class ConfusionCNN(nn.Module):
    """Image → a C×C confusion matrix per expert and pixel (log-probabilities).

    The trunk is the weighting CNN's (:func:`~trainer.annotators.backbone.resnet18_trunk`, the
    authors' stride-4 ResNet-18 by default); the head is a ``head_kernel``² conv to N·C·C logits,
    resized bilinearly to the requested size before the softmax over the label axis.

    Args:
        num_experts, num_classes: N and C.
        pretrained: False, True (ImageNet through the timm hub) or a local ResNet-18 file.
        input_scale: run the network on the input resized by this factor (speed).
        stride: trunk output stride (4 = the authors' weighting CNN; 8, 16, 32 cut ResNet-18).
        head_kernel: 3 (as the authors' weighting head) or 1.
        diag_init: every matrix starts with this on its diagonal ("each expert is right 90 % of the
            time"), the rest spread evenly: a start from which both directions can be learnt.
    """

    form = "trunk"

    def __init__(self, num_experts: int, num_classes: int, pretrained: bool | str | Path = False,
                 input_scale: float = 1.0, stride: int = 4, head_kernel: int = 3, diag_init: float = 0.9,
                 form: str = "trunk"):
        super().__init__()
        if form != self.form:
            raise ValueError(f"ConfusionCNN is the {self.form!r} form, not {form!r}")
        if num_experts < 1 or num_classes < 2:
            raise ValueError(f"need ≥ 1 expert and ≥ 2 classes, got {num_experts} and {num_classes}")
        if not 0 < input_scale <= 1:
            raise ValueError(f"input_scale must be in (0, 1], got {input_scale}")
        if head_kernel not in (1, 3):
            raise ValueError(f"head_kernel must be 1 or 3, got {head_kernel}")
        if not 1.0 / num_classes < diag_init < 1:
            raise ValueError(f"diag_init must be in (1/C, 1), got {diag_init}")
        self.num_experts, self.num_classes = int(num_experts), int(num_classes)
        self.input_scale, self.stride = float(input_scale), int(stride)
        #: plain dict that rebuilds the architecture: :func:`confusion_from_config` (checkpoints)
        self.config = {"form": self.form, "num_experts": self.num_experts, "num_classes": self.num_classes,
                       "input_scale": self.input_scale, "stride": self.stride,
                       "head_kernel": int(head_kernel), "diag_init": float(diag_init)}
        self.backbone, channels = resnet18_trunk(pretrained, self.stride, "the confusion network (resnet18)")
        n, c = self.num_experts, self.num_classes
        self.head = nn.Conv2d(channels, n * c * c, kernel_size=head_kernel, padding=head_kernel // 2)
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            # softmax over i of (b on the diagonal, 0 elsewhere) gives diag_init on the diagonal
            b = math.log(diag_init * (c - 1) / (1 - diag_init))
            self.head.bias.copy_((torch.eye(c) * b).repeat(n, 1, 1).flatten())

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """``B×3×H×W`` normalised input → float32 log confusion ``B×N×C×C×h×w`` (log-softmax over i).

        ``size``: output ``(h, w)``, default the input's.
        """
        size = tuple(size) if size is not None else tuple(x.shape[-2:])
        if self.input_scale != 1.0:
            x = F.interpolate(x, scale_factor=self.input_scale, mode="bilinear", align_corners=False)
        logits = self.head(self.backbone.forward_features(x)).float()
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        b = logits.shape[0]
        logits = logits.view(b, self.num_experts, self.num_classes, self.num_classes, *size)
        return torch.log_softmax(logits, dim=2)


def cell_index(length: int, cells: int, cover: int) -> Tensor:
    """The grid cell each of ``length`` pixels lies in, for ``cells`` cells spread over ``cover``
    pixels (the padded input the decoder saw): ``floor((y + ½)·cells/cover)``."""
    idx = ((torch.arange(length, dtype=torch.float64) + 0.5) * (cells / cover)).floor().long()
    return idx.clamp_(0, cells - 1)


def noisy_label_log_likelihood(log_p: Tensor, log_a: Tensor, labels: Tensor, ignore_index: int,
                               cover: tuple[int, int] | None = None) -> Tensor:
    """``log p̃_n(label)`` per expert and pixel, ``p̃_n = A_n · p`` computed in log space.

    Args:
        log_p: ``B×C×H×W`` log-probabilities of the estimated truth (log-softmax of the logits).
        log_a: ``B×N×C×C×h×w``: at the pixels' resolution (h, w = H, W), or on a coarser grid of
            matrices covering ``cover`` pixels (the padded input of :class:`~.heads.ConfusionHeads`),
            each cell's matrix applying to the pixels in it — only the label's row of each pixel's
            cell is gathered, never the full-resolution matrices.
        labels: ``B×N×H×W`` each expert's class map; ``ignore_index`` where it has no label.

    Returns:
        float32 ``B×N×H×W``; 0 at ignored pixels (callers mask them out anyway).
    """
    b, n, c = log_a.shape[:3]
    hh, ww = labels.shape[-2:]
    valid = labels != ignore_index
    t = torch.where(valid, labels, torch.zeros_like(labels)).long()
    if tuple(log_a.shape[-2:]) == (hh, ww):
        idx = t[:, :, None, None].expand(b, n, 1, c, hh, ww)
        row = torch.gather(log_a, 2, idx)[:, :, 0]  # B×N×C(j)×H×W: log A[label, j]
        ll = torch.logsumexp(row + log_p.float()[:, None], dim=2)  # log Σ_j A[label, j] p_j
    else:
        cover = tuple(cover or (hh, ww))
        dev = log_a.device
        iy = cell_index(hh, log_a.shape[-2], cover[0]).to(dev)
        ix = cell_index(ww, log_a.shape[-1], cover[1]).to(dev)
        cells = log_a.permute(0, 1, 4, 5, 2, 3)  # B×N×h×w×C(i)×C(j)
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ni = torch.arange(n, device=dev)[None, :, None, None]
        row = cells[bi, ni, iy[None, None, :, None], ix[None, None, None, :], t]  # B×N×H×W×C(j)
        ll = torch.logsumexp(row + log_p.float().permute(0, 2, 3, 1)[:, None], dim=-1)
    return torch.where(valid, ll, torch.zeros_like(ll))


def trace_penalty(log_a: Tensor, present: Tensor) -> Tensor:
    """Mean over the present experts and all pixels of ``tr(A_n)/C`` (in [1/C·…, 1]).

    Zhang et al. add ``Σ_n mean_x tr(A_n(x))`` to the loss; here the same quantity is averaged
    over experts and divided by C, so its weight does not depend on N or C.
    """
    c = log_a.shape[2]
    diag = torch.diagonal(log_a, dim1=2, dim2=3).exp()  # B×N×H×W×C
    tr = diag.sum(-1).mean(dim=(-2, -1)) / c  # B×N
    present = present.to(device=tr.device, dtype=tr.dtype)
    return (tr * present).sum() / present.sum().clamp_min(1)


def error_map_prior(probs: Tensor, a: Tensor) -> Tensor:
    """``1 − Σ_j A_n[j, j] p_j``: the chance that expert n's label is wrong, before seeing it.

    probs ``C×H×W``, a ``N×C×C×H×W`` (probabilities) → ``N×H×W``.
    """
    diag = torch.diagonal(a, dim1=1, dim2=2)  # N×H×W×C
    return (1 - (diag * probs.permute(1, 2, 0)[None]).sum(-1)).clamp(0, 1)


def wrong_if_labelled(probs: Tensor, a: Tensor) -> Tensor:
    """For one expert: ``C×H×W`` maps, map l = p(truth ≠ l | the expert wrote l) — the posterior
    error for every label the expert could have written (probs ``C×H×W``, a ``C×C×H×W``)."""
    noisy = (a * probs[None]).sum(1)  # C(i)×H×W: p̃(i) = Σ_j A[i, j] p_j
    right = torch.diagonal(a, dim1=0, dim2=1).permute(2, 0, 1) * probs  # A[l, l] p_l
    return (1 - right / noisy.clamp_min(1e-12)).clamp(0, 1)


def confusion_summary(probs: Tensor, a: Tensor, mask: Tensor | None = None) -> Tensor:
    """Each expert's mean confusion matrix on a core: ``M[n, j, i] = Σ_x p_j A_n[i, j] / Σ_x p_j``.

    probs ``C×H×W``, a ``N×C×C×H×W``, mask ``H×W`` bool (e.g. tissue) or float (each pixel's share
    of it, e.g. a mask resized to the matrices' grid) → float64 ``N×C×C`` with rows = true class,
    columns = label written; a row of a class with no probability mass is NaN.
    """
    p = probs.double()
    if mask is not None:
        mask = mask.to(p.device)
        p = p * (mask.double() if mask.is_floating_point() else mask.bool())
    num = torch.einsum("jhw,nijhw->nji", p, a.double())
    den = p.sum(dim=(1, 2))  # C
    out = num / den[None, :, None]
    return torch.where(den[None, :, None] > 0, out, torch.full_like(out, float("nan")))


def confusion_from_config(config: dict) -> nn.Module:
    """The confusion model a checkpoint's ``confusion_config`` describes: Zhang et al.'s heads on the
    segmentation network (``"form": "heads"``) or the separate ResNet-18 trunk (``"trunk"``; an older
    config without ``form`` is filled in by :func:`trainer.checkpoint.confusion_config_of`)."""
    from .heads import ConfusionHeads

    config = dict(config)
    form = config.pop("form", None)
    if form == "heads":
        return ConfusionHeads(**config)
    if form == "trunk":
        return ConfusionCNN(**config)
    raise ValueError(f"unknown confusion model form {form!r} (heads or trunk)")
