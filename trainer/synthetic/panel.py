"""A noisy panel: three simulated experts who disagree as much as Gleason 2019's pathologists.

The six default experts (:mod:`.experts`) err one at a time and mostly at outlines; the vote of
any three is already 95 % right, so no annotator model can show what it is for. This panel's
experts A, B and C disagree about as much as real pathologists (pairwise Cohen's κ ≈ 0.45–0.65
on tissue) and in the ways that decide between methods:

(a) **one expert, appearance-dependent, over large areas** — A calls a whole G3 pattern (crowded
    small glands with dark epithelium, :data:`~.tissue.FLAG_TEXTURED_G3`) G4; C misses a whole G3
    pattern that reads benign (foamy glands, :data:`~.tissue.FLAG_FOAMY_G3`);
(b) **unreliable** — B relabels random blobs, placed independently of the image, to a random
    wrong class;
(c) **cores annotated by two experts only** (:func:`panel_assignment`), where the vote of two is a
    tie wherever they differ, and three-way disagreements (B's random blob on A's or C's pattern);
(d) **a shared bias** — B and C both call poorly formed G4 (:data:`~.tissue.FLAG_POORLY_FORMED_G4`)
    G3, so the vote of three is wrong there and no method that sees only the image and the labels
    can know better: the control.

Each pattern covers whole class regions (one choice per connected region), so the biased areas
are large enough for a per-pixel map to resolve. :data:`PANEL_BIASES` records every bias (its
flag, experts, true class and the class it is called), :func:`panel_error_kinds` splits an
expert's wrong pixels by the bias that made them, and :func:`write_panel_dataset` writes a
dataset in the generic layout with the truth, the flags, the measured pairwise κ and each
expert's true confusion matrix on each of its biased areas.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from ..data.classes import GLEASON_CLASSES
from ..errors import InputError
from ..metrics import cohen_kappa_from_confusion
from .tissue import (
    BENIGN,
    FLAG_FOAMY_G3,
    FLAG_POORLY_FORMED_G4,
    FLAG_SMALL_G5,
    FLAG_TEXTURED_G3,
    G3,
    G4,
    SMALL_FOCUS_AREA,
    SyntheticCore,
    _core_mask,
    _layout,
    _render,
    smooth_noise,
)
from .writer import JPEG_QUALITY, MASK_SUFFIX, core_name, to_gleason_values

#: Bump when the same seed would produce different panel files.
PANEL_VERSION = "1.0"

PANEL_NAMES: tuple[str, ...] = ("A", "B", "C")
PAIRS: tuple[tuple[str, str], ...] = (("A", "B"), ("A", "C"), ("B", "C"))
NUM_CLASSES = len(GLEASON_CLASSES)

#: More cores carry G3 than by default: two of the three patterns are G3 patterns.
PANEL_PRESENCE = (0.85, 0.8, 0.2)

#: Chance that a connected G3 (G4) region is drawn in each pattern; the rest is ordinary tissue.
PATTERN_PROBS: dict[int, dict[int, float]] = {
    G3: {FLAG_TEXTURED_G3: 0.4, FLAG_FOAMY_G3: 0.3},
    G4: {FLAG_POORLY_FORMED_G4: 0.35},
}

#: The panel's systematic biases. ``role`` is the brief's letter: (a) one expert, appearance-
#: dependent; (d) shared by two experts (the vote of three is wrong). Each is applied to every
#: pixel of its pattern (``prob`` 1): "always called G4", "consistently missed".
PANEL_BIASES: dict[str, dict] = {
    "textured_g3_called_g4": {
        "experts": ["A"], "flag": FLAG_TEXTURED_G3, "true_class": "G3", "called": "G4", "prob": 1.0,
        "appearance_dependent": True, "shared": False, "role": "a",
        "description": "G3 drawn as crowded small glands with dark amphophilic epithelium, called G4 "
                       "(a whole gland pattern up-graded)",
    },
    "foamy_g3_missed": {
        "experts": ["C"], "flag": FLAG_FOAMY_G3, "true_class": "G3", "called": "benign", "prob": 1.0,
        "appearance_dependent": True, "shared": False, "role": "a",
        "description": "G3 drawn as medium glands of pale foamy cytoplasm, called benign "
                       "(a texture consistently missed)",
    },
    "poorly_formed_g4_called_g3": {
        "experts": ["B", "C"], "flag": FLAG_POORLY_FORMED_G4, "true_class": "G4", "called": "G3", "prob": 1.0,
        "appearance_dependent": True, "shared": True, "role": "d",
        "description": "G4 drawn as small fused, poorly formed glands, called G3 by two experts "
                       "(the vote of three is wrong: the control)",
    },
}

#: Each expert: its biases, the imprecision of its outlines (a smooth displacement of the label
#: map, px at 512²) and, for the unreliable one, random blobs relabelled to a random wrong class
#: (fraction of tissue). ``other_errors`` names the kind of every wrong pixel outside its biases.
PANEL_EXPERTS: dict[str, dict] = {
    "A": {"kind": "upgrades_textured_g3", "role": "a",
          "description": "calls textured G3 (crowded dark glands) G4; outlines a little imprecise",
          "biases": ["textured_g3_called_g4"], "outline_px_at_512": 4.0, "outline_sigma_px_at_512": 12.0,
          "random_fraction": None, "other_errors": "outline", "appearance_dependent": True},
    "B": {"kind": "unreliable", "role": "b",
          "description": "relabels random blobs (independent of the image) to a random wrong class; "
                         "shares C's poorly-formed-G4-as-G3 bias",
          "biases": ["poorly_formed_g4_called_g3"], "outline_px_at_512": 4.0, "outline_sigma_px_at_512": 12.0,
          "random_fraction": [0.12, 0.2], "blob_sigma_px_at_512": 10.0, "other_errors": "unreliable_random",
          "appearance_dependent": False},
    "C": {"kind": "misses_foamy_g3", "role": "a",
          "description": "calls foamy G3 benign; shares B's poorly-formed-G4-as-G3 bias",
          "biases": ["foamy_g3_missed", "poorly_formed_g4_called_g3"], "outline_px_at_512": 4.0,
          "outline_sigma_px_at_512": 12.0, "random_fraction": None, "other_errors": "outline",
          "appearance_dependent": True},
}
assert tuple(PANEL_EXPERTS) == PANEL_NAMES
assert all((b in PANEL_EXPERTS[e]["biases"]) == (e in PANEL_BIASES[b]["experts"])
           for b in PANEL_BIASES for e in PANEL_NAMES)

#: Whether the place of each kind of error follows what the tissue looks like.
PANEL_KIND_APPEARANCE = {**{k: b["appearance_dependent"] for k, b in PANEL_BIASES.items()},
                         "outline": False, "unreliable_random": False}

_CORE_KEY = 0x9A7E1  # spawn key of the panel's cores, apart from the default generator's
_ASSIGNMENT_KEY = 0x9A7E2
_CLASS = {name: i for i, name in enumerate(GLEASON_CLASSES)}


def panel_description() -> dict:
    """Deep copies of :data:`PANEL_EXPERTS` and :data:`PANEL_BIASES` (safe to serialise)."""
    return {"experts": copy.deepcopy(PANEL_EXPERTS), "biases": copy.deepcopy(PANEL_BIASES)}


# --- tissue -------------------------------------------------------------------------------------


def _panel_flags(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """Small-G5 flags as by default, and one pattern per connected G3 / G4 region."""
    u = truth.shape[0] / 512
    labels, _ = ndi.label(truth == 3)
    areas = np.bincount(labels.ravel())
    small = areas < SMALL_FOCUS_AREA * u * u
    small[0] = False
    flags = np.where(small[labels], FLAG_SMALL_G5, 0).astype(np.uint8)
    for cls, patterns in PATTERN_PROBS.items():
        labels, n = ndi.label(truth == cls)
        draw = rng.random(n + 1)
        lut = np.zeros(n + 1, np.uint8)
        low = 0.0
        for flag, p in patterns.items():
            lut[(draw >= low) & (draw < low + p)] = flag
            low += p
        lut[0] = 0
        flags |= lut[labels]
    return flags


def make_panel_core(rng: np.random.Generator | int, size: int = 512) -> SyntheticCore:
    """One core of the noisy panel: the default tissue with the panel's patterns over whole regions."""
    rng = np.random.default_rng(rng)
    size = int(size)
    core = _core_mask(rng, size)
    truth = _layout(rng, core, PANEL_PRESENCE)
    flags = _panel_flags(rng, truth)
    image = _render(rng, truth, flags, core)
    return SyntheticCore(image=image, truth=truth, flags=flags, core_mask=core)


