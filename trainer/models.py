"""Segmentation networks of Table 2: HRNet18/48 + FCN head, U-Net, DeepLabV3+, PSPNet.

``create_model(name, num_classes)`` looks the name up in the plain-dict registry :data:`MODELS`.
Every model is wrapped in :class:`Segmenter`, which

* pads the input (reflect) to a multiple of 32 and crops the logits back, so any input side
  works (the networks themselves need multiples of their output stride);
* returns float logits ``B×C×H×W`` at the input size;
* carries ``.config`` — a plain dict that :func:`build_from_config` turns back into the same
  architecture, so a checkpoint rebuilds its model from the file alone.

``pretrained``: ``False`` (random init), ``True`` (ImageNet weights from the timm/SMP hubs; raises
:class:`~trainer.errors.PretrainedUnavailable` when the hub cannot be reached), or a path to a local
state dict for the *backbone* (timm HRNet / SMP encoder / ResNet-18), loaded with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from trainer.errors import InputError, PretrainedUnavailable
from trainer.model_registry import FIXED_BACKBONES, TABLE2_MODELS

Pretrained = bool | str | Path

#: Inputs are padded to a multiple of this (HRNet's lowest branch and the SMP encoders have stride 32).
PAD_MULTIPLE = 32

_PREFIXES = ("module.", "backbone.", "encoder.", "model.")


def _unavailable(what: str, cause: BaseException) -> PretrainedUnavailable:
    return PretrainedUnavailable(
        f"pretrained ImageNet weights for {what} could not be fetched ({type(cause).__name__}: {cause}). "
        "Train without them (pretrained=False / --no-pretrained), start from a checkpoint with --init CKPT, "
        "or pass a local weights file as pretrained=PATH."
    )


def load_backbone_file(module: nn.Module, path: str | Path, what: str) -> None:
    """Load a local state dict into ``module`` (a backbone), tolerating wrappers and extra head keys.

    Accepts a bare state dict or one nested under ``state_dict``/``model``; strips one of the
    prefixes ``module.``, ``backbone.``, ``encoder.``, ``model.``. Every parameter/buffer of the
    backbone (``num_batches_tracked`` aside) must be present with the right shape, else InputError.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pretrained weights file for {what} not found", path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, foreign objects
        raise InputError(f"cannot read pretrained weights for {what}: {e}", path) from e
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise InputError(f"pretrained weights for {what} are not a state dict", path)
    own = module.state_dict()
    for prefix in ("",) + _PREFIXES:
        cand = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if any(k in own for k in cand):
            break
    need = [k for k in own if not k.endswith("num_batches_tracked")]
    bad = [k for k in need if k not in cand or tuple(cand[k].shape) != tuple(own[k].shape)]
    if bad:
        raise InputError(
            f"weights do not fit the {what} backbone: {len(bad)} of {len(need)} tensors missing or "
            f"mis-shaped (e.g. {', '.join(bad[:3])})",
            path,
        )
    module.load_state_dict({k: cand[k] for k in own if k in cand}, strict=False)


