"""The training objective of one iteration (Fig. 1), built from the functions of ``losses.py``,
``reweighting.py`` and ``annotators/confusion.py`` — no inline copies of them.

Three forms, chosen by the run's :class:`~trainer.config.LossConfig`:

* vote only: ``L = L_vote`` (focal or GAF loss against the majority vote, eq. 1, 6);
* re-weighting (the paper): ``L = λ1·L_vote + λ2·L_weighted`` (eq. 3-4, 7-8), the N expert losses
  weighted per pixel by the weighting CNN;
* confusion (beyond the paper): ``L = λ1·L_vote + λ2·(L_noisy + μ·trace)``, where ``L_noisy`` is the
  focal / GAF loss of each expert's label under ``p̃_n = A_n·p`` (Zhang, Tanno et al. 2020), averaged
  over the experts present like eq. 3 with unit weights, and ``trace`` the mean ``tr(A_n)/C``.

Every per-pixel map is scaled by :func:`~trainer.losses.reduction_scale` (the authors' mean over
classes × pixels by default), the GAF heatmap of eq. (5) multiplies all N+1 maps alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .annotators.confusion import noisy_label_log_likelihood, trace_penalty
from .config import LossConfig
from .data.classes import IGNORE_INDEX
from .losses import focal_loss_multi, focal_of_log_likelihood, gaf_loss, reduction_scale, roughness_map
from .reweighting import combine_losses, lambda_schedule


def heatmap(cfg: LossConfig, image: Tensor) -> Tensor | None:
    """The GAF attention heatmap of eq. (5) for the run's settings, or None for plain focal."""
    if cfg.loss != "gafl":
        return None
    return roughness_map(image.float(), cfg.lambda_a, cfg.lambda_b, cfg.gauss_ksize, cfg.gauss_sigma,
                         cfg.gauss_kernel, cfg.gauss_border)


def training_loss(cfg: LossConfig, logits: Tensor, image: Tensor, vote: Tensor, iteration: int, *,
                  experts: Tensor | None = None, present: Tensor | None = None,
                  weights: Tensor | None = None, log_confusion: Tensor | None = None,
                  expert_names: tuple[str, ...] = ()) -> tuple[dict[str, Tensor], float, float]:
    """Loss terms of one iteration. Returns ({term: scalar tensor}, λ1, λ2).

    Args:
        logits: ``B×C×H×W`` float32 segmentation logits.
        image: ``B×3×H×W`` normalised network input (for the heatmap).
        vote: ``B×H×W`` majority vote; ``experts``: ``B×N×H×W`` labels; ``present``: ``B×N`` bool.
        weights: ``B×N×H×W`` weighting-CNN output (re-weighting) — or
        log_confusion: ``B×N×C×C×H×W`` confusion-CNN output (confusion model); neither: vote only.
    Terms: ``total``, ``vote``; with re-weighting ``weighted`` and ``weight/<expert>`` (mean weight
    over the expert's labelled pixels); with confusion ``noisy``, ``trace`` and ``error/<expert>``
    (the expert's mean off-diagonal mass, 1 − tr(A)/C, over the images it annotated).
    """
    num_classes = logits.shape[1]
    scale = reduction_scale(cfg.reduction, num_classes)
    heat = heatmap(cfg, image)
    annotated = weights is not None or log_confusion is not None
    targets = torch.cat([vote[:, None], experts], dim=1) if weights is not None else vote[:, None]
    # The N+1 focal (eq. 6: GAF, the same heatmap for all) losses in one batched call (section 2.1);
    # only the vote's with the confusion model, whose expert terms go through A_n.
    if heat is not None:
        maps = gaf_loss(logits, targets, alpha=cfg.alpha, gamma=cfg.gamma, ignore_index=IGNORE_INDEX, heatmap=heat)
    else:
        maps = focal_loss_multi(logits, targets, alpha=cfg.alpha, gamma=cfg.gamma, ignore_index=IGNORE_INDEX)
    maps = maps * scale
    valid = targets != IGNORE_INDEX
    if not annotated:
        v = valid[:, 0]
        vote_loss = (maps[:, 0] * v).sum() / v.sum().clamp_min(1)
        return {"total": vote_loss, "vote": vote_loss}, 1.0, 0.0
    lam1, lam2 = lambda_schedule(iteration, cfg.lambda_step, cfg.lambda_form)  # eq. (7-8)
    valid_experts = experts != IGNORE_INDEX
    if weights is not None:
        terms = combine_losses(maps[:, 0], maps[:, 1:], weights, present, valid[:, 0], valid_experts, lam1, lam2)
        with torch.no_grad():  # mean weight per expert over its labelled pixels: shows a collapse
            v = valid_experts.float()
            for i, name in enumerate(expert_names):
                if v[:, i].sum() > 0:
                    terms[f"weight/{name}"] = (weights[:, i] * v[:, i]).sum() / v[:, i].sum()
        return terms, lam1, lam2
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_p = F.log_softmax(logits.float(), dim=1)
        ll = noisy_label_log_likelihood(log_p, log_confusion, experts, IGNORE_INDEX)
        # the same focal / GAF loss as the vote's, of each expert's label under p̃_n = A_n·p
        noisy = focal_of_log_likelihood(ll, experts, num_classes, cfg.alpha, cfg.gamma, IGNORE_INDEX, heat) * scale
        unit = present.to(noisy.dtype)[:, :, None, None].expand_as(noisy)
        terms = combine_losses(maps[:, 0], noisy, unit, present, valid[:, 0], valid_experts, lam1, lam2)
        terms["noisy"] = terms.pop("weighted")
        trace = trace_penalty(log_confusion, present)
    terms["trace"] = trace
    terms["total"] = terms["total"] + lam2 * cfg.confusion_trace * trace
    with torch.no_grad():
        c = log_confusion.shape[2]
        off = 1 - torch.diagonal(log_confusion, dim1=2, dim2=3).exp().sum(-1).mean(dim=(-2, -1)) / c  # B×N
        for i, name in enumerate(expert_names):
            if present[:, i].any():
                terms[f"error/{name}"] = off[present[:, i], i].mean()
    return terms, lam1, lam2