# --- experts ------------------------------------------------------------------------------------


def _outline_jitter(labels: np.ndarray, rng: np.random.Generator, amp: float, sigma: float) -> np.ndarray:
    """Displace a class map by a smooth random field of amplitude ``amp`` px (imprecise outlines)."""
    if amp <= 0:
        return labels
    shape = labels.shape
    yy, xx = np.indices(shape, dtype=np.float32)
    yy += amp * smooth_noise(rng, shape, sigma)
    xx += amp * smooth_noise(rng, shape, sigma)
    return ndi.map_coordinates(labels, [yy, xx], order=0, mode="nearest").astype(np.uint8)


def _random_blobs(core: SyntheticCore, rng: np.random.Generator, fraction: float, sigma: float) -> np.ndarray:
    """Blobs placed independently of the image covering ``fraction`` of the tissue (bool H×W)."""
    field = smooth_noise(rng, core.truth.shape, sigma)
    tissue = core.core_mask
    threshold = np.quantile(field[tissue], 1 - fraction) if tissue.any() else np.inf
    return (field > threshold) & tissue


def simulate_panel(core: SyntheticCore, rng: np.random.Generator | int,
                   experts: tuple[str, ...] | list[str] = PANEL_NAMES) -> dict[str, np.ndarray]:
    """Each requested panel expert's class map (uint8 H×W class indices, benign outside the core).

    Biases first (every pixel of the expert's patterns relabelled), then the outline imprecision,
    then (B) the random blobs, each relabelled to a wrong class chosen per blob. One number is
    drawn from ``rng``; each expert has its own stream from it, so an expert's labels do not
    depend on which others were asked for.
    """
    unknown = [e for e in experts if e not in PANEL_EXPERTS]
    if unknown:
        raise InputError(f"unknown panel expert(s) {unknown}; choose from {list(PANEL_NAMES)}")
    base = int(np.random.default_rng(rng).integers(2**62))
    scale = core.scale
    out: dict[str, np.ndarray] = {}
    for name in experts:
        spec = PANEL_EXPERTS[name]
        r = np.random.default_rng([base, PANEL_NAMES.index(name)])
        labels = core.truth.copy()
        for bias_name in spec["biases"]:
            bias = PANEL_BIASES[bias_name]
            area = ((core.flags & bias["flag"]) > 0) & (core.truth == _CLASS[bias["true_class"]])
            labels[area] = _CLASS[bias["called"]]
        labels = _outline_jitter(labels, r, spec["outline_px_at_512"] * scale, spec["outline_sigma_px_at_512"] * scale)
        if spec["random_fraction"]:
            blobs = _random_blobs(core, r, r.uniform(*spec["random_fraction"]), spec["blob_sigma_px_at_512"] * scale)
            ids, n = ndi.label(blobs)
            offset = r.integers(1, NUM_CLASSES, n + 1).astype(np.uint8)  # per blob: which wrong class
            labels[blobs] = (core.truth[blobs] + offset[ids[blobs]]) % NUM_CLASSES
        labels[~core.core_mask] = BENIGN
        out[name] = labels
    return out