def create_timm_backbone(timm_name: str, pretrained: Pretrained, what: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with hub failures turned into :class:`PretrainedUnavailable`."""
    import timm

    if pretrained is True:
        try:
            return timm.create_model(timm_name, pretrained=True, **kwargs)
        except Exception as e:  # hub errors are OSError/HTTP/Runtime depending on version
            raise _unavailable(what, e) from e
    model = timm.create_model(timm_name, pretrained=False, **kwargs)
    if pretrained:
        load_backbone_file(model, pretrained, what)
    return model


class HRNetFCN(nn.Module):
    """HRNetV2 segmentation: timm HRNet branches + FCN head (mmsegmentation ``fcn_hr18/48``).

    timm's ``features_only=True, feature_location=''`` returns the raw branch outputs
    (w18: 18/36/72/144 channels at strides 4/8/16/32; w48: 48/96/192/384); ``'incre'`` (timm's
    default) would instead give the classification head's widened 128…1024-channel features.
    Head: upsample all branches bilinearly to the stride-4 branch, concatenate (270 or 720
    channels), 1×1 conv-BN-ReLU, 1×1 classifier; logits are upsampled to the input size.
    """

    def __init__(self, width: int, num_classes: int, pretrained: Pretrained = False):
        super().__init__()
        self.backbone = create_timm_backbone(
            f"hrnet_w{width}", pretrained, f"hrnet{width}",
            features_only=True, feature_location="", out_indices=(1, 2, 3, 4),
        )
        ch = sum(self.backbone.feature_info.channels())
        self.fuse = nn.Sequential(nn.Conv2d(ch, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(ch, num_classes, 1)

    def forward(self, x: Tensor, features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        feats = self.backbone(x)
        size = feats[0].shape[-2:]
        up = [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]
        fused = self.fuse(torch.cat(up, dim=1))
        logits = F.interpolate(self.classifier(fused), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (logits, fused) if features else logits


class Segmenter(nn.Module):
    """Uniform wrapper: pad to a multiple of 32, run ``net``, crop; holds the rebuild ``config``."""

    def __init__(self, net: nn.Module, config: dict[str, Any], multiple: int = PAD_MULTIPLE):
        super().__init__()
        self.net = net
        self.config = dict(config)
        self.multiple = multiple

    @property
    def backbone(self) -> nn.Module:
        """The pretrainable part (timm HRNet or SMP encoder), e.g. for a lower learning rate."""
        return self.net.backbone if isinstance(self.net, HRNetFCN) else self.net.encoder

    @property
    def feature_channels(self) -> int:
        """Channels of the last decoder features (what the classifier reads): HRNet's fused branches
        (270 / 720 at stride 4), U-Net's last decoder stage (16, full resolution), DeepLabV3+'s decoder
        (256, stride 4), PSPNet's pyramid pooling output (512, stride 8)."""
        if isinstance(self.net, HRNetFCN):
            return int(self.net.classifier.in_channels)
        return int(self.net.segmentation_head[0].in_channels)

    def _decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(logits at the padded input's size, last decoder features at the decoder's resolution)."""
        if isinstance(self.net, HRNetFCN):
            return self.net(x, features=True)
        # SMP's SegmentationModel.forward, with the decoder output kept (a test checks the logits are
        # the plain forward's, so an SMP release that changes its forward is noticed)
        feats = self.net.decoder(self.net.encoder(x))
        return self.net.segmentation_head(feats), feats

    def forward(self, x: Tensor, features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``B×3×H×W`` → logits ``B×C×H×W``; with ``features`` also the last decoder features
        ``B×F×h×w`` of the padded input (:attr:`feature_channels`, :meth:`padded_size`),
        which Zhang et al.'s confusion heads read (:class:`trainer.annotators.ConfusionHeads`)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            # reflect needs pad < side; tiny inputs fall back to replicate
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        if not features:
            return self.net(x)[..., :h, :w]
        logits, feats = self._decode(x)
        return logits[..., :h, :w], feats

    def padded_size(self, h: int, w: int) -> tuple[int, int]:
        """The input size the network runs at (padded to :data:`PAD_MULTIPLE`): the features of
        ``forward(features=True)`` cover it, so maps made from them are resized to it and cropped."""
        return h + (-h) % self.multiple, w + (-w) % self.multiple


def _build_hrnet(width: int) -> Callable[..., nn.Module]:
    timm_name = FIXED_BACKBONES[f"hrnet{width}"]

    def build(num_classes: int, pretrained: Pretrained = False, encoder: str = timm_name) -> nn.Module:
        if encoder != timm_name:
            raise KeyError(f"hrnet{width} has the fixed backbone {timm_name!r}, got encoder={encoder!r}")
        return HRNetFCN(width, num_classes, pretrained)

    build.default_encoder = timm_name  # type: ignore[attr-defined]
    return build


def _build_smp(arch: str, default_encoder: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, pretrained: Pretrained = False, encoder: str = default_encoder, **kwargs: Any) -> nn.Module:
        import segmentation_models_pytorch as smp

        names = smp.encoders.get_encoder_names()
        if encoder not in names and not encoder.startswith("tu-"):
            raise KeyError(f"unknown encoder {encoder!r} for {arch}; SMP encoders: {', '.join(sorted(names))}")
        cls = getattr(smp, arch)
        if pretrained is True:
            try:
                return cls(encoder_name=encoder, encoder_weights="imagenet", classes=num_classes, **kwargs)
            except Exception as e:  # huggingface_hub LocalEntryNotFoundError, HTTP errors, ...
                raise _unavailable(f"{arch} ({encoder})", e) from e
        net = cls(encoder_name=encoder, encoder_weights=None, classes=num_classes, **kwargs)
        if pretrained:
            load_backbone_file(net.encoder, pretrained, f"{arch} ({encoder})")
        return net

    build.default_encoder = default_encoder  # type: ignore[attr-defined]
    return build


#: name -> builder(num_classes, pretrained=False, **kwargs) returning the bare network.
#: The names and default encoders are :data:`trainer.model_registry.TABLE2_MODELS`'.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "hrnet18": _build_hrnet(18),
    "hrnet48": _build_hrnet(48),
    "unet": _build_smp("Unet", TABLE2_MODELS["unet"]),
    "deeplabv3plus": _build_smp("DeepLabV3Plus", TABLE2_MODELS["deeplabv3plus"]),
    "pspnet": _build_smp("PSPNet", TABLE2_MODELS["pspnet"]),
}


def create_model(name: str, num_classes: int, pretrained: Pretrained = False, **kwargs: Any) -> Segmenter:
    """Build a registered model; ``kwargs`` go to the builder and into ``.config``.

    ``encoder``: SMP encoder name (defaults: unet ``resnet34``, deeplabv3plus/pspnet ``resnet50``);
    for HRNet it is fixed (``hrnet_w18``/``hrnet_w48``). ``None`` means the default. SMP models
    take further SMP options (e.g. ``decoder_channels``); they must be plain data to round-trip.

    Raises KeyError listing the valid names for an unknown ``name``.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    builder = MODELS[name]
    # encoder=None (the RunConfig default) means the model's default backbone
    if kwargs.get("encoder") is None:
        kwargs["encoder"] = builder.default_encoder  # type: ignore[attr-defined]
    config: dict[str, Any] = {"name": name, "num_classes": int(num_classes), **kwargs}
    net = builder(int(num_classes), pretrained, **kwargs)
    return Segmenter(net, config)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The plain dict that :func:`build_from_config` turns back into ``model``'s architecture."""
    cfg = getattr(model, "config", None)
    if not isinstance(model, Segmenter) or not isinstance(cfg, dict):
        raise TypeError("model_config needs a model made by trainer.models.create_model")
    return dict(cfg)


def build_from_config(cfg: dict[str, Any]) -> Segmenter:
    """Rebuild an architecture (random weights; load the checkpoint's state dict afterwards)."""
    cfg = dict(cfg)
    try:
        name, num_classes = cfg.pop("name"), cfg.pop("num_classes")
    except KeyError as e:
        raise InputError(f"model config lacks {e.args[0]!r}: {cfg}") from e
    cfg.pop("pretrained", None)
    return create_model(name, num_classes, pretrained=False, **cfg)
