"""The per-iteration objective is built from losses.py's functions: checked pixel by pixel
against the formulas written out by hand (eq. 5-6, Lin et al.'s focal loss, the authors' mean)."""

import pytest
import torch

from trainer.config import LossConfig
from trainer.data.classes import IGNORE_INDEX
from trainer.losses import focal_loss_multi, focal_of_log_likelihood, gaf_loss, roughness_map
from trainer.objective import training_loss

ALPHA = [0.5, 1.0, 2.0, 4.0]


def _inputs(seed=0, b=2, c=4, s=8):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, s, s, generator=g) * 3
    image = torch.randn(b, 3, s, s, generator=g)
    vote = torch.randint(0, c, (b, s, s), generator=g)
    vote[0, :2] = IGNORE_INDEX
    return logits, image, vote


def _by_hand(logits, target, alpha, gamma, heat):
    """-α_t (1-p_t)^γ log p_t · heat, one pixel at a time, 0 where ignored."""
    b, c, h, w = logits.shape
    out = torch.zeros(b, h, w, dtype=torch.float64)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                t = int(target[i, y, x])
                if t == IGNORE_INDEX:
                    continue
                p = torch.softmax(logits[i, :, y, x].double(), 0)[t]
                out[i, y, x] = -alpha[t] * (1 - p) ** gamma * torch.log(p) * heat[i, y, x]
    return out


def test_focal_of_log_likelihood_is_the_focal_formula():
    logits, image, vote = _inputs()
    heat = roughness_map(image)
    logp = torch.log_softmax(logits, 1)
    t = torch.where(vote == IGNORE_INDEX, 0, vote)
    got = focal_of_log_likelihood(torch.gather(logp, 1, t[:, None]), vote[:, None], 4, ALPHA, 0.5,
                                  heatmap=heat)[:, 0]
    torch.testing.assert_close(got.double(), _by_hand(logits, vote, ALPHA, 0.5, heat), rtol=1e-5, atol=1e-6)
    # the network's own likelihood: the same as focal_loss_multi / gaf_loss
    torch.testing.assert_close(got, gaf_loss(logits, vote, alpha=ALPHA, gamma=0.5, heatmap=heat))
    torch.testing.assert_close(gaf_loss(logits, vote, alpha=ALPHA, gamma=0.5, heatmap=heat),
                               heat * focal_loss_multi(logits, vote[:, None], ALPHA, 0.5)[:, 0])


@pytest.mark.parametrize("loss", ["gafl", "focal"])
def test_vote_only_objective_by_hand(loss):
    logits, image, vote = _inputs(1)
    cfg = LossConfig(loss=loss, reweight=False, gamma=0.5, alpha=ALPHA, reduction="authors")
    terms, lam1, lam2 = training_loss(cfg, logits, image, vote, iteration=0)
    heat = roughness_map(image) if loss == "gafl" else torch.ones(vote.shape)
    per_pixel = _by_hand(logits, vote, ALPHA, 0.5, heat) / 4  # the authors' mean over classes × pixels
    expected = per_pixel.sum() / (vote != IGNORE_INDEX).sum()
    assert (lam1, lam2) == (1.0, 0.0)
    assert float(terms["total"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["vote"]) == float(terms["total"])
