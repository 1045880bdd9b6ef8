"""The Table-2 models by name, with their default backbones: plain data, no torch.

:mod:`trainer.models` builds its registry from this table, and the train widget lists the same
models and encoders from it without importing torch (the review widgets never load torch).
"""

from __future__ import annotations

#: name -> default SMP encoder, or None where the backbone is fixed (the HRNets: FIXED_BACKBONES).
TABLE2_MODELS: dict[str, str | None] = {
    "hrnet18": None,
    "hrnet48": None,
    "unet": "resnet34",
    "deeplabv3plus": "resnet50",
    "pspnet": "resnet50",
}

#: The fixed timm backbone of each HRNet.
FIXED_BACKBONES: dict[str, str] = {"hrnet18": "hrnet_w18", "hrnet48": "hrnet_w48"}

#: The encoders the train widget offers (the CLI takes any SMP encoder name).
SUGGESTED_ENCODERS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")
