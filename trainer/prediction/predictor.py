"""Prediction of a core as the paper does it: resize to the model size, upsample the logits back.

:func:`load_predictor` rebuilds the networks from a checkpoint alone (``weights_only=True``);
:func:`predict_core` returns the class map, per-class probabilities, the weighting CNN's per-expert
weight maps (eq. 2) or the confusion model's per-expert error maps and confusion matrices, and the
roughness map (eq. 5), all at the image's own resolution.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint, networks_from_payload, run_config_of
from ..config import LossConfig
from ..data.augment import normalise_tensor
from ..data.classes import ClassScheme
from ..device import PRECISIONS, amp_policy, compute_dtype, cpu_has_bf16, resolve_device  # noqa: F401 (re-exported)
from ..losses import heatmap_options, roughness_map
from ..annotators.confusion import (
    ConfusionCNN,
    confusion_summary,
    error_map_prior,
    wrong_if_labelled,
)
from ..annotators.heads import ConfusionHeads
from ..reweighting import WeightingCNN


@dataclass
class Predictor:
    model: torch.nn.Module
    weighting: WeightingCNN | None
    scheme: ClassScheme
    experts: tuple[str, ...]
    size: int
    device: torch.device
    loss_config: LossConfig = field(default_factory=LossConfig)  # the run's; eq. (5) settings for the roughness map
    path: str = ""
    confusion: ConfusionCNN | ConfusionHeads | None = None
    #: "auto": bfloat16 autocast where the CPU computes it natively (AVX-512 BF16 / AMX), the GPU's
    #: mixed precision on CUDA, float32 otherwise; "fp32": always float32; "bf16": bfloat16 on any CPU
    precision: str = "auto"
    #: the checkpoint's iteration, its run's length and start weights (``train.init``): whether its
    #: annotator model ever trained (:func:`trainer.prediction.confusion.annotator_untrained`)
    iteration: int | None = None
    run_iters: int | None = None
    init: str | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.scheme.names

    @property
    def heatmap(self) -> dict:
        """The roughness map's (eq. 5) keyword arguments, as the run trained with them."""
        return heatmap_options(asdict(self.loss_config))

    @property
    def heads(self) -> bool:
        """Whether the confusion model is Zhang et al.'s heads on the segmentation network's features."""
        return isinstance(self.confusion, ConfusionHeads)

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """The autocast dtype the networks run under, or ``None`` for float32."""
        return compute_dtype(self.device, self.precision)

    def autocast(self):
        """The context the networks' forward passes run in (see :attr:`precision`)."""
        dtype = self.compute_dtype
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A normalised input batch in the memory layout the networks were put in (channels_last on the CPU)."""
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cpu" else x




class Float32(torch.nn.Module):
    """Runs ``module`` in float32 even under autocast (its input cast up)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())


def ends_in_float32(net: torch.nn.Module, out_channels: int | None = None) -> torch.nn.Module:
    """Wrap ``net``'s first convolution (it reads the normalised image, whose detail bfloat16's 8-bit
    mantissa would round away) and its last (the classifier: ``out_channels`` outputs if given) in
    :class:`Float32`. On the trained demo checkpoint this lifts the bfloat16 class map's agreement
    with float32 from 99.4 % to 99.55 % of pixels for a few % of the compute."""
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        return net
    heads = [c for c in convs if out_channels is not None and c[1].out_channels == out_channels] or convs
    for name, module in {convs[0][0]: convs[0][1], heads[-1][0]: heads[-1][1]}.items():
        parent, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, Float32(module))
    return net


def class_map(scores: torch.Tensor) -> torch.Tensor:
    """uint8 class index of the largest score along dim 0 (C×H×W → H×W), the first one on ties — as
    ``argmax(0)``, which on the CPU is ~25× slower over a leading axis (206 against 8 ms for 4×1024²
    here: it does not vectorise across the other axes; ``max`` does)."""
    return scores.max(0).indices.to(torch.uint8)


