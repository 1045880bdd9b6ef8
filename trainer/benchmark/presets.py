"""Benchmark presets (data, model, schedule) and the variants of Table 2's ablation.

Every variant of a preset runs with the same data, split, seeds, iterations, batch and learning
rate; only the training target (vote, STAPLE or one expert) and the loss modules differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: what the network is trained on, and with which modules."""

    labels: str  # "vote" (eq. 1 over the training experts), "staple" or "single"
    loss: str  # "focal" or "gafl" (eq. 5-6)
    reweight: bool  # label re-weighting (eq. 2-4)
    title: str


#: Table 2's rows in its order (baseline, + re-weighting, + GAFL, + both), then the two
#: consensus baselines. All use the paper's focal loss unless GAFL is on.
VARIANTS: dict[str, Variant] = {
    "focal": Variant("vote", "focal", False, "focal on the vote (baseline)"),
    "reweight": Variant("vote", "focal", True, "+ re-weighting"),
    "gafl": Variant("vote", "gafl", False, "+ GAFL"),
    "gafl+reweight": Variant("vote", "gafl", True, "+ GAFL + re-weighting"),
    "staple": Variant("staple", "focal", False, "focal on the STAPLE consensus"),
    "single": Variant("single", "focal", False, "focal on a single expert"),
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
    weight_stride: int  # weighting CNN output stride (paper: 32)
    checkpoint: str  # evaluate "best" (on validation, paper §3.2) or "last"
    val_every: int
    train_experts: tuple[str, ...] = ("3", "4", "5")
    single_expert: str = "auto"  # "auto": the training expert agreeing most with the others' vote
    data_seed: int = 2019
    variants: tuple[str, ...] = tuple(VARIANTS)
    amp: bool = True
    cpu_threads: int | None = None  # torch threads when training on the CPU (None: torch's default)

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
        if "4" not in self.train_experts:
            raise InputError("the unreliable expert '4' must be among the training experts (issue 5)")
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
    # switches on after 10 % of the run as in the paper. At 160² the paper's stride-32 weight map
    # would have 5×5 cells; stride 8 gives 20×20, the closest to the paper's 32×32 at 1024².
    # No validation cores: with 400 iterations the poly schedule ends at the minimum rate and
    # picking a checkpoint on a few cores is noise, so the last one is evaluated. One thread: on
    # a shared 2-core machine two OpenMP threads ran 5-10× slower per iteration than one.
    "cpu-small": Preset(
        name="cpu-small", size=160, train_cores=40, test_cores=12, val_fraction=0.0, iters=400,
        batch_size=2, lr=0.01, lambda_step=40, models=(("pspnet", "resnet18"),), seeds=3,
        weight_stride=8, checkpoint="last", val_every=400, cpu_threads=1,
    ),
    # Section 3.2 for one GPU: 1024², batch 2, lr 0.01, 10k iterations, λ step 1k, validation and
    # checkpoints every 1k, the best validation checkpoint tested; 195 train/val and 40 test
    # cores as in section 3.1; HRNet18 and HRNet48 as in Table 2's ablation.
    "paper": Preset(
        name="paper", size=1024, train_cores=195, test_cores=40, val_fraction=0.2, iters=10_000,
        batch_size=2, lr=0.01, lambda_step=1000, models=(("hrnet18", None), ("hrnet48", None)), seeds=3,
        weight_stride=32, checkpoint="best", val_every=1000,
    ),
}


def get_preset(name: str | Preset) -> Preset:
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


__all__ = ["Preset", "PRESETS", "Variant", "VARIANTS", "get_preset"]
