"""The training objective of one iteration (Fig. 1), built from the functions of ``losses.py``,
``reweighting.py`` and ``annotators/confusion.py`` — no inline copies of them.

The forms, chosen by the run's :class:`~trainer.config.LossConfig`:

* vote only: ``L = L_vote`` (focal or GAF loss against the majority vote, eq. 1, 6);
* re-weighting (the paper): ``L = λ1·L_vote + λ2·L_weighted`` (eq. 3-4, 7-8), the N expert losses
  weighted per pixel by the weighting CNN;
* confusion, ``confusion_objective="zhang"`` (the default of ``--confusion``; Zhang, Tanno et al.
  2020, ``Loss.py``: ``noisy_label_loss``): ``L = L_noisy + α·mean_n mean_x tr(A_n(x))`` with
  ``L_noisy`` the mean over the experts present of each expert's mean ``−log p̃_n(label)`` under
  ``p̃_n = A_n·p``, α = ``confusion_trace`` (0.1, their code's default); no vote term, except an
  optional warm-up (``vote_warmup``) whose weight falls linearly from 1 to 0;
* confusion, ``confusion_objective="vote"`` (this project's earlier form):
  ``L = λ1·L_vote + λ2·(L_noisy + μ·tr(A_n)/C)``, ``L_noisy`` the focal / GAF loss of each label under
  ``p̃_n``, averaged over the experts present like eq. 3 with unit weights.

Every per-pixel map of the focal / GAF losses is scaled by :func:`~trainer.losses.reduction_scale`
(the authors' mean over classes × pixels by default), the GAF heatmap of eq. (5) multiplies all of
them alike. The λ step is :func:`trainer.config.lambda_step_of` (10 % of the run by default).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from .annotators.confusion import noisy_label_log_likelihood, trace_penalty
from .config import LossConfig, confusion_trace_of, lambda_step_of
from .data.classes import IGNORE_INDEX
from .losses import (focal_loss_multi, focal_of_log_likelihood, gaf_loss, heatmap_options, reduction_scale,
                     roughness_map)
from .reweighting import combine_losses, lambda_schedule


def heatmap(cfg: LossConfig, image: Tensor) -> Tensor | None:
    """The GAF attention heatmap of eq. (5) for the run's settings, or None for plain focal."""
    if cfg.loss != "gafl":
        return None
    return roughness_map(image.float(), **heatmap_options(dataclasses.asdict(cfg)))


def vote_warmup_weight(cfg: LossConfig, iteration: int, total_iters: int) -> float:
    """Weight of the vote term in the "zhang" confusion objective: 1 → 0 linearly over the first
    ``vote_warmup`` share of the run, 0 without a warm-up."""
    span = float(cfg.vote_warmup) * max(int(total_iters), 1)
    if span <= 0:
        return 0.0
    return max(0.0, 1.0 - float(iteration) / span)


def training_loss(cfg: LossConfig, logits: Tensor, image: Tensor, vote: Tensor, iteration: int, *,
                  experts: Tensor | None = None, present: Tensor | None = None,
                  weights: Tensor | None = None, log_confusion: Tensor | None = None,
                  expert_names: tuple[str, ...] = (), total_iters: int | None = None,
                  confusion_cover: tuple[int, int] | None = None) -> tuple[dict[str, Tensor], float, float]:
    """Loss terms of one iteration. Returns ({term: scalar tensor}, λ1, λ2); for the "zhang"
    confusion objective λ1 is the vote warm-up's weight and λ2 = 1.

    Args:
        logits: ``B×C×H×W`` float32 segmentation logits.
        image: ``B×3×H×W`` normalised network input (for the heatmap).
        vote: ``B×H×W`` majority vote; ``experts``: ``B×N×H×W`` labels; ``present``: ``B×N`` bool.
        weights: ``B×N×H×W`` weighting-CNN output (re-weighting) — or
        log_confusion: ``B×N×C×C×h×w`` confusion model output (at H×W, or the heads' grid covering
            ``confusion_cover`` pixels: the padded input); neither: vote only.
        total_iters: the run's length (the λ step's default and the vote warm-up); default 10 000.
    Terms: ``total``, ``vote``; with re-weighting ``weighted`` and ``weight/<expert>`` (mean weight
    over the expert's labelled pixels); with confusion ``noisy``, ``trace`` and ``error/<expert>``
    (the expert's mean off-diagonal mass, 1 − tr(A)/C, over the images it annotated).
    """
    total_iters = int(total_iters or 10_000)
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
    valid_experts = experts != IGNORE_INDEX
    if log_confusion is not None and cfg.confusion_objective == "zhang":
        terms, lam1 = _zhang(cfg, logits, maps[:, 0], valid[:, 0], experts, valid_experts, present, log_confusion,
                             heat, scale, vote_warmup_weight(cfg, iteration, total_iters), confusion_cover)
        _log_errors(terms, log_confusion, present, expert_names)
        return terms, lam1, 1.0
    lam1, lam2 = lambda_schedule(iteration, lambda_step_of(cfg, total_iters), cfg.lambda_form)  # eq. (7-8)
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
        ll = noisy_label_log_likelihood(log_p, log_confusion, experts, IGNORE_INDEX, confusion_cover)
        # the same focal / GAF loss as the vote's, of each expert's label under p̃_n = A_n·p
        noisy = focal_of_log_likelihood(ll, experts, num_classes, cfg.alpha, cfg.gamma, IGNORE_INDEX, heat) * scale
        unit = present.to(noisy.dtype)[:, :, None, None].expand_as(noisy)
        terms = combine_losses(maps[:, 0], noisy, unit, present, valid[:, 0], valid_experts, lam1, lam2)
        terms["noisy"] = terms.pop("weighted")
        trace = trace_penalty(log_confusion, present)
    terms["trace"] = trace
    terms["total"] = terms["total"] + lam2 * confusion_trace_of(cfg) * trace
    _log_errors(terms, log_confusion, present, expert_names)
    return terms, lam1, lam2


