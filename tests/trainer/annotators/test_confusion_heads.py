"""Zhang et al.'s confusion heads on the segmentation network's decoder features, their objective,
and the point of a pixel-wise model: errors that follow the tissue's appearance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.annotators import ConfusionHeads, confusion_from_config, confusion_summary, error_map_prior
from trainer.annotators.confusion import noisy_label_log_likelihood
from trainer.ablation.auroc import auroc
from trainer.config import LossConfig, RunConfig, lambda_step_of
from trainer.errors import InputError
from trainer.models import create_model
from trainer.objective import training_loss, vote_warmup_weight


@pytest.mark.parametrize("name,encoder", [("hrnet18", None), ("hrnet48", None), ("unet", "resnet18"),
                                          ("deeplabv3plus", "resnet18"), ("pspnet", "resnet18")])
def test_features_path_is_the_plain_forward_and_feeds_the_heads(name, encoder):
    """Every Table-2 model hands out its last decoder features from the same forward pass: the
    logits equal the plain forward's, and the heads' gradient reaches the segmentation network."""
    torch.manual_seed(0)
    model = create_model(name, 4, encoder=encoder).eval()
    x = torch.randn(2, 3, 64, 64)  # batch 2: DeepLabV3+'s image pooling normalises over the batch
    with torch.no_grad():
        plain = model(x)
        logits, feats = model(x, features=True)
    assert torch.equal(plain, logits)
    assert feats.shape[1] == model.feature_channels and feats.shape[-1] <= 64
    heads = ConfusionHeads(3, 4, model.feature_channels)
    model.train()
    logits, feats = model(x, features=True)
    log_a = heads(feats, size=model.padded_size(64, 64), crop=(64, 64))
    assert log_a.shape == (2, 3, 4, 4, 64, 64)
    assert torch.allclose(log_a.exp().sum(2), torch.ones(2, 3, 4, 64, 64), atol=1e-5)  # columns sum to 1
    log_a[:, 0, 1, 0].sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_heads_crop_follows_padding():
    """An input side that is not a multiple of 32 is padded: the matrices cover the input's part."""
    model = create_model("pspnet", 4, encoder="resnet18").eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        logits, feats = model(x, features=True)
        heads = ConfusionHeads(2, 4, model.feature_channels)
        log_a = heads(feats, size=model.padded_size(40, 56), crop=(40, 56))
    assert logits.shape[-2:] == (40, 56) and log_a.shape[-2:] == (40, 56)
    assert model.padded_size(40, 56) == (64, 64)


def test_heads_start_near_identity_and_rebuild_from_config():
    heads = ConfusionHeads(2, 4, 16, diag_init=0.9)
    a = heads(torch.randn(1, 16, 5, 5)).exp()
    assert torch.allclose(torch.diagonal(a, dim1=2, dim2=3), torch.full((1, 2, 5, 5, 4), 0.9), atol=0.02)
    clone = confusion_from_config(heads.config)
    assert isinstance(clone, ConfusionHeads) and clone.config == heads.config
    from trainer.checkpoint import confusion_config_of  # the one table of older-checkpoint rules

    old = confusion_from_config(confusion_config_of({"confusion_config": {"num_experts": 2, "num_classes": 4, "stride": 8}}))
    assert old.config["form"] == "trunk"


def _tensors(seed=4):
    g = torch.Generator().manual_seed(seed)
    b, n, c, h, w = 2, 3, 4, 3, 3
    logits = torch.randn(b, c, h, w, generator=g)
    image = torch.randn(b, 3, h, w, generator=g)
    experts = torch.randint(0, c, (b, n, h, w), generator=g)
    experts[0, 2] = 255  # expert 3 absent from image 0
    experts[1, 0, 0, 0] = 255  # one unlabelled pixel
    present = torch.tensor([[True, True, False], [True, True, True]])
    a = torch.rand(b, n, c, c, h, w, generator=g) + 0.2
    return logits, image, experts, present, torch.log(a / a.sum(2, keepdim=True))


