"""Synthetic H&E-like prostate TMA cores with known truth and six biased simulated experts.

Used by the tests, the napari sample data and ``python -m trainer synth``; no real data needed.

- :mod:`.tissue` draws a core: image, truth (class indices), appearance flags, core mask;
- :mod:`.experts` derives six experts' class maps, each with a documented bias (:data:`EXPERT_BIASES`);
- :mod:`.writer` writes a dataset in the Gleason 2019 layout (:func:`write_dataset`);
- :mod:`.panel` a noisy panel of three experts (A, B, C) who disagree as much as real pathologists,
  with flagged patterns over whole regions (:func:`write_panel_dataset`; the benchmark's ``cpu-noisy``).
"""

from __future__ import annotations

from .experts import EXPERT_BIASES, EXPERT_NAMES, simulate_experts
from .panel import (
    PANEL_BIASES,
    PANEL_EXPERTS,
    PANEL_NAMES,
    PANEL_VERSION,
    make_panel_core,
    panel_assignment,
    panel_error_kinds,
    simulate_panel,
    write_panel_dataset,
)
from .tissue import (
    FLAG_BORDERLINE_G3,
    FLAG_FOAMY_G3,
    FLAG_POORLY_FORMED_G4,
    FLAG_SMALL_G5,
    FLAG_TEXTURED_G3,
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
    "FLAG_FOAMY_G3",
    "FLAG_POORLY_FORMED_G4",
    "FLAG_SMALL_G5",
    "FLAG_TEXTURED_G3",
    "GENERATOR_VERSION",
    "PANEL_BIASES",
    "PANEL_EXPERTS",
    "PANEL_NAMES",
    "PANEL_VERSION",
    "REFERENCE_SIZE",
    "SMALL_FOCUS_AREA",
    "SyntheticCore",
    "assign_experts",
    "make_core",
    "make_panel_core",
    "panel_assignment",
    "panel_error_kinds",
    "plan_from_assignment",
    "sample_core",
    "simulate_experts",
    "simulate_panel",
    "smooth_noise",
    "to_gleason_values",
    "write_dataset",
    "write_panel_dataset",
]
