"""The ablation study with known truth: Table 2's variants on synthetic cores, and on real experts (cpu-real).

``python -m trainer ablation --preset {cpu-small,cpu-noisy,cpu-real,paper} --out DIR`` — see :mod:`.run`
for what is trained and scored, :mod:`.presets` for the settings (``cpu-noisy``: the noisy panel of
:mod:`trainer.synthetic.panel`), :mod:`.auroc` for the reliability-map check and :mod:`.matrices`
for the estimated against true confusion matrices.
Heavy modules (torch, the engine) load only when a benchmark runs.
"""

from .presets import PRESETS, VARIANTS, Preset, Variant, get_preset

__all__ = ["PRESETS", "VARIANTS", "Preset", "Variant", "get_preset", "run_benchmark"]


def run_benchmark(*args, **kwargs):
    """See :func:`trainer.ablation.run.run_benchmark`."""
    from .run import run_benchmark as run

    return run(*args, **kwargs)