def test_zhang_objective_by_hand():
    """L = mean over the experts present of each one's mean −log Σ_j A[l, j] p_j over its labelled
    pixels + α · mean over them of mean_x tr(A_n(x)), no vote term (Zhang et al., Loss.py)."""
    logits, image, experts, present, log_a = _tensors()
    cfg = LossConfig(loss="focal", reweight=False, confusion=True, vote_warmup=0.0)
    terms, l1, l2 = training_loss(cfg, logits, image, experts[:, 0], 5, experts=experts, present=present,
                                  log_confusion=log_a, expert_names=("1", "2", "3"), total_iters=100)
    p = torch.softmax(logits.double(), 1).numpy()
    a = log_a.double().exp().numpy()
    e = experts.numpy()
    per_expert, traces = [], []
    for n in range(3):
        vals = [-np.log(sum(a[b, n, e[b, n, y, x], j, y, x] * p[b, j, y, x] for j in range(4)))
                for b in range(2) if present[b, n] for y in range(3) for x in range(3) if e[b, n, y, x] != 255]
        per_expert.append(np.mean(vals))
        traces.append(np.mean([np.trace(a[b, n, :, :, y, x]) for b in range(2) if present[b, n]
                               for y in range(3) for x in range(3)]))
    assert terms["noisy"].item() == pytest.approx(np.mean(per_expert), rel=1e-5)
    assert terms["trace"].item() == pytest.approx(np.mean(traces), rel=1e-5)
    assert terms["total"].item() == pytest.approx(np.mean(per_expert) + 0.1 * np.mean(traces), rel=1e-5)
    assert (l1, l2) == (0.0, 1.0)
    # the same noisy-label likelihood the earlier objective uses
    ll = noisy_label_log_likelihood(torch.log_softmax(logits, 1), log_a, experts, 255)
    assert -ll[1, 2][experts[1, 2] != 255].mean().item() == pytest.approx(per_expert[2], rel=1e-5)


def test_vote_warmup_goes_to_zero():
    logits, image, experts, present, log_a = _tensors()
    cfg = LossConfig(loss="focal", reweight=False, confusion=True, vote_warmup=0.2)
    assert [vote_warmup_weight(cfg, i, 100) for i in (0, 10, 20, 50)] == [1.0, 0.5, 0.0, 0.0]
    t0, w0, _ = training_loss(cfg, logits, image, experts[:, 0], 10, experts=experts, present=present,
                              log_confusion=log_a, total_iters=100)
    assert w0 == 0.5
    assert t0["total"].item() == pytest.approx((t0["noisy"] + 0.1 * t0["trace"] + 0.5 * t0["vote"]).item(), rel=1e-6)
    # on by default (Zhang et al. train without it): from a random init the pure objective collapsed
    assert LossConfig(confusion=True).vote_warmup == 0.2


def test_lambda_step_scales_with_the_run():
    """n of eq. (7-8) grows every 10 % of the run unless --lambda-step fixes it: a 300-iteration run
    switches its annotator term on at iteration 30, the paper's 10k at 1k."""
    assert lambda_step_of(LossConfig(), 300) == 30 and lambda_step_of(LossConfig(), 10_000) == 1000
    assert lambda_step_of(LossConfig(lambda_step=7), 300) == 7
    logits, image, experts, present, _ = _tensors()
    weights = torch.full(experts.shape, 1 / 3)
    cfg = LossConfig(loss="focal", reweight=True)
    lam = [training_loss(cfg, logits, image, experts[:, 0], it, experts=experts, present=present, weights=weights,
                         total_iters=300)[2] for it in (29, 30)]
    assert lam[0] == 0.0 and lam[1] > 0.4
    with pytest.raises(InputError, match="lambda_step"):
        RunConfig.from_dict({"loss": {"lambda_step": 0}})


class _TinySegmenter(torch.nn.Module):
    """Two convolutions → features; a 1×1 classifier. ``forward(x, features=True)`` as Segmenter."""

    def __init__(self, c):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU())
        self.classifier = torch.nn.Conv2d(16, c, 1)

    def forward(self, x, features=False):
        f = self.body(x)
        return (self.classifier(f), f) if features else self.classifier(f)


def _appearance_biased_panel(rng, n_img=10, size=24):
    """Truth: four vertical bands of classes 0, 1, 1, 2 in a random order; in every image one of the
    two class-1 bands is 'textured' (a brighter third channel). Expert 1 calls the textured class-1
    band class 2; experts 2 and 3 are right. The bias follows the appearance, not the class or the
    image: a matrix per image would not do either."""
    truth = np.zeros((n_img, size, size), np.int64)
    textured = np.zeros((n_img, size, size), bool)
    colours = np.array([[-1.5, 0.0, -1.0], [1.5, -1.5, -1.0], [0.0, 1.5, -1.0]], np.float32)
    images = np.zeros((n_img, 3, size, size), np.float32)
    width = size // 4
    for k in range(n_img):
        order = rng.permutation([0, 1, 1, 2])
        first_one = True
        for band in range(4):
            sl = np.s_[:, band * width:(band + 1) * width]
            truth[k][sl] = order[band]
            images[k][(slice(None),) + sl] = colours[order[band]][:, None, None]
            if order[band] == 1:
                textured[k][sl] = first_one
                first_one = False
    images[:, 2][textured] += 2.0
    images += rng.normal(0, 0.3, images.shape).astype(np.float32)
    labels = np.repeat(truth[:, None], 3, axis=1)
    labels[:, 0][textured] = 2
    return torch.from_numpy(images), truth, textured, torch.from_numpy(labels)


