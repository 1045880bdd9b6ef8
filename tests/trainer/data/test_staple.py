"""The one STAPLE (trainer.data.staple): SimpleITK's on every pixel, or estimated on a grid."""

import numpy as np

from trainer.data.classes import IGNORE_INDEX
from trainer.data.staple import staple


def test_staple_takes_sequences_and_mappings():
    truth = np.kron(np.arange(4, dtype=np.uint8).reshape(2, 2), np.ones((8, 8), np.uint8))
    odd = (truth + 1) % 4
    as_list = staple([truth, truth, odd], 4, max_pixels=None)
    np.testing.assert_array_equal(as_list, truth)  # the odd one out loses
    np.testing.assert_array_equal(staple({"a": truth, "b": truth, "c": odd}, 4), as_list)
    np.testing.assert_array_equal(staple([odd], 4), odd)  # STAPLE of one rater is that rater


def test_missing_labels_stay_missing_and_stay_fast():
    a = np.zeros((16, 16), np.uint8)
    b = a.copy()
    b[:4] = IGNORE_INDEX
    out = staple([a, a, b], 4, max_pixels=None)
    assert set(np.unique(out)) == {0}
    out = staple([a, np.full_like(a, IGNORE_INDEX), np.full_like(a, IGNORE_INDEX)], 4, max_pixels=None)
    assert set(np.unique(out)) == {IGNORE_INDEX}  # "missing" wins where most experts are missing
