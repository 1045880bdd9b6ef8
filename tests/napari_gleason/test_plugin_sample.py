"""Sample data: the trainer's synthetic core with six experts (and its truth)."""

import numpy as np

from napari_gleason._layers import LabelCoding
from napari_gleason._sample_data import synthetic_core
from trainer.data.classes import GLEASON_SCHEME


def test_sample_core_has_six_experts_and_optional_truth():
    core = synthetic_core(size=128)
    assert list(core.masks) == ["1", "2", "3", "4", "5", "6"]
    assert core.image.shape == (128, 128, 3) and core.image.dtype == np.uint8
    assert "truth" not in core.extras
    truth = synthetic_core(size=128, with_truth=True).extras["truth"]
    assert truth.shape == (128, 128) and truth.max() < 4
    assert LabelCoding.from_scheme(GLEASON_SCHEME).to_labels(truth).max() <= 5


def test_sample_is_deterministic():
    a, b = synthetic_core(seed=1, size=96), synthetic_core(seed=1, size=96)
    np.testing.assert_array_equal(a.image, b.image)
    a.masks["1"][:] = 0  # callers get copies: the cached sample stays intact
    assert synthetic_core(seed=1, size=96).masks["1"].any()
