"""Estimated against true confusion matrices of each expert, on all tissue and on its biased areas.

The confusion model (Zhang, Tanno et al. 2020) summarises an expert on a region as a C×C matrix:
row = the true class *as the model sees it* (each pixel counts toward row j with the network's
probability p_j), column = the expert's label, rows summing to 1
(:attr:`trainer.prediction.PredictOutput.confusion`). The true matrix on the same region counts the
truth against the expert's label. Both are pooled over the test cores — the estimate weighted by
each core's probability mass per row, so a core with more of a class counts more, as it does in
the true counts — and compared on the rows the truth has at least ``min_pixels`` of: on a biased
area that is the one class the bias relabels (e.g. expert A on textured G3: the G3 row); on the
whole tissue (area ``tissue``) every class the test cores hold, which is where a model that is
right on the biased area but wrong elsewhere shows it.

The global (image-independent) baseline has one matrix per expert
(:func:`trainer.annotators.global_confusion.fit_global_confusion`, ``M[i, j]`` with i the label):
its estimate on any region is ``M.T`` (:func:`global_rows`), pooled in a pool of its own.
"""

from __future__ import annotations

import numpy as np

from ..synthetic.panel import count_confusion, row_normalise


class ConfusionPool:
    """Pools estimated and true confusion matrices per (area, expert) over cores."""

    def __init__(self, num_classes: int, min_pixels: int = 50):
        self.num_classes = num_classes
        self.min_pixels = min_pixels
        self.estimated: dict[tuple[str, str], np.ndarray] = {}  # Σ_cores mass_j · M[j, :]
        self.mass: dict[tuple[str, str], np.ndarray] = {}  # Σ_cores mass_j
        self.true: dict[tuple[str, str], np.ndarray] = {}  # counts

    def add(self, area: str, expert: str, estimated: np.ndarray, probabilities: np.ndarray, mask: np.ndarray,
            truth: np.ndarray, label: np.ndarray, estimate_mask: np.ndarray | None = None) -> None:
        """One core: the model's matrix (C×C, NaN rows allowed), its class probabilities (C×H×W, the
        weights of the rows), the truth and the expert's label; the true counts are taken on ``mask``,
        the estimate's row weights on ``estimate_mask`` (the pixels it averaged over; default ``mask``)."""
        key = (area, expert)
        c = self.num_classes
        over = mask if estimate_mask is None else estimate_mask
        est = np.asarray(estimated, dtype=np.float64)
        seen = np.isfinite(est).all(axis=1)  # a row the model did not estimate on this core adds no weight
        mass = np.where(seen, probabilities[:, over].sum(axis=1), 0.0).astype(np.float64)  # C
        est = np.where(seen[:, None], est, 0.0)
        self.estimated[key] = self.estimated.get(key, np.zeros((c, c))) + mass[:, None] * est
        self.mass[key] = self.mass.get(key, np.zeros(c)) + mass
        self.true[key] = self.true.get(key, np.zeros((c, c), np.int64)) + count_confusion(truth, label, mask, c)

    def result(self) -> dict[str, dict[str, dict]]:
        """area → expert → estimated and true rows, the rows compared and their max abs difference."""
        out: dict[str, dict[str, dict]] = {}
        for (area, expert), counts in self.true.items():
            mass = self.mass[(area, expert)]
            with np.errstate(invalid="ignore", divide="ignore"):
                est = np.where(mass[:, None] > 0, self.estimated[(area, expert)] / mass[:, None], np.nan)
            true = row_normalise(counts)
            rows = [j for j in range(self.num_classes)
                    if counts[j].sum() >= self.min_pixels and not np.isnan(est[j]).any()]
            diff = float(np.abs(est[rows] - true[rows]).max()) if rows else float("nan")
            out.setdefault(area, {})[expert] = {
                "estimated": est.tolist(), "true": true.tolist(), "rows_compared": rows,
                "pixels_per_row": counts.sum(axis=1).tolist(), "max_abs_diff": diff}
        return out


def global_rows(matrix: np.ndarray) -> np.ndarray:
    """A global model's ``M[i, j]`` (label i, truth j) as this module's rows: true class × label."""
    return np.asarray(matrix, dtype=np.float64).T


__all__ = ["ConfusionPool", "global_rows"]
