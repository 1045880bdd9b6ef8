"""Synthetic H&E-like prostate TMA cores with known truth and six biased simulated experts.

Used by the tests, the napari sample data and ``python -m trainer synth``; no real data needed.

- :mod:`.tissue` draws a core: image, truth (class indices), appearance flags, core mask;
- :mod:`.experts` derives six experts' class maps, each with a documented bias (:data:`EXPERT_BIASES`);
- :mod:`.writer` writes a dataset in the Gleason 2019 layout (:func:`write_dataset`).
"""

from __future__ import annotations

from .experts import EXPERT_BIASES, EXPERT_NAMES, simulate_experts
from .tissue import (
    FLAG_BORDERLINE_G3,
    FLAG_SMALL_G5,
    REFERENCE_SIZE,
    SMALL_FOCUS_AREA,
    SyntheticCore,
    make_core,
    smooth_noise,
)
from .writer import (
    GENERATOR_VERSION,
    assign_experts,
    plan_from_assignment,
    sample_core,
    to_gleason_values,
    write_dataset,
)

__all__ = [
    "EXPERT_BIASES",
    "EXPERT_NAMES",
    "FLAG_BORDERLINE_G3",
    "FLAG_SMALL_G5",
    "GENERATOR_VERSION",
    "REFERENCE_SIZE",
    "SMALL_FOCUS_AREA",
    "SyntheticCore",
    "assign_experts",
    "make_core",
    "plan_from_assignment",
    "sample_core",
    "simulate_experts",
    "smooth_noise",
    "to_gleason_values",
    "write_dataset",
]
