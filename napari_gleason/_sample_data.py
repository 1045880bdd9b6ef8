"""Sample data: synthetic cores from the trainer's generator (works from an installed wheel).

Each sample is core 0 of ``python -m trainer synth --seed SEED``: an H&E-like core and six
simulated experts with documented biases (:data:`trainer.synthetic.EXPERT_BIASES`). The second
sample adds the known truth as a ``truth`` layer, so a reviewer can see who was right.
"""

from __future__ import annotations

from functools import lru_cache

from trainer.data.classes import GLEASON_SCHEME
from trainer.data.core import Core
from trainer.synthetic import sample_core

from ._layers import core_layer_tuples

SEED = 3
SIZE = 1024


@lru_cache(maxsize=2)
def _sample(seed: int, size: int):
    # Drawing a 1024² core takes a few seconds; File ▸ Open Sample twice should not.
    return sample_core(seed=seed, size=size)


def synthetic_core(seed: int = SEED, size: int = SIZE, with_truth: bool = False) -> Core:
    """The sample core as :class:`Core` (also used by the demo and the tests)."""
    image, truth, experts = _sample(seed, size)
    extras = {"truth": truth.copy()} if with_truth else {}
    origin = {"source": f"synthetic seed={seed} size={size}", "layout": "gleason2019"}
    return Core(f"synthetic_core_s{seed}", image, {e: m.copy() for e, m in experts.items()},
                    GLEASON_SCHEME, extras=extras, origin=origin)


def make_sample_experts():
    """npe2 sample: a synthetic core with six experts."""
    return core_layer_tuples(synthetic_core())


def make_sample_truth():
    """npe2 sample: the same core with its known truth as an extra layer."""
    return core_layer_tuples(synthetic_core(with_truth=True))