def panel_error_kinds(expert: str, label: np.ndarray, truth: np.ndarray, flags: np.ndarray) -> dict[str, np.ndarray]:
    """Panel expert ``expert``'s wrong pixels split by the bias that made them (bool arrays).

    ``all`` is every wrong pixel; each of the expert's biases takes the wrong pixels on its
    pattern; what is left is the expert's ``other_errors`` (outline imprecision, or B's random
    blobs). The kinds other than ``all`` do not overlap.
    """
    spec = PANEL_EXPERTS[expert]
    wrong = label != truth
    out = {"all": wrong}
    left = wrong.copy()
    for bias_name in spec["biases"]:
        mask = left & ((flags & PANEL_BIASES[bias_name]["flag"]) > 0)
        out[bias_name] = mask
        left &= ~mask
    out[spec["other_errors"]] = left
    return out


def bias_area(bias_name: str, truth: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Pixels of a bias's pattern (its flag on its true class): where its confusion matrix is read."""
    bias = PANEL_BIASES[bias_name]
    return ((flags & bias["flag"]) > 0) & (truth == _CLASS[bias["true_class"]])


def count_confusion(truth: np.ndarray, label: np.ndarray, mask: np.ndarray | None = None,
                    num_classes: int = NUM_CLASSES) -> np.ndarray:
    """C×C counts, row = true class, column = label, over ``mask`` (all pixels when None)."""
    t, lab = (truth, label) if mask is None else (truth[mask], label[mask])
    idx = t.astype(np.int64).ravel() * num_classes + lab.astype(np.int64).ravel()
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Rows summing to 1; NaN rows where a true class is absent."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1), np.nan)


def tie_mask(masks: dict[str, np.ndarray] | list[np.ndarray]) -> np.ndarray:
    """Pixels where the vote of the given class maps is a tie (two or more classes share the top count)."""
    stack = np.stack(list(masks.values()) if isinstance(masks, dict) else list(masks))
    counts = np.stack([(stack == c).sum(axis=0) for c in range(NUM_CLASSES)])
    return (counts == counts.max(axis=0)[None]).sum(axis=0) > 1


def panel_assignment(cores: int, seed: int, pair_fraction: float = 0.4) -> list[list[str]]:
    """Who annotates each core: all three, or (a ``pair_fraction`` of cores) one of the three pairs.

    Pairs cycle A+B, A+C, B+C so each is equally common; which cores get a pair is drawn from
    ``seed``.
    """
    if not 0.0 <= pair_fraction <= 1.0:
        raise InputError(f"pair_fraction must be in [0, 1], got {pair_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ASSIGNMENT_KEY,)))
    out, k = [], 0
    for _ in range(cores):
        if rng.random() < pair_fraction:
            out.append(list(PAIRS[k % len(PAIRS)]))
            k += 1
        else:
            out.append(list(PANEL_NAMES))
    return out


def panel_core_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CORE_KEY, index)))


