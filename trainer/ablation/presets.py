"""Benchmark presets (data, model, schedule) and the variants of Table 2's ablation.

Every variant of a preset runs with the same data, split, seeds, iterations, batch and learning
rate; only the training target (vote, STAPLE or one expert) and the loss modules differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InputError


ANNOTATOR_MODELS: tuple[str, ...] = ("none", "reweight", "confusion")


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: what the network is trained on, and with which modules."""

    labels: str  # "vote" (eq. 1 over the training experts), "staple" or "single"
    loss: str  # "focal" or "gafl" (eq. 5-6)
    annotator: str  # "none", "reweight" (the paper's weighting CNN, eq. 2-4) or "confusion" (Zhang et al.)
    title: str
    #: further LossConfig settings of this variant, e.g. the confusion model's form and objective
    loss_options: tuple[tuple[str, object], ...] = ()

    @property
    def reweight(self) -> bool:
        return self.annotator == "reweight"

    @property
    def confusion(self) -> bool:
        return self.annotator == "confusion"


#: Table 2's rows in its order (baseline, + re-weighting, + GAFL, + both), then the two
#: consensus baselines, then the annotator-confusion model beyond the paper. All use
#: the paper's focal loss unless GAFL is on.
VARIANTS: dict[str, Variant] = {
    "focal": Variant("vote", "focal", "none", "focal on the vote (baseline)"),
    "reweight": Variant("vote", "focal", "reweight", "+ re-weighting"),
    "gafl": Variant("vote", "gafl", "none", "+ GAFL"),
    "gafl+reweight": Variant("vote", "gafl", "reweight", "+ GAFL + re-weighting"),
    "staple": Variant("staple", "focal", "none", "focal on the STAPLE consensus"),
    "single": Variant("single", "focal", "none", "focal on a single expert"),
    # --confusion's defaults: Zhang et al.'s heads on the segmentation network, their objective (NLL + trace)
    "confusion": Variant("vote", "focal", "confusion", "confusion heads (Zhang et al.)"),
    # the same with the noisy-label term weighted by GAFL's attention map (the NLL inside GAF)
    "gafl+confusion": Variant("vote", "gafl", "confusion", "confusion heads, GAF-weighted noisy-label term",
                              (("confusion_nll", False),)),
    # this project's earlier form: a separate ResNet-18 (the preset's stride), λ1·vote + λ2·(noisy + trace)
    "confusion-trunk": Variant("vote", "focal", "confusion", "confusion trunk + vote objective (earlier form)",
                               (("confusion_form", "trunk"), ("confusion_objective", "vote"),
                                ("confusion_nll", False))),
}
assert all(v.annotator in ANNOTATOR_MODELS for v in VARIANTS.values())

#: The variants of the paper's Table 2 and the consensus baselines.
TABLE2_VARIANTS: tuple[str, ...] = ("focal", "reweight", "gafl", "gafl+reweight", "staple", "single")

#: Expert panels a preset can draw its data from (trainer.synthetic): the six default experts in
#: the Gleason 2019 layout, or the noisy panel A, B, C (:mod:`trainer.synthetic.panel`).
PANELS: dict[str, dict] = {
    "six": {"unreliable": "4"},
    "noisy": {"unreliable": "B"},
}