def _zhang(cfg: LossConfig, logits: Tensor, vote_map: Tensor, valid_vote: Tensor, experts: Tensor,
           valid_experts: Tensor, present: Tensor, log_confusion: Tensor, heat: Tensor | None, scale: float,
           vote_weight: float, cover: tuple[int, int] | None = None) -> tuple[dict[str, Tensor], float]:
    """Zhang et al.'s objective: the mean over the experts present of each one's mean noisy-label
    loss, + α · the mean over them of ``mean_x tr(A_n(x))`` (their per-annotator sum, divided by the
    number of experts: the ratio α between the two terms is theirs), + the vote warm-up."""
    num_classes = logits.shape[1]
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_p = F.log_softmax(logits.float(), dim=1)
        ll = noisy_label_log_likelihood(log_p, log_confusion, experts, IGNORE_INDEX, cover)
        if cfg.confusion_nll:
            per_pixel = -ll  # their cross-entropy of the label under p̃_n
        else:  # the run's focal / GAF loss of it (as the "vote" objective)
            per_pixel = focal_of_log_likelihood(ll, experts, num_classes, cfg.alpha, cfg.gamma, IGNORE_INDEX,
                                                heat) * scale
        counted = valid_experts & present[:, :, None, None].to(valid_experts.device)
        per_expert = (per_pixel * counted).sum(dim=(0, 2, 3)) / counted.sum(dim=(0, 2, 3)).clamp_min(1)  # N
        has = counted.flatten(2).any(-1).any(0)
        noisy = per_expert[has].mean() if bool(has.any()) else per_pixel.sum() * 0
        # their regularisation: each expert's tr(A_n(x)) averaged over the pixels of its images (here
        # over the cells of the heads' grid, each covering as many pixels), then over the experts present
        tr = torch.diagonal(log_confusion, dim1=2, dim2=3).exp().sum(-1).mean(dim=(-2, -1))  # B×N
        on = present.to(tr.device, tr.dtype)
        per_expert_tr = (tr * on).sum(0) / on.sum(0).clamp_min(1)
        in_batch = on.sum(0) > 0
        trace = per_expert_tr[in_batch].mean() if bool(in_batch.any()) else tr.sum() * 0
        vote_loss = (vote_map * valid_vote).sum() / valid_vote.sum().clamp_min(1)
    total = noisy + confusion_trace_of(cfg) * trace
    if vote_weight > 0:
        total = total + vote_weight * vote_loss
    return {"total": total, "vote": vote_loss.detach(), "noisy": noisy, "trace": trace}, vote_weight


def _log_errors(terms: dict[str, Tensor], log_confusion: Tensor, present: Tensor, expert_names) -> None:
    """``error/<expert>``: the expert's mean off-diagonal mass, 1 − tr(A)/C, over its images."""
    with torch.no_grad():
        c = log_confusion.shape[2]
        off = 1 - torch.diagonal(log_confusion, dim1=2, dim2=3).exp().sum(-1).mean(dim=(-2, -1)) / c  # B×N
        for i, name in enumerate(expert_names):
            if present[:, i].any():
                terms[f"error/{name}"] = off[present[:, i], i].mean()