# --- agreement statistics -----------------------------------------------------------------------


class PanelStats:
    """Pools, over cores, what the panel is meant to be: pairwise κ, true confusion per bias, ties."""

    def __init__(self):
        self.pairs: dict[str, np.ndarray] = {}
        self.vs_truth: dict[str, np.ndarray] = {}
        self.bias_cm: dict[str, dict[str, np.ndarray]] = {}
        self.ties = [0, 0]
        self.pattern_pixels: dict[str, int] = {}
        self.tissue = 0

    def add(self, core: SyntheticCore, labels: dict[str, np.ndarray]) -> None:
        tissue = core.core_mask
        truth = core.truth
        self.tissue += int(tissue.sum())
        names = sorted(labels)
        for i, a in enumerate(names):
            self.vs_truth.setdefault(a, np.zeros((NUM_CLASSES,) * 2, np.int64))
            self.vs_truth[a] += count_confusion(truth, labels[a], tissue)
            for b in names[i + 1:]:
                key = f"{a}-{b}"
                self.pairs.setdefault(key, np.zeros((NUM_CLASSES,) * 2, np.int64))
                self.pairs[key] += count_confusion(labels[a], labels[b], tissue)
        for bias_name, bias in PANEL_BIASES.items():
            area = bias_area(bias_name, truth, core.flags) & tissue
            self.pattern_pixels[bias_name] = self.pattern_pixels.get(bias_name, 0) + int(area.sum())
            for e in bias["experts"]:
                if e in labels:
                    cms = self.bias_cm.setdefault(bias_name, {})
                    cms.setdefault(e, np.zeros((NUM_CLASSES,) * 2, np.int64))
                    cms[e] += count_confusion(truth, labels[e], area)
        ties = tie_mask(labels) & tissue
        self.ties[0] += int(ties.sum())
        self.ties[1] += int(tissue.sum())

    def kappas(self) -> dict[str, float]:
        return {k: float(cohen_kappa_from_confusion(cm)) for k, cm in sorted(self.pairs.items())}

    def result(self) -> dict:
        """Plain-JSON summary: κ per pair, accuracy per expert, confusion on each biased area."""
        return {
            "pairwise_kappa": self.kappas(),
            "accuracy_vs_truth": {e: float(np.trace(cm) / max(cm.sum(), 1)) for e, cm in sorted(self.vs_truth.items())},
            "kappa_vs_truth": {e: float(cohen_kappa_from_confusion(cm)) for e, cm in sorted(self.vs_truth.items())},
            "tie_fraction_of_tissue": self.ties[0] / max(self.ties[1], 1),
            "pattern_fraction_of_tissue": {k: v / max(self.tissue, 1) for k, v in self.pattern_pixels.items()},
            "true_confusion_on_biased_areas": {
                b: {e: [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in row_normalise(cm)]
                    for e, cm in cms.items()}
                for b, cms in self.bias_cm.items()},
        }


# --- writer -------------------------------------------------------------------------------------


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG")


