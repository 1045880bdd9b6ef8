"""Prediction of a core as the paper does it: resize to the model size, upsample the logits back.

:func:`load_predictor` rebuilds the networks from a checkpoint alone (``weights_only=True``);
:func:`predict_core` returns the class map, per-class probabilities, the weighting CNN's per-expert
weight maps (eq. 2) or the confusion model's per-expert error maps and confusion matrices, and the
roughness map (eq. 5), all at the image's own resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, networks_from_payload, run_config_of
from .data.augment import normalise_tensor
from .data.classes import ClassScheme
from .device import resolve_device
from .losses import heatmap_options, roughness_map
from .annotators.confusion import (
    ConfusionCNN,
    confusion_summary,
    error_map_prior,
    wrong_if_labelled,
)
from .reweighting import WeightingCNN


@dataclass
class Predictor:
    model: torch.nn.Module
    weighting: WeightingCNN | None
    scheme: ClassScheme
    experts: tuple[str, ...]
    size: int
    device: torch.device
    loss_config: dict = field(default_factory=dict)
    path: str = ""
    confusion: ConfusionCNN | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.scheme.names


@dataclass
class Prediction:
    classes: np.ndarray  # uint8 H×W, class indices
    probabilities: np.ndarray  # float32 C×H×W
    weights: dict[str, np.ndarray] | None  # expert name → float32 H×W (softmax over the experts given)
    roughness: np.ndarray  # float32 H×W, eq. (5) on the model input, upsampled
    seconds: float
    device: str
    #: expert → float32 H×W in [0, 1]: the chance the expert's label there is wrong (confusion model);
    #: given the expert's label where ``labels`` had it (Bayes), else before seeing it
    errors: dict[str, np.ndarray] | None = None
    #: expert → float64 C×C mean confusion on the core: row = true class (the model's estimate),
    #: column = the label the expert writes; rows sum to 1, NaN for a class with no probability mass
    confusion: dict[str, np.ndarray] | None = None


def load_predictor(checkpoint: str | Path, device: str = "auto") -> Predictor:
    payload = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    model, weighting, confusion, scheme = networks_from_payload(payload, checkpoint)  # payload → networks
    weighting = weighting.to(dev).eval() if weighting is not None else None
    confusion = confusion.to(dev).eval() if confusion is not None else None
    loss_cfg = run_config_of(payload).get("loss", {})  # older checkpoints: the settings they trained with
    return Predictor(model.to(dev).eval(), weighting, scheme, tuple(payload.get("experts", ())),
                     int(payload.get("input_size", 1024)), dev, loss_cfg, str(checkpoint), confusion)


def image_to_tensor(image: np.ndarray, device: torch.device, size: int | None) -> torch.Tensor:
    """uint8 H×W×3 → normalised float32 1×3×S×S on ``device`` (antialiased bilinear resize)."""
    arr = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
    x = torch.from_numpy(arr).to(device).permute(2, 0, 1)[None].float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalise_tensor(x)


@torch.inference_mode()
def predict_core(pred: Predictor, image: np.ndarray, size: int | None = None,
                 experts: tuple[str, ...] | None = None, labels: dict[str, np.ndarray] | None = None,
                 tissue: np.ndarray | None = None) -> Prediction:
    """Paper setting: the whole core resized to ``size`` (default: the training size).

    ``experts`` restricts the weight softmax (and the error maps) to the experts of this core
    (names the checkpoint knows); by default all of the checkpoint's experts.
    ``labels``: expert → class-index map H×W (this core's masks); with a confusion model the error
    map of such an expert is the chance its label is wrong *given the label*. ``tissue``: bool H×W;
    the per-core confusion matrices average over it (default: the whole image).
    """
    t0 = time.perf_counter()
    h, w = image.shape[:2]
    size = size or pred.size
    x = image_to_tensor(image, pred.device, size)
    logits_small = pred.model(x).float()
    logits = F.interpolate(logits_small, size=(h, w), mode="bilinear", align_corners=False)
    probs = torch.softmax(logits, dim=1)[0]
    classes = probs.argmax(0).to(torch.uint8)
    rough = roughness_map(x, **heatmap_options(pred.loss_config))
    rough = F.interpolate(rough[:, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    weights = None
    if pred.weighting is not None:
        present = torch.ones(1, len(pred.experts), dtype=torch.bool, device=pred.device)
        if experts is not None:
            present[0] = torch.tensor([e in experts for e in pred.experts], device=pred.device)
        if present.any():
            wmap = pred.weighting(x, present=present, size=(h, w)).float()[0]
            weights = {e: wmap[i].cpu().numpy() for i, e in enumerate(pred.experts) if present[0, i]}
    errors = confusion = None
    if pred.confusion is not None:
        errors, confusion = _confusion_outputs(pred, x, logits_small, (h, w), experts, labels, tissue)
    if pred.device.type == "cuda":
        torch.cuda.synchronize()
    return Prediction(classes.cpu().numpy(), probs.cpu().numpy(), weights, rough.cpu().numpy(),
                      time.perf_counter() - t0, str(pred.device), errors, confusion)


def _confusion_outputs(pred: Predictor, x: torch.Tensor, logits: torch.Tensor, size: tuple[int, int],
                       experts, labels, tissue):
    """Error maps (image resolution) and per-core confusion matrices of the confusion model.

    The N×C×C matrices are computed at the model's input size only (at 5120² they would need
    gigabytes); what is upsampled is, per expert, the C maps "wrong if the label here were l"
    (or the one prior map), from which the expert's label picks its value at full resolution.
    """
    h, w = size
    names = [e for e in pred.experts if experts is None or e in experts]
    if not names:
        return None, None
    idx = [pred.experts.index(e) for e in names]
    p = torch.softmax(logits, dim=1)[0]  # C×S×S at the model size
    a = pred.confusion(x).exp()[0, idx]  # N×C×C×S×S
    mask = None
    if tissue is not None:
        t = torch.from_numpy(np.ascontiguousarray(tissue, dtype=np.float32)).to(p.device)[None, None]
        mask = F.interpolate(t, size=p.shape[-2:], mode="nearest")[0, 0] > 0.5
    summary = confusion_summary(p, a, mask).cpu().numpy()
    prior = error_map_prior(p, a)  # N×S×S

    def up(m: torch.Tensor) -> torch.Tensor:  # K×S×S → K×H×W
        return F.interpolate(m[None], size=(h, w), mode="bilinear", align_corners=False)[0]

    errors = {}
    for k, e in enumerate(names):
        label = None if labels is None else labels.get(e)
        err = up(prior[k][None])[0]
        if label is not None:
            maps = up(wrong_if_labelled(p, a[k]))  # C×H×W, one expert at a time
            lab = torch.from_numpy(np.asarray(label).astype(np.int64)).to(p.device)
            known = (lab >= 0) & (lab < maps.shape[0])
            err = torch.where(known, torch.gather(maps, 0, torch.where(known, lab, 0)[None])[0], err)
            del maps
        errors[e] = err.clamp(0, 1).cpu().numpy().astype(np.float32)
    return errors, {e: summary[k] for k, e in enumerate(names)}
