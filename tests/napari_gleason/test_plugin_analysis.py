"""Consensus, disagreement and the agreement table against hand-computed values."""

import math

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import A, B, blocks

from napari_gleason._analysis import (
    agreement_table,
    consensus_steps,
    disagreement_map,
    kappa_per_class,
    sample_step,
    staple,
    vote,
)
from napari_gleason._scores import score_masks
from trainer.data.classes import IGNORE_INDEX

# Hand computation for A vs B (rows A, columns B), see helpers_plugin:
#   cm = [[1,1,0,0],[0,2,0,0],[0,0,1,1],[0,0,0,2]], n = 8
#   Dice: 2·1/(2+1), 2·2/(2+3), 2·1/(2+1), 2·2/(2+3)  -> 2/3, 4/5, 2/3, 4/5; mean 11/15
#   κ overall: p_o = 6/8, p_e = (2·1 + 2·3 + 2·1 + 2·3)/64 = 1/4  -> (3/4 − 1/4)/(3/4) = 2/3
#   κ class 0 (tp 1, fn 1, fp 0, tn 6): p_o = 7/8, p_e = (2·1 + 6·7)/64 = 44/64 -> 12/20 = 3/5
#   κ class 1 (tp 2, fn 0, fp 1, tn 5): p_o = 7/8, p_e = (2·3 + 6·5)/64 = 36/64 -> 20/28 = 5/7
DICE_AB = [2 / 3, 4 / 5, 2 / 3, 4 / 5]
KAPPA_AB = [3 / 5, 5 / 7, 3 / 5, 5 / 7]


@pytest.mark.parametrize("k", [1, 3])
def test_pairwise_dice_and_kappa_match_hand_computation(k):
    rows = agreement_table({"1": blocks(A, k), "2": blocks(B, k)}, 4, step=1)
    assert len(rows) == 1
    r = rows[0]
    assert (r.a, r.b) == ("1", "2")
    np.testing.assert_allclose(r.dice, DICE_AB)
    assert r.dice_mean == pytest.approx(11 / 15)
    np.testing.assert_allclose(r.kappa, KAPPA_AB)
    assert r.kappa_overall == pytest.approx(2 / 3)
    assert r.pixels == 8 * k * k


def test_vote_ties_go_to_the_higher_grade_and_table_includes_vote_rows():
    v = vote({"1": A, "2": B}, 4)
    np.testing.assert_array_equal(v, B)  # every disagreement here is a tie; B holds the higher class
    rows = agreement_table({"1": A, "2": B}, 4, vote_map=v, step=1)
    assert [(r.a, r.b) for r in rows] == [("1", "2"), ("1", "vote"), ("2", "vote")]
    assert rows[2].kappa_overall == 1.0 and np.allclose(rows[2].dice, 1.0)


def test_disagreement_is_the_share_of_present_experts_differing_from_the_vote():
    c = A.copy()
    c[0, 0] = IGNORE_INDEX  # expert 3 did not label this pixel
    masks = {"1": A, "2": B, "3": c}
    v = vote(masks, 4)
    d = disagreement_map(masks, v)
    # column-wise by hand: votes (A,B,C) at (0,1) = 0,1,0 -> vote 0, one of three differs
    expected = np.array([[0.0, 1 / 3, 0, 0], [0, 1 / 3, 0, 0]], np.float32)
    expected[0, 0] = 0.0  # A and B agree (0); C absent -> 0 of 2
    np.testing.assert_allclose(d, expected, atol=1e-6)
    assert d.dtype == np.float32


def test_disagreement_score_nan_for_one_expert_and_exact_on_block_grid():
    assert math.isnan(score_masks({"1": A}, 4)[0])
    grid = {e: blocks(m, 4)[::4, ::4] for e, m in (("1", A), ("2", B))}  # the browser's grid, step 4
    score = score_masks(grid, 4)[0]
    assert score == pytest.approx(2 / 8 * 0.5)  # 2 of 8 pixels, 1 of 2 experts differs


def test_kappa_per_class_undefined_class_is_nan_not_an_error():
    cm = np.array([[5, 0], [0, 0]])
    k = kappa_per_class(cm)
    assert k[0] == 1.0  # perfect agreement on the only class present


def test_staple_agrees_with_unanimous_experts_and_fills_undecided_from_vote(rng):
    truth = blocks(rng.integers(0, 4, (6, 6)).astype(np.uint8), 4)
    out = staple({"1": truth, "2": truth, "3": truth}, 4)
    np.testing.assert_array_equal(out, truth)
    noisy = truth.copy()
    noisy[:4, :4] = (truth[:4, :4] + 1) % 4
    out = staple({"1": truth, "2": truth, "3": noisy}, 4)
    np.testing.assert_array_equal(out, truth)  # the odd one out loses, as with the vote
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(staple({"1": noisy}, 4), noisy)


def test_consensus_steps_yield_fast_results_first():
    keys = [k for k, _ in consensus_steps({"1": A, "2": B}, 4)]
    assert keys == ["vote", "disagreement", "table", "staple", "staple_vs_vote"]


def test_sample_step_keeps_large_cores_under_the_budget():
    assert sample_step((100, 100)) == 1
    step = sample_step((5120, 5120))
    assert (5120 // step) ** 2 <= 4_000_000 < (5120 // (step - 1)) ** 2


def test_grid_staple_is_every_pixel_staple_to_the_eye():
    """STAPLE estimated on a grid and applied through the table of label combinations agrees with
    SimpleITK's STAPLE on every pixel (the reference) on ≥ 99.8 % of a synthetic core's pixels, at
    full resolution; on a grid of step 1 it is that STAPLE exactly."""
    from trainer.synthetic import sample_core

    _, _, experts = sample_core(seed=3, size=128)
    experts = dict(experts)
    experts["4"] = experts["4"].copy()
    experts["4"][:20, :30] = IGNORE_INDEX  # an expert who left part of the core unlabelled
    reference = staple(experts, 4, max_pixels=10**9)  # SimpleITK on every pixel
    on_grid = staple(experts, 4, max_pixels=128 * 128 // 4)  # estimated on every 2nd pixel
    assert on_grid.shape == reference.shape and (on_grid == reference).mean() >= 0.998
    np.testing.assert_array_equal(staple(experts, 4, max_pixels=128 * 128), reference)


def test_vote_in_bands_is_the_vote(monkeypatch):
    """The review widget votes a large core in row bands; per-pixel, so equal to one vote."""
    from napari_gleason import _analysis
    from trainer.data.vote import majority_vote

    rng = np.random.default_rng(5)
    masks = {str(e): rng.integers(0, 4, (45, 20), dtype=np.uint8) for e in range(4)}
    masks["0"][::3] = IGNORE_INDEX
    monkeypatch.setattr(_analysis, "VOTE_BAND", 8)
    np.testing.assert_array_equal(_analysis.vote(masks, 4), majority_vote(masks, 4, tie="highest"))
