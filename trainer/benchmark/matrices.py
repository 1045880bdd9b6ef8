"""Estimated against true confusion matrices of each expert, on its biased areas and on all tissue.

The confusion model (Zhang, Tanno et al. 2020) summarises an expert on a region as a C×C matrix:
row = the true class *as the model sees it* (each pixel counts toward row j with the network's
probability p_j), column = the expert's label, rows summing to 1
(:attr:`trainer.inference.Prediction.confusion`). The true matrix on the same region counts the
truth against the expert's label. Both are pooled over the test cores — the estimate weighted by
each core's probability mass per row, so a core with more of a class counts more, as it does in
the true counts — and compared on the rows the truth has at least ``min_pixels`` of: on a biased
area that is the one class the bias relabels (e.g. expert A on textured G3: the G3 row).
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
            truth: np.ndarray, label: np.ndarray) -> None:
        """One core: the model's matrix on ``mask`` (C×C, NaN rows allowed), its class probabilities
        (C×H×W, the weights of the rows), the truth and the expert's label."""
        key = (area, expert)
        c = self.num_classes
        mass = probabilities[:, mask].sum(axis=1).astype(np.float64)  # C
        est = np.nan_to_num(np.asarray(estimated, dtype=np.float64))
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


__all__ = ["ConfusionPool"]