def write_panel_dataset(out: str | Path, cores: int = 8, size: int = 512, seed: int = 0,
                        assignment: list[list[str]] | None = None, pair_fraction: float = 0.4) -> dict:
    """Write ``cores`` panel cores in the generic layout under ``out``; return the summary.

    ::

        out/
          images/<core>.jpg                          H&E-like RGB, JPEG quality 90
          masks/{A,B,C}/<core>.png                   class indices 0-3 (benign, G3, G4, G5)
          classes.json
          truth/<core>_classimg_nonconvex.png        the truth in Gleason values (0 = glass)
          appearance/<core>_flags.png                bit flags (tissue.py), the panel's patterns
          synthetic.json                             experts, biases, per-core records, κ, confusion

    ``assignment`` (experts per core) replaces :func:`panel_assignment`. Everything follows from
    ``seed``; the files are byte-identical between runs.
    """
    from .writer import check_args

    out = Path(out)
    check_args(out, cores, size, seed)
    cores, size, seed = int(cores), int(size), int(seed)
    if assignment is None:
        assignment = panel_assignment(cores, seed, pair_fraction)
    if len(assignment) != cores:
        raise InputError(f"assignment lists experts for {len(assignment)} cores, not {cores}")
    assignment = [sorted(set(map(str, a))) for a in assignment]
    for i, a in enumerate(assignment):
        if not a or any(e not in PANEL_EXPERTS for e in a):
            raise InputError(f"core {i}: experts must be a non-empty subset of {list(PANEL_NAMES)}, got {a}")
    used = sorted({e for a in assignment for e in a})
    for folder in ["images", "truth", "appearance"] + [f"masks/{e}" for e in used]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    (out / "classes.json").write_text(json.dumps({"classes": list(GLEASON_CLASSES)}, indent=2) + "\n")

    stats = PanelStats()
    records = []
    for i, experts in enumerate(assignment):
        name = core_name(i)
        rng = panel_core_rng(seed, i)
        core = make_panel_core(rng, size)
        labels = simulate_panel(core, rng, experts)
        Image.fromarray(core.image).save(out / "images" / f"{name}.jpg", format="JPEG", quality=JPEG_QUALITY)
        _save_png(out / "truth" / f"{name}{MASK_SUFFIX}", to_gleason_values(core.truth, core.core_mask))
        _save_png(out / "appearance" / f"{name}_flags.png", core.flags)
        for e, m in labels.items():
            _save_png(out / "masks" / e / f"{name}.png", m)
        stats.add(core, labels)
        tissue = core.core_mask
        records.append({
            "name": name, "experts": experts,
            "class_fractions": {n: round(float(v), 4) for n, v in zip(
                GLEASON_CLASSES, np.bincount(core.truth[tissue], minlength=NUM_CLASSES) / max(tissue.sum(), 1))},
            "pattern_fractions": {b: round(float(bias_area(b, core.truth, core.flags)[tissue].mean()), 4)
                                  for b in PANEL_BIASES},
            "tie_fraction": round(float(tie_mask(labels)[tissue].mean()), 4),
        })
    summary = {
        "generator": "trainer.synthetic.panel", "version": PANEL_VERSION, "seed": seed, "size": size,
        "num_cores": cores, "layout": "generic", "classes": list(GLEASON_CLASSES),
        "files": {"image": "images/<core>.jpg", "expert_mask": "masks/<expert>/<core>.png",
                  "truth": f"truth/<core>{MASK_SUFFIX}", "flags": "appearance/<core>_flags.png"},
        "flags": {str(FLAG_SMALL_G5): "small G5 focus",
                  str(FLAG_TEXTURED_G3): "textured G3 (crowded small glands, dark epithelium)",
                  str(FLAG_FOAMY_G3): "foamy G3 (pale foamy cytoplasm)",
                  str(FLAG_POORLY_FORMED_G4): "poorly formed G4 (small fused glands)"},
        **panel_description(),
        "statistics": stats.result(),
        "cores": records,
    }
    (out / "synthetic.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


__all__ = ["PANEL_BIASES", "PANEL_EXPERTS", "PANEL_KIND_APPEARANCE", "PANEL_NAMES", "PANEL_VERSION", "PAIRS",
           "PanelStats", "bias_area", "count_confusion", "make_panel_core", "panel_assignment",
           "panel_core_rng", "panel_description", "panel_error_kinds", "row_normalise", "simulate_panel",
           "tie_mask", "write_panel_dataset"]
