"""Per-expert models: networks that look at the image and say how far each expert can be trusted.

* :class:`trainer.reweighting.WeightingCNN` — the paper's weighting CNN (eq. 2): a softmax weight
  per expert and pixel, relative to the other experts.
* :class:`.confusion.ConfusionCNN` — beyond the paper: a C×C confusion matrix per expert and pixel
  (Zhang, Tanno et al., NeurIPS 2020), so a map can say *which* error an expert makes where.

Both sit on the same image trunk (:func:`.backbone.resnet18_trunk`).
"""

from .backbone import TRUNK_STRIDES, resnet18_trunk
from .confusion import (
    ConfusionCNN,
    confusion_summary,
    error_map_prior,
    noisy_label_log_likelihood,
    trace_penalty,
    wrong_if_labelled,
)

__all__ = ["TRUNK_STRIDES", "resnet18_trunk", "ConfusionCNN", "confusion_summary", "error_map_prior", "noisy_label_log_likelihood", "trace_penalty",
           "wrong_if_labelled"]
