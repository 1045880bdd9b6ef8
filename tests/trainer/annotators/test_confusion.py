"""The annotator confusion model (Zhang, Tanno et al. 2020) against hand computations, and its
recovery of known confusion matrices on a tiny synthetic case."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from trainer.annotators import (
    ConfusionCNN,
    confusion_summary,
    error_map_prior,
    noisy_label_log_likelihood,
    trace_penalty,
    wrong_if_labelled,
)
from trainer.config import LossConfig, RunConfig
from trainer.errors import InputError
from trainer.objective import training_loss

C = 3


def _random_confusion(rng, n, c, h, w):
    """N×C×C×H×W column-stochastic matrices (each column j a distribution over labels i)."""
    a = rng.random((n, c, c, h, w)) + np.eye(c)[None, :, :, None, None] * 2
    return a / a.sum(axis=1, keepdims=True)


def test_noisy_label_likelihood_by_hand():
    rng = np.random.default_rng(0)
    b, n, h, w = 2, 2, 2, 3
    p = rng.random((b, C, h, w))
    p /= p.sum(1, keepdims=True)
    a = np.stack([_random_confusion(rng, n, C, h, w) for _ in range(b)])  # B×N×C×C×H×W
    labels = rng.integers(0, C, (b, n, h, w))
    labels[0, 1, 0, 0] = 255
    out = noisy_label_log_likelihood(torch.log(torch.tensor(p)), torch.log(torch.tensor(a)),
                                     torch.tensor(labels), 255)
    for bi, ni, y, x in itertools.product(range(b), range(n), range(h), range(w)):
        lab = labels[bi, ni, y, x]
        if lab == 255:
            assert out[bi, ni, y, x].item() == 0.0
            continue
        # p̃(label) = Σ_j A[label, j] p_j, a plain loop
        pt = sum(a[bi, ni, lab, j, y, x] * p[bi, j, y, x] for j in range(C))
        assert out[bi, ni, y, x].item() == pytest.approx(math.log(pt), rel=1e-6)


def test_identity_confusion_gives_the_plain_likelihood():
    logits = torch.randn(1, C, 4, 4)
    log_p = torch.log_softmax(logits, 1)
    eye = torch.eye(C)[None, None, :, :, None, None].expand(1, 1, C, C, 4, 4)
    labels = torch.randint(0, C, (1, 1, 4, 4))
    ll = noisy_label_log_likelihood(log_p, torch.log(eye.clamp_min(1e-30)), labels, 255)
    assert torch.allclose(ll[0, 0], torch.gather(log_p, 1, labels)[0, 0], atol=1e-5)


def test_error_maps_and_summary_by_hand():
    rng = np.random.default_rng(1)
    n, h, w = 2, 3, 2
    p = rng.random((C, h, w))
    p /= p.sum(0, keepdims=True)
    a = _random_confusion(rng, n, C, h, w)
    pt, at = torch.tensor(p), torch.tensor(a)
    prior = error_map_prior(pt, at)
    for k in range(n):
        post = wrong_if_labelled(pt, at[k])
        for y, x in itertools.product(range(h), range(w)):
            # before the label: 1 − Σ_j A[j, j] p_j
            assert prior[k, y, x].item() == pytest.approx(1 - sum(a[k, j, j, y, x] * p[j, y, x] for j in range(C)))
            for lab in range(C):  # Bayes: p(truth = l | wrote l) = A[l, l] p_l / Σ_j A[l, j] p_j
                right = a[k, lab, lab, y, x] * p[lab, y, x] / sum(a[k, lab, j, y, x] * p[j, y, x] for j in range(C))
                assert post[lab, y, x].item() == pytest.approx(1 - right, rel=1e-6)
    mask = torch.tensor([[True, False], [True, True], [False, True]])
    m = confusion_summary(pt, at, mask).numpy()
    for k, j, i in itertools.product(range(n), range(C), range(C)):
        num = sum(p[j, y, x] * a[k, i, j, y, x] for y, x in itertools.product(range(h), range(w)) if mask[y, x])
        den = sum(p[j, y, x] for y, x in itertools.product(range(h), range(w)) if mask[y, x])
        assert m[k, j, i] == pytest.approx(num / den)
    np.testing.assert_allclose(m.sum(-1), 1.0)  # rows: true class → distribution over labels
    # a class without probability mass has a NaN row, not a division by zero
    p0 = pt.clone()
    p0[2] = 0
    assert np.isnan(confusion_summary(p0 / p0.sum(0), at)[:, 2]).all()


def test_trace_penalty_by_hand():
    rng = np.random.default_rng(2)
    a = np.stack([_random_confusion(rng, 3, C, 2, 2) for _ in range(2)])  # B=2, N=3
    present = torch.tensor([[True, False, True], [False, False, True]])
    got = trace_penalty(torch.log(torch.tensor(a)), present).item()
    traces = [np.trace(a[b, n], axis1=0, axis2=1).mean() / C for b in range(2) for n in range(3) if present[b, n]]
    assert got == pytest.approx(float(np.mean(traces)))


def test_confusion_cnn_starts_near_identity_and_rebuilds():
    torch.manual_seed(0)
    net = ConfusionCNN(2, 4, stride=8, diag_init=0.9)
    x = torch.randn(2, 3, 32, 32)
    a = net(x, size=(20, 24)).exp()
    assert a.shape == (2, 2, 4, 4, 20, 24)
    assert torch.allclose(a.sum(2), torch.ones(2, 2, 4, 20, 24), atol=1e-5)  # columns are distributions
    assert torch.diagonal(a, dim1=2, dim2=3).mean().item() == pytest.approx(0.9, abs=0.02)
    clone = ConfusionCNN(**net.config)
    clone.load_state_dict(net.state_dict())
    net.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(net(x), clone(x))
    assert ConfusionCNN(1, 4).backbone.forward_features(x).shape == (2, 512, 8, 8)  # the authors' stride 4


def test_objective_reduction_is_the_authors_mean_over_classes():
    """Their loss: a B×C×H×W one-hot map of focal·heat averaged whole (loss weight 1, no avg_factor)."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 6, 5, generator=g)
    image = torch.randn(2, 3, 6, 5, generator=g)
    vote = torch.randint(0, 4, (2, 6, 5), generator=g)
    cfg = LossConfig(loss="gafl", reweight=False, gamma=0.1)
    terms, l1, l2 = training_loss(cfg, logits, image, vote, 0)
    # their formula, written out independently: p = softmax, one-hot, -(1-p)^γ log p, × heat, .mean()
    from scipy.ndimage import correlate
    from scipy.stats import norm

    k1 = np.diff(norm.cdf(np.linspace(-3, 3, 6)))
    k2 = np.outer(k1, k1) / np.outer(k1, k1).sum()
    mean_img = image.mean(1).numpy().astype(np.float64)
    heat = np.stack([50 * np.abs(m - correlate(m, k2, mode="constant")) + 1 for m in mean_img])
    p = torch.softmax(logits.double(), 1).numpy()
    onehot = np.eye(4)[vote.numpy()].transpose(0, 3, 1, 2)
    theirs = (onehot * -((1 - p) ** 0.1) * np.log(p) * heat[:, None]).mean()
    assert terms["total"].item() == pytest.approx(theirs, rel=1e-5) and (l1, l2) == (1.0, 0.0)
    cfg.reduction = "pixel"
    assert training_loss(cfg, logits, image, vote, 0)[0]["total"].item() == pytest.approx(4 * theirs, rel=1e-5)


