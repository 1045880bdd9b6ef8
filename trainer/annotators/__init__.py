"""Per-expert models: networks that look at the image and say how far each expert can be trusted.

* :class:`trainer.reweighting.WeightingCNN` — the paper's weighting CNN (eq. 2): a softmax weight
  per expert and pixel, relative to the other experts.
* :class:`.heads.ConfusionHeads` — beyond the paper: a C×C confusion matrix per expert and pixel
  (Zhang, Tanno et al., NeurIPS 2020), from heads on the segmentation network's own decoder
  features, so a map can say *which* error an expert makes where, at the cost of the heads;
* :class:`.confusion.ConfusionCNN` — the same matrices from a separate image network (the option
  ``loss.confusion_form = "trunk"``, and checkpoints written before the heads).

The weighting CNN and the trunk sit on the same image trunk (:func:`.backbone.resnet18_trunk`).
"""

from .backbone import TRUNK_STRIDES, resnet18_trunk
from .heads import ConfusionHeads
from .confusion import (
    ConfusionCNN,
    confusion_from_config,
    confusion_summary,
    error_map_prior,
    noisy_label_log_likelihood,
    trace_penalty,
    wrong_if_labelled,
)

__all__ = ["TRUNK_STRIDES", "resnet18_trunk", "ConfusionCNN", "ConfusionHeads", "confusion_from_config", "confusion_summary", "error_map_prior", "noisy_label_log_likelihood", "trace_penalty",
           "wrong_if_labelled"]