@dataclass(frozen=True)
class Preset:
    """Everything a benchmark run depends on, apart from the device."""

    name: str
    size: int  # cores are drawn at this side (px) and trained at it: no resizing
    train_cores: int  # annotated by ``train_experts`` only (train + validation)
    test_cores: int  # annotated by all six experts (the paper's test set)
    val_fraction: float
    iters: int
    batch_size: int
    lr: float
    lambda_step: int  # n of eq. (7-8) grows every lambda_step iterations
    models: tuple[tuple[str, str | None], ...]  # (model, encoder)
    seeds: int
    weight_stride: int  # weighting / confusion CNN output stride (the authors': 4)
    checkpoint: str  # evaluate "best" (on validation, paper §3.2) or "last"
    val_every: int
    train_experts: tuple[str, ...] = ("3", "4", "5")
    # "auto": the training expert agreeing most with the others' vote (what a user could pick);
    # "oracle": the one closest to the truth (the best single expert, known only here); or a name
    single_expert: str = "auto"
    data_seed: int = 2019
    variants: tuple[str, ...] = tuple(VARIANTS)
    amp: bool = True
    cpu_threads: int | None = None  # torch threads when training on the CPU (None: torch's default)
    panel: str = "six"  # "six" (default experts, test cores by all six) or "noisy" (A, B, C)
    pair_fraction: float = 0.0  # noisy panel: share of cores (train and test) annotated by two experts
    weight_input_scale: float = 1.0  # the weighting / confusion CNN runs at this fraction of the input

    def replace(self, **changes) -> "Preset":
        """A copy with some fields changed (tests shrink sizes and iterations this way)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise InputError(f"unknown preset field(s) {unknown}; valid: {', '.join(sorted(valid))}")
        if "models" in changes:
            changes["models"] = tuple(tuple(m) if not isinstance(m, str) else (m, None) for m in changes["models"])
        for key in ("train_experts", "variants"):
            if key in changes:
                changes[key] = tuple(changes[key])
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise InputError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
        if self.panel not in PANELS:
            raise InputError(f"unknown panel {self.panel!r}; choose from {', '.join(PANELS)}")
        unreliable = PANELS[self.panel]["unreliable"]
        if unreliable not in self.train_experts:
            raise InputError(f"the unreliable expert {unreliable!r} must be among the training experts: the "
                             "benchmark measures how each method copes with that expert's labels")
        from ..synthetic import EXPERT_NAMES, PANEL_NAMES

        names = EXPERT_NAMES if self.panel == "six" else PANEL_NAMES
        if any(e not in names for e in self.train_experts) or len(set(self.train_experts)) < 2:
            raise InputError(f"train_experts must be two or more of {list(names)} for panel {self.panel!r}, "
                             f"got {list(self.train_experts)}")
        if not 0.0 <= self.pair_fraction < 1.0 or (self.pair_fraction and self.panel != "noisy"):
            raise InputError("pair_fraction must be in [0, 1), and only the noisy panel has two-expert cores")
        if self.single_expert not in ("auto", "oracle", *self.train_experts):
            raise InputError(f"single_expert must be auto, oracle or a training expert, not {self.single_expert!r}")
        if not 0.0 < self.weight_input_scale <= 1.0:
            raise InputError(f"weight_input_scale must be in (0, 1], got {self.weight_input_scale}")
        if self.checkpoint not in ("best", "last"):
            raise InputError(f"checkpoint must be 'best' or 'last', not {self.checkpoint!r}")
        if self.checkpoint == "best" and self.val_fraction <= 0:
            raise InputError("checkpoint 'best' needs validation cores (val_fraction > 0)")
        if self.seeds < 1 or self.iters < 1 or self.train_cores < 2 or self.test_cores < 1:
            raise InputError("seeds, iters and test_cores must be ≥ 1 and train_cores ≥ 2")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS: dict[str, Preset] = {
    # Two CPU cores, ≤ 45 min for 6 variants × 3 seeds. Iterations and cores are 1/25 and ~1/5 of
    # the paper's; the λ step keeps the paper's ratio (1000 of 10k iterations → 40 of 400), so λ2
    # switches on after 10 % of the run as in the paper. At 160² the authors' stride-4 weighting
    # CNN costs ~4 s per iteration on one core; stride 8 gives a 20×20 map in 0.13 s.
    # No validation cores: with 400 iterations the poly schedule ends at the minimum rate and
    # picking a checkpoint on a few cores is noise, so the last one is evaluated. One thread: on
    # a shared 2-core machine two OpenMP threads ran 5-10× slower per iteration than one.
    "cpu-small": Preset(
        name="cpu-small", size=160, train_cores=40, test_cores=12, val_fraction=0.0, iters=400,
        batch_size=2, lr=0.01, lambda_step=40, models=(("pspnet", "resnet18"),), seeds=3,
        weight_stride=8, checkpoint="last", val_every=400, cpu_threads=1, variants=TABLE2_VARIANTS,
    ),
    # Issue 10: experts who disagree as much as Gleason 2019's (pairwise κ 0.47-0.60) and in the
    # ways that decide between methods — the noisy panel A (up-grades a whole G3 pattern), B
    # (unreliable, random places), C (misses a whole G3 pattern), B + C sharing a bias (the
    # control), 40 % of cores by two experts only (ties). The patterns cover whole class regions
    # (30-60 px across at 160²: 4-8 cells of the stride-8 map). Test cores are annotated the same
    # way, so the tie pixels of two-expert cores can be scored. Timed on this 2-core machine
    # (one thread, 160², batch 2, s/iteration, quiet / under the load of two other jobs): focal
    # and GAFL 0.16 / 0.21, re-weighting 0.32 / 0.39, confusion 0.39 / 0.50 → 8 variants × 500
    # iterations ≈ 17-22 min per seed plus ~2 min evaluation: 3 seeds in 60-75 min. The best
    # single expert is picked with the truth (oracle): the strongest single-annotator baseline.
    "cpu-noisy": Preset(
        name="cpu-noisy", size=160, train_cores=60, test_cores=20, val_fraction=0.0, iters=500,
        batch_size=2, lr=0.01, lambda_step=50, models=(("pspnet", "resnet18"),), seeds=3,
        weight_stride=8, checkpoint="last", val_every=500, cpu_threads=1,
        train_experts=("A", "B", "C"), single_expert="oracle", panel="noisy", pair_fraction=0.4,
        variants=("focal", "gafl", "reweight", "confusion", "gafl+confusion", "confusion-trunk", "staple"),
    ),
    # Section 3.2 for one GPU: 1024², batch 2, lr 0.01, 10k iterations, λ step 1k, validation and
    # checkpoints every 1k, the best validation checkpoint tested; 195 train/val and 40 test
    # cores as in section 3.1; HRNet18 and HRNet48 as in Table 2's ablation; the authors'
    # weighting CNN (ResNet-18 at output stride 4); the confusion heads on HRNet's decoder features,
    # and the confusion trunk on the weighting CNN's ResNet-18 for comparison.
    "paper": Preset(
        name="paper", size=1024, train_cores=195, test_cores=40, val_fraction=0.2, iters=10_000,
        batch_size=2, lr=0.01, lambda_step=1000, models=(("hrnet18", None), ("hrnet48", None)), seeds=3,
        weight_stride=4, checkpoint="best", val_every=1000,
    ),
}


def get_preset(name: str | Preset) -> Preset:
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["ANNOTATOR_MODELS", "PANELS", "Preset", "PRESETS", "TABLE2_VARIANTS", "Variant", "VARIANTS",
           "get_preset"]
