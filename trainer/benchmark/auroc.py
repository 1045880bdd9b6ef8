"""Does a reliability map point at the expert who is wrong? AUROC per expert and kind of error.

The weighting CNN (eq. 2) gives each expert a weight per pixel; where an expert's label is wrong a
useful map gives it *less* weight. So ``1 − w_n`` is scored as a detector of expert n's wrong
pixels (label ≠ truth) on the test cores' tissue, and the score is split by the kind of bias that
made the error (:func:`error_kinds`; the noisy panel's kinds are
:func:`trainer.synthetic.panel.panel_error_kinds`): the weighting CNN sees only the image, so it
can only learn errors whose *place* follows the tissue's appearance. The confusion model's error
maps are scored the same way, both the image-only one (before seeing the label) and the one given
the expert's label.

:func:`auroc` is the Mann–Whitney form with ties at their average rank (the trapezoidal ROC
area), so a constant score gives exactly 0.5, as scikit-learn's ``roc_auc_score`` does.
"""

from __future__ import annotations

import numpy as np

from ..synthetic import EXPERT_BIASES, FLAG_BORDERLINE_G3, FLAG_SMALL_G5

G4 = 2


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of the ranks they span."""
    values = np.asarray(values).ravel()
    n = values.size
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]  # each tie group spans positions starts..ends-1
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # mean of start+1 … end
    return ranks


def auroc(scores, positive) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive``; NaN if a class is empty.

    AUROC = U / (n₊ n₋) with U = Σ ranks(positives) − n₊(n₊ + 1)/2 (Mann–Whitney): the chance that
    a random positive scores above a random negative, ties counting one half.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.size} scores for {positive.size} labels")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def error_kinds(expert: str, label: np.ndarray, truth: np.ndarray, flags: np.ndarray) -> dict[str, np.ndarray]:
    """Expert ``expert``'s wrong pixels split by the bias that made them (bool H×W each).

    ``all`` is every wrong pixel. Expert 3 has two mechanisms, kept apart because only one follows
    the tissue: borderline-appearance G3 (flag 1) called G4, and random patches of G4 called G3.
    Expert 5's misses are the small G5 foci (flag 2). Other experts have one mechanism each, named
    after their ``EXPERT_BIASES`` kind.
    """
    wrong = label != truth
    out = {"all": wrong}
    if expert == "3":
        out["borderline_g3_called_g4"] = wrong & ((flags & FLAG_BORDERLINE_G3) > 0)
        out["random_g4_patches_called_g3"] = wrong & (truth == G4)
    elif expert == "5":
        out["small_g5_foci_missed"] = wrong & ((flags & FLAG_SMALL_G5) > 0)
    elif expert in EXPERT_BIASES:
        out[EXPERT_BIASES[expert]["kind"]] = wrong
    return out


#: Whether the place of each kind of error follows what the tissue looks like (what eq. 2 can see).
KIND_APPEARANCE_DEPENDENT = {
    "borderline_g3_called_g4": True,
    "random_g4_patches_called_g3": False,
    "small_g5_foci_missed": True,
    **{b["kind"]: bool(b["appearance_dependent"]) for n, b in EXPERT_BIASES.items() if n not in ("3", "5")},
}


class AurocPool:
    """Pools detector scores and the error kinds of each expert over cores; :meth:`result` scores them.

    A detector is any per-pixel map that should be high where the expert is wrong: ``1 − w`` of the
    weighting CNN, or the confusion model's error map (before seeing the label, or given it).
    Negatives of every kind are the expert's *correct* tissue pixels, so a kind's AUROC says how
    well the map separates that kind of error from the pixels the expert got right. Most correct
    pixels are benign, so a map that merely tells tumour from benign already scores well; the
    stricter ``same_class`` AUROC keeps only the correct pixels of the *same true class* as the
    errors (e.g. ordinary G3 against textured G3), which only the error's appearance separates.
    Each is computed on all tissue and on the tissue the segmentation network predicts right
    (``net_right``): where the network shares an expert's error, no map that follows agreement
    with the network can flag it, and that is a different failure from not finding the error.
    ``model_agrees`` is the share of the wrong pixels where the segmentation network predicts the
    expert's (wrong) label: there the expert's loss is the smallest and eq. (3) *raises* its weight.
    """

    METRICS = ("auroc", "auroc_same_class", "auroc_net_right", "auroc_net_right_same_class")

    def __init__(self, experts: tuple[str, ...], kinds_fn=None):
        self.experts = tuple(experts)
        self.kinds_fn = kinds_fn or error_kinds
        self.scores: dict[str, dict[str, list[np.ndarray]]] = {e: {} for e in self.experts}
        self.kinds: dict[str, dict[str, list[np.ndarray]]] = {e: {} for e in self.experts}
        self.truth: dict[str, list[np.ndarray]] = {e: [] for e in self.experts}
        self.net_right: dict[str, list[np.ndarray]] = {e: [] for e in self.experts}
        self.agrees: dict[str, list[int]] = {e: [0, 0] for e in self.experts}

    def add(self, expert: str, scores: dict[str, np.ndarray], label: np.ndarray, truth: np.ndarray,
            flags: np.ndarray, tissue: np.ndarray, prediction: np.ndarray) -> None:
        """``scores``: detector name → H×W map, high where the expert is believed wrong."""
        kinds = self.kinds_fn(expert, label, truth, flags)
        for name, score in scores.items():
            self.scores[expert].setdefault(name, []).append(np.asarray(score)[tissue].astype(np.float32))
        self.truth[expert].append(truth[tissue])
        for kind, mask in kinds.items():
            self.kinds[expert].setdefault(kind, []).append(mask[tissue])
        self.net_right[expert].append((prediction == truth)[tissue])
        wrong = kinds["all"][tissue]
        self.agrees[expert][0] += int((prediction[tissue] == label[tissue])[wrong].sum())
        self.agrees[expert][1] += int(wrong.sum())

    def result(self) -> dict[str, dict]:
        """Per expert: error fractions, ``model_agrees`` and, per detector, the AUROCs per kind."""
        out = {}
        for e in self.experts:
            if not self.truth[e]:
                continue
            kinds = {k: np.concatenate(v) for k, v in self.kinds[e].items()}
            truth = np.concatenate(self.truth[e])
            net_right = np.concatenate(self.net_right[e])
            right = ~kinds["all"]
            entry = {"error_fraction": {k: float(pos.mean()) for k, pos in kinds.items()},
                     "error_fraction_net_right": {k: float(pos[net_right].mean()) if net_right.any() else float("nan")
                                                  for k, pos in kinds.items()},
                     "scores": {}}
            for name, parts in self.scores[e].items():
                scores = np.concatenate(parts)
                s = {m: {} for m in self.METRICS}
                for kind, pos in kinds.items():
                    classes = np.unique(truth[pos])
                    same = pos | (right & np.isin(truth, classes))
                    for metric, keep in (("auroc", pos | right), ("auroc_same_class", same),
                                         ("auroc_net_right", (pos | right) & net_right),
                                         ("auroc_net_right_same_class", same & net_right)):
                        s[metric][kind] = auroc(scores[keep], pos[keep])
                s["mean_wrong"] = float(scores[~right].mean()) if (~right).any() else float("nan")
                s["mean_right"] = float(scores[right].mean()) if right.any() else float("nan")
                entry["scores"][name] = s
            a, n = self.agrees[e]
            entry["model_agrees"] = a / n if n else float("nan")
            out[e] = entry
        return out


__all__ = ["auroc", "average_ranks", "error_kinds", "AurocPool", "KIND_APPEARANCE_DEPENDENT"]