def test_pixelwise_model_locates_appearance_dependent_errors_a_global_one_cannot():
    """Trained with the heads and Zhang et al.'s objective, expert 1's image-only error map separates
    its wrong (textured) class-1 pixels from its right (plain) class-1 pixels; the best
    image-independent (global) matrix of the same model cannot — it sees the class, not the look.
    An image-independent head (the mutation) fails the first assertion."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, truth, textured, labels = _appearance_biased_panel(rng)
    seg, heads = _TinySegmenter(3), ConfusionHeads(3, 3, 16, width=16, diag_init=0.8)
    opt = torch.optim.Adam(list(seg.parameters()) + list(heads.parameters()), lr=1e-2)
    cfg = LossConfig(loss="focal", reweight=False, confusion=True)
    present = torch.ones(4, 3, dtype=torch.bool)
    for it in range(250):
        idx = torch.from_numpy(rng.choice(len(images), 4, replace=False))
        logits, feats = seg(images[idx], features=True)
        terms, _, _ = training_loss(cfg, logits, images[idx], labels[idx, 1], it, experts=labels[idx],
                                    present=present, log_confusion=heads(feats), total_iters=250)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    seg.eval(), heads.eval()
    with torch.no_grad():
        logits, feats = seg(images, features=True)
        p = torch.softmax(logits, 1)
        a = heads(feats).exp()
        pixelwise = torch.stack([error_map_prior(p[k], a[k, :1])[0] for k in range(len(images))]).numpy()
        # the global alternative: each expert's matrix averaged over all the data, the same everywhere
        m = np.nanmean([confusion_summary(p[k], a[k]).numpy() for k in range(len(images))], axis=0)  # N×C(j)×C(i)
        glob = 1 - (np.diagonal(m[0])[None, :, None, None] * p.numpy()).sum(1)
    assert (p.argmax(1).numpy() == truth).mean() > 0.95  # the network learnt the truth, not expert 1
    cls1 = truth == 1
    wrong = textured[cls1]
    pw, gl = pixelwise[cls1], glob[cls1]
    assert auroc(pw, wrong) > 0.9 and auroc(pw, wrong) > auroc(gl, wrong) + 0.1
    # the pixel-wise map says "likely wrong" there; the global one moves only with p (tiny shifts)
    assert pw[wrong].mean() - pw[~wrong].mean() > 0.3
    assert abs(gl[wrong].mean() - gl[~wrong].mean()) < 0.05
    # and expert 1's matrix says "class 1 → class 2" on the textured bands only
    on_tex = np.nanmean([confusion_summary(p[k], a[k], torch.from_numpy(textured[k])).numpy()[0]
                         for k in range(len(images))], axis=0)
    assert on_tex[1, 2] > 0.7


def test_matrices_on_the_heads_grid_apply_to_the_pixels_each_cell_covers():
    """Training scores each pixel under the matrix of the grid cell it lies in (the heads' own
    resolution): the same as the full-resolution path given the matrices repeated over their cells,
    including a grid that covers a padded input larger than the labels."""
    g = torch.Generator().manual_seed(1)
    log_a = torch.log_softmax(torch.randn(2, 3, 4, 4, 5, 6, generator=g), 2)
    log_p = torch.log_softmax(torch.randn(2, 4, 18, 23, generator=g), 1)  # padded to 20×24 for the network
    labels = torch.randint(0, 4, (2, 3, 18, 23), generator=g)
    labels[0, 1, 3, 4] = 255
    full = log_a.repeat_interleave(4, -2).repeat_interleave(4, -1)[..., :18, :23]
    want = noisy_label_log_likelihood(log_p, full, labels, 255)
    got = noisy_label_log_likelihood(log_p, log_a, labels, 255, cover=(20, 24))
    assert torch.allclose(got, want, atol=1e-6)
    cfg = LossConfig(loss="focal", reweight=False, confusion=True, vote_warmup=0.0)
    present = torch.ones(2, 3, dtype=torch.bool)
    grid = training_loss(cfg, log_p, torch.zeros(2, 3, 18, 23), labels[:, 0], 0, experts=labels, present=present,
                         log_confusion=log_a, confusion_cover=(20, 24))[0]
    pixels = training_loss(cfg, log_p, torch.zeros(2, 3, 18, 23), labels[:, 0], 0, experts=labels, present=present,
                           log_confusion=full)[0]
    assert grid["noisy"].item() == pytest.approx(pixels["noisy"].item(), rel=1e-6)