def _conv_bn_pairs(net: torch.nn.Module) -> list[tuple[torch.nn.Module, str, str]]:
    """(parent, conv name, batch-norm name) of every convolution followed by a plain ``BatchNorm2d``:
    consecutive children of a ``Sequential``, or ``convN``/``bnN`` siblings (ResNet and HRNet blocks,
    their stems). Norm layers with an activation inside (timm's ``BatchNormAct2d``) are left alone."""
    pairs = []
    for parent in net.modules():
        named = dict(parent.named_children())
        if isinstance(parent, torch.nn.Sequential):
            order = list(named)
            candidates = list(zip(order, order[1:]))
        else:
            candidates = [(n, "bn" + n[4:]) for n in named if n.startswith("conv") and "bn" + n[4:] in named]
        for a, b in candidates:
            conv, bn = named[a], named[b]
            if type(conv) is torch.nn.Conv2d and type(bn) is torch.nn.BatchNorm2d and bn.track_running_stats:
                pairs.append((parent, a, b))
    return pairs


def fold_batchnorm(net: torch.nn.Module, probe_size: int = 64) -> tuple[torch.nn.Module, int]:
    """``net`` (eval mode) with each batch norm that follows a convolution folded into that
    convolution's weights (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same function, one
    pass over the activations fewer per layer (batch norm was 16 % of HRNet18's CPU time). The pairs
    are found by structure, not by tracing, so the result is checked: on a random
    ``probe_size``² input it must equal the unfolded network to float32 rounding, else ``net`` is
    returned unchanged. Returns (network, number of batch norms folded)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    pairs = _conv_bn_pairs(net)
    if not pairs or net.training:
        return net, 0
    folded = copy.deepcopy(net)
    for parent, a, b in _conv_bn_pairs(folded):
        setattr(parent, a, fuse_conv_bn_eval(getattr(parent, a), getattr(parent, b)))
        setattr(parent, b, torch.nn.Identity())
    try:
        param = next(net.parameters())
        x = torch.randn(1, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0)).to(param.device)
        with torch.inference_mode():
            want, got = net(x), folded(x)
        same = torch.allclose(got, want, rtol=1e-3, atol=1e-3 * float(want.abs().max()) + 1e-5)
    except (RuntimeError, ValueError, TypeError, AttributeError):  # other inputs or outputs: keep it as it is
        same = False
    return (folded, len(pairs)) if same else (net, 0)


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
    #: expert → float32 H×W: the image-only error map (before seeing the label), always
    errors_prior: dict[str, np.ndarray] | None = None


def loss_config_of(d: dict | None) -> LossConfig:
    """A checkpoint's ``config["loss"]`` (as :func:`trainer.checkpoint.run_config_of` gives it, older
    runs filled in) as a :class:`LossConfig`; unknown keys are dropped."""
    known = {f.name for f in fields(LossConfig)}
    return LossConfig(**{k: v for k, v in dict(d or {}).items() if k in known})


def ready_for_inference(pred: Predictor) -> Predictor:
    """Put ``pred``'s networks on its device in eval mode; on the CPU in channels_last (oneDNN's fast
    layout for convolutions), with batch norms folded into the convolutions before them
    (:func:`fold_batchnorm`) and, when they will run in bfloat16, with their first and last
    convolutions kept in float32 (:func:`ends_in_float32`)."""
    dev = pred.device
    layout = torch.channels_last if dev.type == "cpu" else torch.preserve_format
    bf16_cpu = dev.type == "cpu" and compute_dtype(dev, pred.precision) == torch.bfloat16

    def place(net, out_channels=None):
        if net is None:
            return None
        net = net.to(dev, memory_format=layout).eval()
        if dev.type == "cpu":
            net, _ = fold_batchnorm(net)
        return ends_in_float32(net, out_channels) if bf16_cpu else net

    pred.model = place(pred.model, pred.scheme.num_classes)
    pred.weighting, pred.confusion = place(pred.weighting), place(pred.confusion)
    return pred


def load_predictor(checkpoint: str | Path, device: str = "auto", precision: str = "auto") -> Predictor:
    """The networks of ``checkpoint`` on ``device``, ready for inference (:func:`ready_for_inference`).
    ``precision``: see :attr:`Predictor.precision`."""
    compute_dtype(torch.device("cpu"), precision)  # refuses an unknown precision before loading anything
    payload = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    model, weighting, confusion, scheme = networks_from_payload(payload, checkpoint)  # payload → networks
    run = run_config_of(payload)
    loss_cfg = loss_config_of(run.get("loss"))  # older checkpoints: what they trained with
    train = run.get("train") or {}
    return ready_for_inference(Predictor(model, weighting, scheme, tuple(payload.get("experts", ())),
                                         int(payload.get("input_size", 1024)), dev, loss_cfg, str(checkpoint),
                                         confusion, precision, payload.get("iteration"), train.get("iters"),
                                         train.get("init")))


def image_to_tensor(image: np.ndarray, device: torch.device, size: int | None) -> torch.Tensor:
    """uint8 H×W×3 → normalised float32 1×3×S×S on ``device`` (antialiased bilinear resize)."""
    arr = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
    x = torch.from_numpy(arr).to(device).permute(2, 0, 1)[None].float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalise_tensor(x)


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
    for p in predict_core_stages(pred, image, size, experts, labels, tissue):
        pass
    return p


def predict_core_stages(pred: Predictor, image: np.ndarray, size: int | None = None,
                        experts: tuple[str, ...] | None = None, labels: dict[str, np.ndarray] | None = None,
                        tissue: np.ndarray | None = None):
    """:func:`predict_core` in two steps, for a viewer that shows the segmentation as soon as it exists:
    yields the :class:`Prediction` without per-expert maps (class map, probabilities, roughness),
    then — only if the checkpoint has an annotator model (weighting CNN or confusion model) — a new
    :class:`Prediction` with them as well. The authors' stride-4 weighting CNN costs about 4× HRNet18
    at 1024² on a CPU (docs/PERFORMANCE.md, P5), so the first step ends most of a pathologist's wait.
    """
    t0 = time.perf_counter()
    h, w = image.shape[:2]
    size = size or pred.size
    feats = None
    with torch.inference_mode():
        x = pred.prepare(image_to_tensor(image, pred.device, size))
        with pred.autocast():
            if pred.heads:  # the confusion heads read the decoder features of this same forward pass
                logits_small, feats = pred.model(x, features=True)
                logits_small = logits_small.float()
            else:
                logits_small = pred.model(x).float()
        logits = F.interpolate(logits_small, size=(h, w), mode="bilinear", align_corners=False)
        probs = torch.softmax(logits, dim=1)[0]
        classes = class_map(probs)
        rough = roughness_map(x, **pred.heatmap)
        rough = F.interpolate(rough[:, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        out = Prediction(classes.cpu().numpy(), probs.cpu().numpy(), None, rough.cpu().numpy(),
                         time.perf_counter() - t0, str(pred.device))
        del logits, probs, classes, rough
    yield out
    if pred.weighting is None and pred.confusion is None:
        return
    weights = errors = confusion = prior = None
    with torch.inference_mode():
        if pred.weighting is not None:
            present = torch.ones(1, len(pred.experts), dtype=torch.bool, device=pred.device)
            if experts is not None:
                present[0] = torch.tensor([e in experts for e in pred.experts], device=pred.device)
            if present.any():
                with pred.autocast():
                    wmap = pred.weighting(x, present=present, size=(h, w)).float()[0]
                weights = {e: wmap[i].cpu().numpy() for i, e in enumerate(pred.experts) if present[0, i]}
        if pred.confusion is not None:
            with pred.autocast():
                if pred.heads:  # at the decoder's resolution; maps are resized when finished
                    log_a = pred.confusion(feats).float()
                    padded = pred.model.padded_size(*x.shape[-2:])
                else:
                    log_a = pred.confusion(x).float()
                    padded = tuple(x.shape[-2:])
            errors, prior, confusion = _confusion_outputs(pred, log_a, padded, logits_small, (h, w), experts,
                                                          labels, tissue)
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
    # a new object: the first one may already be on its way to a viewer
    yield replace(out, weights=weights, errors=errors, confusion=confusion, errors_prior=prior,
                  seconds=time.perf_counter() - t0)


def _confusion_outputs(pred: Predictor, log_a: torch.Tensor, padded: tuple[int, int], logits: torch.Tensor,
                       size: tuple[int, int], experts, labels, tissue):
    """Error maps (image resolution) and per-core confusion matrices of the confusion model.

    ``log_a``: ``1×N×C×C×h×w`` over the network's ``padded`` input (the heads: the decoder's
    resolution; the trunk: the input's); ``logits``: ``1×C×S×S`` at the input size. Every per-pixel
    quantity is computed on ``log_a``'s grid (the class probabilities resized to it); what is resized
    to the image is, per expert, the finished maps: the C maps "wrong if the label here were l" (the
    expert's label picks its value at full resolution) and the image-only map. Returns (errors — given
    the label where ``labels`` has it —, image-only errors, matrices).
    """
    h, w = size
    names = [e for e in pred.experts if experts is None or e in experts]
    if not names:
        return None, None, None
    idx = [pred.experts.index(e) for e in names]
    grid = tuple(log_a.shape[-2:])
    s_h, s_w = logits.shape[-2:]
    ph, pw = padded
    # the grid covers the padded input; the logits its top-left s_h × s_w: pad them to it (replicate)
    full = F.pad(logits, (0, pw - s_w, 0, ph - s_h), mode="replicate") if (ph, pw) != (s_h, s_w) else logits
    if grid != (ph, pw):
        full = F.interpolate(full, size=grid, mode="bilinear", align_corners=False, antialias=True)
    p = torch.softmax(full, dim=1)[0]  # C×h×w on the matrices' grid
    a = log_a.exp()[0, idx]  # N×C×C×h×w
    mask = None
    if tissue is not None:
        t = torch.from_numpy(np.ascontiguousarray(tissue, dtype=np.float32)).to(p.device)[None, None]
        t = F.pad(t, (0, round(t.shape[-1] * pw / s_w) - t.shape[-1], 0, round(t.shape[-2] * ph / s_h) - t.shape[-2]))
        mask = F.interpolate(t, size=grid, mode="area")[0, 0]  # each cell's share of tissue: small areas count
    summary = confusion_summary(p, a, mask).cpu().numpy()
    prior = error_map_prior(p, a)  # N×h×w
    # one grid cell covers (ph/gh, pw/gw) input pixels; the image's h × w covers the input's s_h × s_w
    out_h, out_w = round(h * ph / s_h), round(w * pw / s_w)

    def up(m: torch.Tensor) -> torch.Tensor:  # K×h×w → K×H×W (the image's own part of the padded grid)
        if (out_h, out_w) != tuple(m.shape[-2:]):
            m = F.interpolate(m[None], size=(out_h, out_w), mode="bilinear", align_corners=False)[0]
        return m[:, :h, :w]

    errors, priors = {}, {}
    for k, e in enumerate(names):
        label = None if labels is None else labels.get(e)
        err = up(prior[k][None])[0]
        priors[e] = err.clamp(0, 1).cpu().numpy().astype(np.float32)
        if label is not None:
            maps = up(wrong_if_labelled(p, a[k]))  # C×H×W, one expert at a time
            lab = torch.from_numpy(np.asarray(label).astype(np.int64)).to(p.device)
            known = (lab >= 0) & (lab < maps.shape[0])
            err = torch.where(known, torch.gather(maps, 0, torch.where(known, lab, 0)[None])[0], err)
            del maps
        errors[e] = err.clamp(0, 1).cpu().numpy().astype(np.float32) if label is not None else priors[e]
    return errors, priors, {e: summary[k] for k, e in enumerate(names)}
