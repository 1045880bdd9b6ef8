"""Does a reliability map point at the expert who is wrong? AUROC per expert and kind of error.

Every map that should be high where expert n's label is wrong is scored as a detector of n's
wrong pixels (label ≠ truth) on the test cores' tissue: ``1 − w_n`` of the weighting CNN (eq. 2),
the confusion model's error maps (given the expert's label, and image-only: before seeing it), the
same maps of a global (image-independent) confusion matrix per expert
(:mod:`trainer.annotators.global_confusion`), and two baselines from the segmentation network
alone, ``1 − p(label written)`` and ``1 − max p`` (:func:`network_baselines`). An annotator model
earns its keep only where it beats those baselines. Scores are split by the kind of bias that made
the error (:func:`error_kinds`; the noisy panel's kinds are
:func:`trainer.synthetic.panel.panel_error_kinds`), on all tissue and against same-true-class
negatives only (:class:`AurocPool`).

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


def auroc_within_classes(scores, positive, strata) -> float:
    """AUROC over the positive-negative pairs of the same stratum only (e.g. the same true class).

    ``Σ_c U_c / Σ_c n₊c·n₋c`` with ``U_c`` the Mann–Whitney count of stratum c: the chance that a
    random positive scores above a random negative *of its own stratum*, ties counting one half.
    With one stratum it is :func:`auroc`; NaN when no stratum holds both a positive and a negative.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    strata = np.asarray(strata).ravel()
    if not scores.shape == positive.shape == strata.shape:
        raise ValueError(f"{scores.size} scores, {positive.size} labels and {strata.size} strata")
    u = pairs = 0.0
    for c in np.unique(strata[positive]):
        keep = strata == c
        pos = positive[keep]
        n_pos = int(pos.sum())
        n_neg = pos.size - n_pos
        if n_neg == 0:
            continue
        ranks = average_ranks(scores[keep])
        u += ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
        pairs += n_pos * n_neg
    return float(u / pairs) if pairs else float("nan")


#: The baselines from the segmentation network alone (no annotator model), scored beside every map.
BASELINE_LABEL = "1 − p(label written)"
BASELINE_MAX = "1 − max p"


#: Detector names in results.json: what each map is. Every annotator run scores the network
#: baselines; re-weighting runs add ``1 − w``; confusion runs the pixel-wise and the global maps.
DETECTORS = {
    "1 − w": "re-weighting: one minus the weighting CNN's weight of the expert (eq. 2)",
    "error (given the label)": "confusion model: p(label wrong | image, the expert's label) (Bayes)",
    "error (image only)": "confusion model: p(label wrong | image), before seeing the label",
    "global: error (given the label)": "one confusion matrix per expert for every pixel (image-independent), "
                                       "given the label",
    "global: error (image only)": "one confusion matrix per expert for every pixel, before seeing the label",
    BASELINE_LABEL: "segmentation network alone: one minus its probability of the expert's label",
    BASELINE_MAX: "segmentation network alone: one minus its top probability (the same map for every expert)",
}
#: The detectors that need no annotator model, scored beside every map.
BASELINES = (BASELINE_LABEL, BASELINE_MAX)


def network_baselines(probabilities: np.ndarray, label: np.ndarray) -> dict[str, np.ndarray]:
    """Error maps from the segmentation network's class probabilities alone (``C×H×W``).

    ``1 − p(label written)``: one minus the probability the network gives the expert's own label
    (``label``: H×W class indices, all in ``0..C-1``); ``1 − max p``: the network's uncertainty,
    the same map for every expert. An annotator model is worth its cost only where it beats these.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    lab = np.asarray(label)
    if lab.shape != p.shape[1:]:
        raise ValueError(f"label {lab.shape} does not match probabilities {p.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= p.shape[0]):
        raise ValueError(f"labels must be class indices 0..{p.shape[0] - 1}, got {lab.min()}..{lab.max()}")
    p_label = np.take_along_axis(p, lab.astype(np.int64)[None], 0)[0]
    return {BASELINE_LABEL: 1.0 - p_label, BASELINE_MAX: 1.0 - p.max(axis=0)}


class AurocPool:
    """Pools detector scores and the error kinds of each expert over cores; :meth:`result` scores them.

    A detector is any per-pixel map that should be high where the expert is wrong: ``1 − w`` of the
    weighting CNN, the confusion model's error maps (before seeing the label, or given it), the
    global-matrix baseline's, or a baseline from the segmentation network alone
    (:func:`network_baselines`). Per kind of error, positives are the expert's wrong pixels of that
    kind on the tissue and the metrics are

    * ``auroc`` — negatives: every pixel of the tissue the expert got right (the headline);
    * ``auroc_same_class`` — only pairs of an error and a correct pixel *of the same true class*
      (:func:`auroc_within_classes`): most correct pixels are benign, so a map that merely tells
      tumour from benign scores well on ``auroc``; here only what separates e.g. textured G3 from
      ordinary G3 counts;
    * ``auroc_subset_network_right`` and ``auroc_subset_network_right_same_class`` — the same on
      the *subset* of the tissue the segmentation network predicts right (a favourable subset:
      where the network shares the expert's error no map that follows it can flag it). Kept in
      results.json for comparison with earlier reports; the tables do not show them.

    ``model_agrees`` is the share of the wrong pixels where the segmentation network predicts the
    expert's (wrong) label.
    """

    METRICS = ("auroc", "auroc_same_class", "auroc_subset_network_right", "auroc_subset_network_right_same_class")

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
            score = np.asarray(score)
            if score.shape != truth.shape:
                raise ValueError(f"detector {name!r}: map {score.shape} for labels {truth.shape}")
            self.scores[expert].setdefault(name, []).append(score[tissue].astype(np.float32))
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
                     "error_fraction_subset_network_right": {
                         k: float(pos[net_right].mean()) if net_right.any() else float("nan")
                         for k, pos in kinds.items()},
                     "scores": {}}
            for name, parts in self.scores[e].items():
                scores = np.concatenate(parts)
                s = {m: {} for m in self.METRICS}
                for kind, pos in kinds.items():
                    keep = pos | right  # the other kinds' errors are neither positive nor negative
                    sub = keep & net_right
                    s["auroc"][kind] = auroc(scores[keep], pos[keep])
                    s["auroc_same_class"][kind] = auroc_within_classes(scores[keep], pos[keep], truth[keep])
                    s["auroc_subset_network_right"][kind] = auroc(scores[sub], pos[sub])
                    s["auroc_subset_network_right_same_class"][kind] = auroc_within_classes(
                        scores[sub], pos[sub], truth[sub])
                s["mean_wrong"] = float(scores[~right].mean()) if (~right).any() else float("nan")
                s["mean_right"] = float(scores[right].mean()) if right.any() else float("nan")
                entry["scores"][name] = s
            a, n = self.agrees[e]
            entry["model_agrees"] = a / n if n else float("nan")
            out[e] = entry
        return out


__all__ = ["auroc", "auroc_within_classes", "average_ranks", "error_kinds", "network_baselines", "AurocPool",
           "BASELINE_LABEL", "BASELINE_MAX", "KIND_APPEARANCE_DEPENDENT"]