def test_objective_confusion_terms_by_hand():
    g = torch.Generator().manual_seed(4)
    b, n, c, h, w = 2, 3, 4, 3, 3
    logits = torch.randn(b, c, h, w, generator=g)
    image = torch.randn(b, 3, h, w, generator=g)
    experts = torch.randint(0, c, (b, n, h, w), generator=g)
    experts[0, 2] = 255  # expert 3 absent from image 0
    vote = experts[:, 0]
    present = torch.tensor([[True, True, False], [True, True, True]])
    a = torch.rand(b, n, c, c, h, w, generator=g) + 0.2
    log_a = torch.log(a / a.sum(2, keepdim=True))
    cfg = LossConfig(loss="focal", reweight=False, confusion=True, gamma=0.0, confusion_trace=0.3, lambda_step=1,
                     confusion_objective="vote")  # the earlier objective, kept as an option
    terms, l1, l2 = training_loss(cfg, logits, image, vote, 1, experts=experts, present=present,
                                  log_confusion=log_a, expert_names=("1", "2", "3"))
    ll = noisy_label_log_likelihood(torch.log_softmax(logits, 1), log_a, experts, 255)
    # eq. (3) with unit weights: per pixel the mean over the experts present, then over pixels; / C
    per_pixel = torch.stack([(-ll[i, present[i]]).mean(0) for i in range(b)])
    assert terms["noisy"].item() == pytest.approx(per_pixel.mean().item() / c, rel=1e-5)
    vote_ce = torch.nn.functional.cross_entropy(logits, vote, reduction="mean").item() / c
    assert terms["vote"].item() == pytest.approx(vote_ce, rel=1e-5)
    tr = trace_penalty(log_a, present).item()
    assert terms["total"].item() == pytest.approx(l1 * vote_ce + l2 * (terms["noisy"].item() + 0.3 * tr), rel=1e-5)
    assert set(terms) >= {"error/1", "error/2", "error/3", "trace"}


