"""Majority vote, eq. (1): tie rules, ignored pixels, numpy vs torch."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from trainer.data.classes import IGNORE_INDEX
from trainer.data.vote import majority_vote, majority_vote_torch

X = IGNORE_INDEX

# Five pixels, three experts:
#  p0: 2,2,1 -> 2 (clear majority)   p1: 1,3,X -> tie 1/3   p2: X,X,X -> nobody voted
#  p3: 0,X,X -> 0 (one vote)         p4: 3,0,1 -> three-way tie 0/1/3
MASKS = np.array(
    [
        [[2, 1, X, 0, 3]],
        [[2, 3, X, X, 0]],
        [[1, X, X, X, 1]],
    ],
    dtype=np.uint8,
)
EXPECTED = {
    "highest": [[2, 3, X, 0, 3]],
    "lowest": [[2, 1, X, 0, 0]],
    "ignore": [[2, X, X, 0, X]],
}


@pytest.mark.parametrize("tie", ["highest", "lowest", "ignore"])
def test_tie_rules_on_hand_made_masks(tie):
    out = majority_vote(MASKS, num_classes=4, tie=tie)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, EXPECTED[tie])


@pytest.mark.parametrize("tie", ["highest", "lowest", "ignore"])
def test_torch_tie_rules_on_hand_made_masks(tie):
    out = majority_vote_torch(torch.from_numpy(MASKS.astype(np.int64)), num_classes=4, tie=tie)
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), EXPECTED[tie])


def test_default_tie_is_highest_and_list_input_works():
    out = majority_vote(list(MASKS), num_classes=4)
    np.testing.assert_array_equal(out, EXPECTED["highest"])


def test_ignore_pixels_do_not_vote():
    # Two experts say 1; three are absent (all IGNORE): 1 wins although absent experts outnumber it.
    masks = np.full((5, 2, 2), X, np.uint8)
    masks[0] = 1
    masks[1] = 1
    np.testing.assert_array_equal(majority_vote(masks, 4), np.ones((2, 2)))
    empty = np.zeros((0, 2, 2), np.uint8)
    np.testing.assert_array_equal(majority_vote(empty, 4), np.full((2, 2), X))


def _reference_vote(stack: np.ndarray, num_classes: int, tie: str) -> np.ndarray:
    """Pixel-by-pixel vote with collections.Counter: an independent, slow reference."""
    out = np.zeros(stack.shape[1:], np.int64)
    for idx in np.ndindex(*stack.shape[1:]):
        votes = Counter(int(v) for v in stack[(slice(None), *idx)] if v < num_classes)
        if not votes:
            out[idx] = X
            continue
        best = max(votes.values())
        tied = sorted(c for c, n in votes.items() if n == best)
        out[idx] = {"highest": tied[-1], "lowest": tied[0], "ignore": tied[0] if len(tied) == 1 else X}[tie]
    return out


@pytest.mark.parametrize("tie", ["highest", "lowest", "ignore"])
def test_numpy_torch_and_reference_agree_on_random_masks(tie):
    rng = np.random.default_rng(3)
    stack = rng.choice(np.array([0, 1, 2, 3, X], np.uint8), size=(2, 4, 12, 10))  # B×E×H×W
    ref = np.stack([_reference_vote(s, 4, tie) for s in stack])
    got_np = np.stack([majority_vote(s, 4, tie) for s in stack])
    got_torch = majority_vote_torch(torch.from_numpy(stack.astype(np.int64)), 4, tie).numpy()
    np.testing.assert_array_equal(got_np, ref)
    np.testing.assert_array_equal(got_torch, ref)


def test_bad_arguments():
    with pytest.raises(ValueError, match="tie"):
        majority_vote(MASKS, 4, tie="random")
    with pytest.raises(ValueError, match="7"):
        majority_vote(np.full((1, 2, 2), 7, np.uint8), 4)
    with pytest.raises(ValueError):
        majority_vote_torch(torch.zeros(2, 2, dtype=torch.int64), 4)
