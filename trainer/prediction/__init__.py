"""Prediction: the one pipeline (:func:`predict`) and what it computes beside the class map.

- :mod:`.pipeline`: ``predict(predictor, source, mode, sink, core=, experts=, labels=, coding=, scheme=)``
  with modes :class:`WholeCore` (paper setting) / :class:`Tiled` (full resolution) and sinks
  :class:`ArraySink` / :class:`StoreSink` / :class:`FileSink` -> :class:`PredictOutput`;
  ``predict_stages`` (same arguments) yields the segmentation first and the per-expert maps after it
- :mod:`.learned`: the learned-weight consensus (eq. 2 weights voting)
- :mod:`.confusion`: per-core confusion matrices of the confusion model and their wording
"""

from .confusion import CoreConfusion
from .learned import learned_consensus, renormalise
from .pipeline import (
    PRIOR_NOTE,
    ArraySink,
    FileSink,
    PredictOutput,
    StoreSink,
    Tiled,
    WholeCore,
    annotator_kind,
    annotator_notes,
    check_compatible,
    predict,
    predict_stages,
    tiled_confusion,
)

__all__ = [
    "PRIOR_NOTE", "ArraySink", "CoreConfusion", "FileSink", "PredictOutput", "StoreSink", "Tiled", "WholeCore",
    "annotator_kind", "annotator_notes", "check_compatible", "learned_consensus", "predict", "predict_stages",
    "renormalise", "tiled_confusion",
]