def test_confusion_excludes_reweighting():
    cfg = RunConfig.from_dict({"loss": {"confusion": True}})
    assert cfg.loss.confusion and not cfg.loss.reweight  # --confusion alone turns the default re-weighting off
    with pytest.raises(InputError, match="not both"):
        RunConfig.from_dict({"loss": {"confusion": True, "reweight": True}})


def test_recovers_known_confusion_matrices():
    """Three experts label a tiny image set whose truth the image shows plainly: expert 1 writes
    class 1 as class 2 on 40 % of class-1 pixels (at random places), experts 2 and 3 are right.
    Trained through the objective, the per-core confusion summary recovers each matrix."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    c, size, n_img = 3, 24, 8
    truth = np.zeros((n_img, size, size), np.int64)
    for k in range(n_img):  # three vertical bands in a random order
        order = rng.permutation(c)
        for band in range(c):
            truth[k, :, band * 8:(band + 1) * 8] = order[band]
    colours = torch.tensor([[-1.5, 0.0, 1.5], [1.5, -1.5, 0.0], [0.0, 1.5, -1.5]])
    images = colours[torch.from_numpy(truth)].permute(0, 3, 1, 2).contiguous()
    true_a = [np.eye(c), np.eye(c), np.eye(c)]
    true_a[0] = np.array([[1, 0, 0], [0, 0.6, 0], [0, 0.4, 1.0]])  # A[i, j]: label i | truth j
    labels = np.empty((n_img, 3, size, size), np.int64)
    for e in range(3):
        cum = np.cumsum(true_a[e], axis=0)[:, truth]  # C×n×H×W, column of the truth
        u = rng.random((n_img, size, size))
        labels[:, e] = (u[None] > cum).sum(0)
    labels_t = torch.from_numpy(labels)
    seg = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, c, 1))
    conf = ConfusionCNN(3, c, stride=8, diag_init=0.8)
    params = list(seg.parameters()) + list(conf.parameters())
    opt = torch.optim.Adam(params, lr=2e-2)
    cfg = LossConfig(loss="focal", reweight=False, confusion=True, gamma=0.0, confusion_trace=0.01, lambda_step=20,
                     confusion_objective="vote")
    present = torch.ones(4, 3, dtype=torch.bool)
    vote = torch.from_numpy(truth)  # the vote of (1 wrong, 2 right) is the truth here
    for it in range(200):
        idx = torch.from_numpy(rng.choice(n_img, 4, replace=False))
        logits = seg(images[idx])
        terms, _, _ = training_loss(cfg, logits, images[idx], vote[idx], it, experts=labels_t[idx],
                                    present=present, log_confusion=conf(images[idx]))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    conf.eval()
    with torch.no_grad():
        p = torch.softmax(seg(images), 1)
        a = conf(images).exp()
        est = np.nanmean([confusion_summary(p[k], a[k]).numpy() for k in range(n_img)], axis=0)  # N×C×C
    for e in range(3):
        # summary rows are truth j → label i, i.e. the transpose of A[i, j]
        assert np.abs(est[e] - true_a[e].T).max() < 0.1, (e, est[e].round(2))
