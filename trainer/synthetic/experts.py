"""Six simulated pathologists, each a documented, measurable distortion of the truth.

The paper's premise is that experts disagree in ways a network can learn from the image: some
errors depend on what the tissue looks like (a borderline G3 called G4, a small G5 focus missed),
others do not (an unreliable annotator). :data:`EXPERT_BIASES` records each bias so that tests,
the dataset's ``synthetic.json`` and later analyses (e.g. whether the learnt weight map of eq. 2
down-weights an expert where it errs) can check them. Lengths and areas are given at a 512² core
and scaled with the core size.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtri

from ..errors import InputError
from .tissue import (
    BENIGN,
    FLAG_BORDERLINE_G3,
    FLAG_SMALL_G5,
    G3,
    G4,
    SMALL_FOCUS_AREA,
    SyntheticCore,
    smooth_noise,
)

EXPERT_NAMES: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")

#: What each simulated expert does wrong. ``appearance_dependent``: whether the errors follow
#: something visible in the image (so a weighting CNN could, in principle, predict them).
#: ``benign_as_6_prob``: chance per core that the expert writes benign as Gleason value 6, not 1.
EXPERT_BIASES: dict[str, dict] = {
    "1": {
        "kind": "boundary_shift",
        "description": "over-extends tumour outlines into the adjacent benign tissue "
        "(every benign pixel within the shift of a tumour takes the nearest tumour grade)",
        "appearance_dependent": False,
        "params": {"shift_px_at_512": [4.0, 8.0]},
        "benign_as_6_prob": 0.0,
    },
    "2": {
        "kind": "coarse_outline",
        "description": "draws at low resolution: class maps averaged over a coarse grid and "
        "interpolated back, giving polygon-like outlines; small foci may vanish",
        "appearance_dependent": False,
        "params": {"grid_px_at_512": 16},
        "benign_as_6_prob": 0.5,
    },
    "3": {
        "kind": "g3_g4_confusion",
        "description": "calls borderline-appearance G3 (larger, crowded glands; flag 1) G4, and "
        "relabels a few random patches of G4 as G3",
        "appearance_dependent": True,
        "params": {"borderline_to_g4_prob": 0.9, "g4_to_g3_fraction": 0.05, "patch_sigma_px_at_512": 8.0},
        "benign_as_6_prob": 0.0,
    },
    "4": {
        "kind": "unreliable",
        "description": "relabels random blobs, placed independently of the image, to a random "
        "wrong class; the blobs cover a fixed fraction of the tumour area (and as much benign)",
        "appearance_dependent": False,
        "params": {"tumour_fraction": [0.15, 0.25], "blob_sigma_px_at_512": 8.0},
        "benign_as_6_prob": 0.0,
    },
    "5": {
        "kind": "misses_small_g5",
        "description": "labels small G5 foci (components under max_focus_area; flag 2) as G4",
        "appearance_dependent": True,
        "params": {"max_focus_area_px_at_512": SMALL_FOCUS_AREA},
        "benign_as_6_prob": 0.3,
    },
    "6": {
        "kind": "careful",
        "description": "near-truth; outlines jitter by about a pixel",
        "appearance_dependent": False,
        "params": {"jitter_px_at_512": 1.5, "jitter_sigma_px_at_512": 6.0},
        "benign_as_6_prob": 0.0,
    },
}


def _boundary_shift(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    low, high = EXPERT_BIASES["1"]["params"]["shift_px_at_512"]
    shift = rng.uniform(low, high) * core.scale
    truth = core.truth
    tumour = (truth != BENIGN) & core.core_mask
    out = truth.copy()
    if not tumour.any():
        return out
    dist, (iy, ix) = ndi.distance_transform_edt(~tumour, return_indices=True)
    grow = (dist <= shift) & core.core_mask & ~tumour
    out[grow] = truth[iy[grow], ix[grow]]  # the nearest tumour pixel's grade
    return out


def _coarse_outline(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    grid = max(2, round(EXPERT_BIASES["2"]["params"]["grid_px_at_512"] * core.scale))
    h, w = core.truth.shape
    low = (max(2, -(-h // grid)), max(2, -(-w // grid)))
    votes = []
    for cls in range(4):
        onehot = ndi.uniform_filter((core.truth == cls).astype(np.float32), grid)
        coarse = onehot[grid // 2 :: grid, grid // 2 :: grid][: low[0], : low[1]]
        coarse = np.pad(coarse, ((0, low[0] - coarse.shape[0]), (0, low[1] - coarse.shape[1])), mode="edge")
        # Linear interpolation of the coarse votes gives straight-edged, polygon-like outlines.
        votes.append(ndi.zoom(coarse, (h / low[0], w / low[1]), order=1, grid_mode=True, mode="nearest"))
    return np.argmax(np.stack(votes), axis=0).astype(np.uint8)


def _g3_g4_confusion(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    params = EXPERT_BIASES["3"]["params"]
    truth = core.truth
    out = truth.copy()
    borderline = ((core.flags & FLAG_BORDERLINE_G3) > 0) & (truth == G3)
    labels, n = ndi.label(borderline)
    called_g4 = rng.random(n + 1) < params["borderline_to_g4_prob"]  # one decision per region
    called_g4[0] = False
    out[called_g4[labels]] = G4
    g4 = truth == G4
    if g4.any():
        patches = smooth_noise(rng, truth.shape, params["patch_sigma_px_at_512"] * core.scale)
        out[g4 & (patches > ndtri(1 - params["g4_to_g3_fraction"]))] = G3
    return out


def _unreliable(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    params = EXPERT_BIASES["4"]["params"]
    truth = core.truth
    tumour = (truth != BENIGN) & core.core_mask
    fraction = rng.uniform(*params["tumour_fraction"])
    field = smooth_noise(rng, truth.shape, params["blob_sigma_px_at_512"] * core.scale)
    # The threshold is a quantile over tumour pixels, so the tumour fraction hit is as specified.
    threshold = np.quantile(field[tumour], 1 - fraction) if tumour.any() else ndtri(1 - fraction)
    blobs = (field > threshold) & core.core_mask
    labels, n = ndi.label(blobs)
    offset = rng.integers(1, 4, n + 1).astype(np.uint8)  # per blob: which wrong class
    out = truth.copy()
    out[blobs] = (truth[blobs] + offset[labels[blobs]]) % 4
    return out


def _misses_small_g5(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    out = core.truth.copy()
    out[(core.flags & FLAG_SMALL_G5) > 0] = G4
    return out


def _careful(core: SyntheticCore, rng: np.random.Generator) -> np.ndarray:
    params = EXPERT_BIASES["6"]["params"]
    shape = core.truth.shape
    amp, sigma = params["jitter_px_at_512"] * core.scale, params["jitter_sigma_px_at_512"] * core.scale
    yy, xx = np.indices(shape, dtype=np.float32)
    yy += amp * smooth_noise(rng, shape, sigma)
    xx += amp * smooth_noise(rng, shape, sigma)
    return ndi.map_coordinates(core.truth, [yy, xx], order=0, mode="nearest").astype(np.uint8)


_SIMULATORS = {
    "1": _boundary_shift,
    "2": _coarse_outline,
    "3": _g3_g4_confusion,
    "4": _unreliable,
    "5": _misses_small_g5,
    "6": _careful,
}
assert tuple(_SIMULATORS) == EXPERT_NAMES and tuple(EXPERT_BIASES) == EXPERT_NAMES


def expert_biases() -> dict[str, dict]:
    """A deep copy of :data:`EXPERT_BIASES`, safe to serialise or modify."""
    return copy.deepcopy(EXPERT_BIASES)


def simulate_experts(
    core: SyntheticCore,
    rng: np.random.Generator | int,
    experts: tuple[str, ...] | list[str] = EXPERT_NAMES,
) -> dict[str, np.ndarray]:
    """Each requested expert's class map (uint8 H×W class indices, benign outside the core).

    One number is drawn from ``rng`` and each expert gets its own stream seeded from it and its
    name, so an expert's labels do not depend on which other experts were asked for.
    """
    unknown = [name for name in experts if name not in _SIMULATORS]
    if unknown:
        raise InputError(f"unknown synthetic expert(s) {unknown}; choose from {list(EXPERT_NAMES)}")
    base = int(np.random.default_rng(rng).integers(2**62))
    out: dict[str, np.ndarray] = {}
    for name in experts:
        labels = _SIMULATORS[name](core, np.random.default_rng([base, EXPERT_NAMES.index(name)]))
        labels[~core.core_mask] = BENIGN
        out[name] = labels.astype(np.uint8, copy=False)
    return out


__all__ = ["EXPERT_BIASES", "EXPERT_NAMES", "expert_biases", "simulate_experts"]
