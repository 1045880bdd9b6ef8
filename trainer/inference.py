"""Prediction of a core as the paper does it: resize to the model size, upsample the logits back.

:func:`load_predictor` rebuilds the networks from a checkpoint alone (``weights_only=True``);
:func:`predict_core` returns the class map, per-class probabilities, the weighting CNN's per-expert
weight maps (eq. 2) and the roughness map (eq. 5), all at the image's own resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint
from .data.augment import normalise_tensor
from .data.classes import ClassScheme
from .errors import CheckpointError
from .losses import roughness_map
from .models import build_from_config
from .reweighting import WeightingCNN
from .training_setup import resolve_device


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


def load_predictor(checkpoint: str | Path, device: str = "auto") -> Predictor:
    payload = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    try:
        model = build_from_config(payload["model_config"])
        model.load_state_dict(payload["model"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        cfg = payload.get("model_config", {})
        raise CheckpointError(
            f"weights do not fit the {cfg.get('name')} with {cfg.get('num_classes')} classes the checkpoint "
            f"describes ({_first_problem(exc)})", checkpoint) from exc
    weighting = None
    if payload.get("weighting") is not None and payload.get("weighting_config"):
        try:
            weighting = WeightingCNN(**payload["weighting_config"])
            weighting.load_state_dict(payload["weighting"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"weighting CNN weights do not fit ({_first_problem(exc)})", checkpoint) from exc
        weighting = weighting.to(dev).eval()
    scheme = ClassScheme.from_dict(payload["scheme"]) if payload.get("scheme") else None
    if scheme is None or scheme.num_classes != payload["model_config"].get("num_classes"):
        raise CheckpointError("checkpoint's class list does not match its model", checkpoint)
    loss_cfg = (payload.get("config") or {}).get("loss", {})
    return Predictor(model.to(dev).eval(), weighting, scheme, tuple(payload.get("experts", ())),
                     int(payload.get("input_size", 1024)), dev, loss_cfg, str(checkpoint))


def _first_problem(exc: Exception) -> str:
    """The first specific line of a (multi-line) load_state_dict error."""
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
    specific = [l for l in lines if l.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    return (specific or lines or [type(exc).__name__])[0].rstrip(".")


def image_to_tensor(image: np.ndarray, device: torch.device, size: int | None) -> torch.Tensor:
    """uint8 H×W×3 → normalised float32 1×3×S×S on ``device`` (antialiased bilinear resize)."""
    arr = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
    x = torch.from_numpy(arr).to(device).permute(2, 0, 1)[None].float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalise_tensor(x)


@torch.inference_mode()
def predict_core(pred: Predictor, image: np.ndarray, size: int | None = None,
                 experts: tuple[str, ...] | None = None) -> Prediction:
    """Paper setting: the whole core resized to ``size`` (default: the training size).

    ``experts`` restricts the weight softmax to the experts of this core (names the checkpoint
    knows); by default all of the checkpoint's experts share the weight.
    """
    t0 = time.perf_counter()
    h, w = image.shape[:2]
    size = size or pred.size
    x = image_to_tensor(image, pred.device, size)
    logits = pred.model(x).float()
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    probs = torch.softmax(logits, dim=1)[0]
    classes = probs.argmax(0).to(torch.uint8)
    lc = pred.loss_config
    rough = roughness_map(x, lc.get("lambda_a", 50.0), lc.get("lambda_b", 1.0),
                          lc.get("gauss_ksize", 5), lc.get("gauss_sigma", 3.0))
    rough = F.interpolate(rough[:, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    weights = None
    if pred.weighting is not None:
        present = torch.ones(1, len(pred.experts), dtype=torch.bool, device=pred.device)
        if experts is not None:
            present[0] = torch.tensor([e in experts for e in pred.experts], device=pred.device)
        if present.any():
            wmap = pred.weighting(x, present=present, size=(h, w)).float()[0]
            weights = {e: wmap[i].cpu().numpy() for i, e in enumerate(pred.experts) if present[0, i]}
    if pred.device.type == "cuda":
        torch.cuda.synchronize()
    return Prediction(classes.cpu().numpy(), probs.cpu().numpy(), weights, rough.cpu().numpy(),
                      time.perf_counter() - t0, str(pred.device))
