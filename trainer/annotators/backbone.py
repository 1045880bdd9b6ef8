"""The image trunk shared by the per-expert networks: a ResNet-18 cut or re-strided.

The authors' weighting CNN (``fcn_mul_label_resnet18_hr18_…`` configs) is a ResNet-18 whose four
stages all have stride 1: after the stem (conv stride 2, max-pool stride 2) the features stay at
output stride **4** with 512 channels — a 256² map at a 1024² input. That is the default here.

The earlier choices of this project stay reachable: stride 32 (the full ResNet-18, layer4 at
stride 32, what "replace the fully connected layer" suggests), 16 and 8 (the network cut after
layer3 / layer2, 256 / 128 channels), so the benchmark can show what the difference does.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from trainer.models import create_timm_backbone

#: output stride → (stages removed, stages whose first block loses its stride)
TRUNK_STRIDES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    4: ((), ("layer2", "layer3", "layer4")),  # the authors': strides (1, 1, 1, 1), 512 channels
    8: (("layer3", "layer4"), ()),
    16: (("layer4",), ()),
    32: ((), ()),
}


def resnet18_trunk(pretrained: bool | str | Path, stride: int, what: str) -> tuple[nn.Module, int]:
    """A timm ResNet-18 feature extractor at output ``stride``; returns (module, channels).

    Use ``module.forward_features(x)``. ``pretrained``: False, True (ImageNet through the timm
    hub) or a local ResNet-18 state dict (weights do not depend on the strides, so ImageNet
    weights fit every variant).
    """
    if int(stride) not in TRUNK_STRIDES:
        raise ValueError(f"stride must be one of {sorted(TRUNK_STRIDES)}, got {stride}")
    net = create_timm_backbone("resnet18", pretrained, what, num_classes=0, global_pool="")
    channels = net.num_features
    removed, unstrided = TRUNK_STRIDES[int(stride)]
    for stage in removed:
        # Identity keeps timm's forward_features path; dropped stages hold no parameters
        # (DDP would otherwise see parameters without gradients).
        setattr(net, stage, nn.Identity())
        channels //= 2
    for stage in unstrided:
        block = getattr(net, stage)[0]
        block.conv1.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return net, channels
