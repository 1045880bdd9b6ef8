"""The learned-weight consensus: the experts' labels weighted by the weighting CNN (eq. 2).

Rule (chosen over "the label of the most trusted expert"): per pixel, every expert who labelled
it votes for their class with the weight the weighting CNN gives them *there*; the class with the
largest summed weight wins. With equal weights this is exactly the majority vote of eq. (1); with
learned weights it is the label set the network itself was pulled towards by eq. (3). It degrades
gracefully where the most trusted expert left a pixel unlabelled (the others still vote), and a
near-tie between two trusted experts is decided by the rest instead of by noise in the weights.
Ties go to the higher class index (the higher Gleason grade), like the vote's default tie rule;
a pixel nobody labelled is ``IGNORE_INDEX``.

Weights may be at model resolution (1024²) while labels are at the core's (5120²): each weight
map is read nearest-exact at the label's pixel centres, in bands of rows so memory stays at a few
tens of MB whatever the core size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trainer.data.classes import IGNORE_INDEX
from trainer.resample import source_index

BAND_ROWS = 256


def learned_consensus(labels: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], num_classes: int,
                      band: int = BAND_ROWS) -> np.ndarray:
    """uint8 class map: weighted class vote of the experts in both ``labels`` and ``weights``.

    ``labels``: expert -> uint8 class map (``IGNORE_INDEX`` where unlabelled), all the same shape.
    ``weights``: expert -> float map (any resolution covering the same core).
    """
    experts = [e for e in labels if e in weights]
    if not experts:
        raise ValueError(f"no expert has both labels and learned weights (labels: {sorted(labels)}, "
                         f"weights: {sorted(weights)})")
    h, w = np.shape(labels[experts[0]])
    for e in experts:
        if np.shape(labels[e]) != (h, w):
            raise ValueError(f"expert {e}'s labels are {np.shape(labels[e])}, expected {(h, w)}")
    cols = {e: source_index(w, np.shape(weights[e])[1]) for e in experts}
    out = np.full((h, w), IGNORE_INDEX, np.uint8)
    for y0 in range(0, h, band):
        y1 = min(h, y0 + band)
        scores = np.zeros((num_classes, y1 - y0, w), np.float32)
        labelled = np.zeros((y1 - y0, w), bool)
        for e in experts:
            lab = np.asarray(labels[e][y0:y1])
            wmap = np.asarray(weights[e])
            rows = source_index(h, wmap.shape[0])[y0:y1]
            wb = wmap[np.ix_(rows, cols[e])].astype(np.float32, copy=False)
            for c in range(num_classes):
                hit = lab == c
                scores[c][hit] += wb[hit]
            labelled |= lab < num_classes
        # argmax takes the first maximum: scanning classes from the top makes ties go upwards
        top = (num_classes - 1) - scores[::-1].argmax(0)
        out[y0:y1] = np.where(labelled, top, IGNORE_INDEX).astype(np.uint8)
    return out


def renormalise(weights: Mapping[str, np.ndarray], experts) -> dict[str, np.ndarray]:
    """Weights of ``experts`` only, rescaled to sum to 1 per pixel.

    A softmax restricted to a subset of experts equals the full softmax renormalised over that
    subset, so this turns weights computed over all of a checkpoint's experts (tiled inference)
    into weights over the experts of this core, as the paper setting computes them directly.
    """
    keep = {e: np.asarray(weights[e], np.float32) for e in experts if e in weights}
    if not keep:
        return {}
    total = np.maximum(sum(keep.values()), np.float32(1e-12))
    return {e: v / total for e, v in keep.items()}
