"""Weighting CNN (eq. 2), weighted/total loss (eq. 3-4) and the λ schedule (eq. 7-8)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.losses import focal_loss_multi
from trainer.reweighting import WeightingCNN, combine_losses, lambda_schedule


@pytest.mark.parametrize("iteration, n", [(0, 0), (999, 0), (1000, 1), (2500, 2)])
def test_lambda_schedule(iteration, n):
    l1, l2 = lambda_schedule(iteration)
    t = math.tanh(n)
    assert l1 == pytest.approx(1 / (1 + t)) and l2 == pytest.approx(t / (1 + t))
    assert l1 + l2 == pytest.approx(1.0)


def test_lambda_schedule_literal_values():
    assert lambda_schedule(0) == (1.0, 0.0)
    assert lambda_schedule(1000)[1] == pytest.approx(0.7615941559557649 / 1.7615941559557649)
    assert lambda_schedule(500, step=100)[0] == pytest.approx(1 / (1 + math.tanh(5)))


def test_combine_one_expert_absent():
    # 1×2×1×2: expert 1 absent → N = 1, its loss must not count whatever its weight says
    vote = torch.tensor([[[0.5, 1.5]]])
    experts = torch.tensor([[[[2.0, 4.0]], [[10.0, 20.0]]]])
    weights = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])
    present = torch.tensor([[True, False]])
    valid_vote = torch.tensor([[[True, False]]])
    valid_experts = torch.ones(1, 2, 1, 2, dtype=torch.bool)
    out = combine_losses(vote, experts, weights, present, valid_vote, valid_experts, 0.6, 0.4, ["a", "b"])
    assert out["vote"].item() == pytest.approx(0.5)  # only pixel 0 is valid
    assert out["weighted"].item() == pytest.approx((2.0 + 4.0) / 1 / 2)  # Σ_p (l0·w0)/N over 2 pixels
    assert out["total"].item() == pytest.approx(0.6 * 0.5 + 0.4 * 3.0)
    assert out["expert/a"].item() == pytest.approx(3.0) and out["expert/b"].item() == 0.0


def test_combine_by_hand_with_partial_labels():
    # 1×3×1×3, expert c absent (its nonzero weights must be masked), b unlabelled at pixels 1-2
    vote = torch.tensor([[[1.0, 2.0, 3.0]]])
    l = torch.tensor([[2.0, 4.0, 8.0], [6.0, 10.0, 12.0], [100.0, 100.0, 100.0]]).view(1, 3, 1, 3)
    w = torch.tensor([[0.25, 0.6, 0.5], [0.75, 0.4, 0.5], [0.3, 0.3, 0.3]]).view(1, 3, 1, 3)
    present = torch.tensor([[True, True, False]])
    valid_vote = torch.tensor([[[True, True, False]]])
    valid = torch.tensor([[True, True, False], [True, False, False], [True, True, True]]).view(1, 3, 1, 3)
    out = combine_losses(vote, l, w, present, valid_vote, valid, 0.6, 0.4, ["a", "b", "c"])
    # N = 2; pixel 0: (2·.25 + 6·.75)/2 = 2.5; pixel 1: (4·.6)/2 = 1.2; pixel 2: nobody valid, not counted
    assert out["weighted"].item() == pytest.approx((2.5 + 1.2) / 2)
    assert out["vote"].item() == pytest.approx(1.5)
    assert out["total"].item() == pytest.approx(0.6 * 1.5 + 0.4 * 1.85)
    assert out["expert/a"].item() == pytest.approx(3.0)
    assert out["expert/b"].item() == pytest.approx(6.0)
    assert out["expert/c"].item() == 0.0


def test_combine_nothing_valid_is_zero_not_nan():
    z = torch.zeros(1, 2, 2, 2)
    out = combine_losses(z[:, 0], z, z, torch.zeros(1, 2, dtype=torch.bool), z[:, 0].bool(), z.bool(), 0.5, 0.5)
    assert all(torch.isfinite(v) and v.item() == 0.0 for v in out.values())


@pytest.fixture(scope="module")
def wcnn():
    torch.manual_seed(0)
    return WeightingCNN(3)


def test_weights_sum_to_one_over_present_and_zero_for_absent(wcnn):
    x = torch.randn(3, 3, 64, 64)
    present = torch.tensor([[True, False, True], [True, True, True], [False, False, False]])
    w = wcnn(x, present, size=(40, 48))
    assert w.shape == (3, 3, 40, 48) and w.dtype == torch.float32
    assert torch.allclose(w[:2].sum(dim=1), torch.ones(2, 40, 48), atol=1e-6)
    assert (w[0, 1] == 0).all() and (w[2] == 0).all()  # exactly zero
    assert (w[0, [0, 2]] > 0).all()
    assert wcnn(x).shape == (3, 3, 64, 64)  # default: input size, all present


def test_config_rebuilds_same_architecture(wcnn):
    clone = WeightingCNN(**wcnn.config)
    clone.load_state_dict(wcnn.state_dict())
    x = torch.randn(2, 3, 64, 64)
    wcnn.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(wcnn(x), clone(x))
    wcnn.train()


def test_weighting_gradients_reach_backbone(wcnn):
    wcnn.zero_grad()
    x = torch.randn(2, 3, 64, 64)
    present = torch.tensor([[True, False, True], [False, False, False]])
    logits = torch.randn(2, 4, 64, 64)
    targets = torch.randint(0, 4, (2, 4, 64, 64))  # vote + 3 experts
    maps = focal_loss_multi(logits, targets)
    w = wcnn(x, present)
    valid = targets != 255
    out = combine_losses(maps[:, 0], maps[:, 1:], w, present, valid[:, 0], valid[:, 1:], 0.5, 0.5)
    out["total"].backward()
    grads = [p.grad for p in wcnn.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert wcnn.backbone.conv1.weight.grad.abs().sum() > 0


def test_input_scale_keeps_output_size():
    net = WeightingCNN(2, input_scale=0.5)
    # batch 2: at 64² × 0.5 layer4 is 1×1, and BatchNorm needs > 1 value per channel in training
    w = net(torch.randn(2, 3, 64, 64), torch.tensor([[True, True], [True, False]]))
    assert w.shape == (2, 2, 64, 64)
    assert torch.allclose(w[0].sum(0), torch.ones(64, 64), atol=1e-6) and (w[1, 1] == 0).all()


@pytest.mark.parametrize("stride, channels", [(16, 256), (8, 128)])
def test_weighting_cnn_finer_stride(stride, channels):
    """stride 16/8 cut ResNet-18 after layer3/layer2: finer maps, rebuilt from the config alone."""
    torch.manual_seed(0)
    net = WeightingCNN(3, stride=stride)
    assert net.config["stride"] == stride and net.head.in_channels == channels
    assert not any(k.startswith(("backbone.layer4", "backbone.fc")) for k in net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert net.backbone.forward_features(x).shape[-2:] == (64 // stride, 64 // stride)
    w = net(x, size=(64, 64))
    assert w.shape == (2, 3, 64, 64) and torch.allclose(w.sum(dim=1), torch.ones(2, 64, 64), atol=1e-6)
    clone = WeightingCNN(**net.config)
    clone.load_state_dict(net.state_dict())


def test_weighting_cnn_default_is_the_authors_architecture():
    """Their fcn_mul_label configs: ResNet-18 with stage strides (1, 1, 1, 1) → output stride 4,
    512 channels, a 3×3 head to N experts."""
    torch.manual_seed(0)
    net = WeightingCNN(3)
    assert net.config == {"num_experts": 3, "input_scale": 1.0, "stride": 4, "head_kernel": 3}
    assert net.head.in_channels == 512 and net.head.kernel_size == (3, 3) and net.head.out_channels == 3
    x = torch.randn(2, 3, 64, 64)
    assert net.backbone.forward_features(x).shape == (2, 512, 16, 16)  # 64 / 4
    # every stage after the stem keeps the resolution: no strided conv left in layer2-4
    for stage in ("layer2", "layer3", "layer4"):
        block = getattr(net.backbone, stage)[0]
        assert block.conv1.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    assert torch.allclose(net(x).sum(1), torch.ones(2, 64, 64), atol=1e-6)


def test_weighting_cnn_older_checkpoints_rebuild():
    # checkpoints written before the authors' architecture became the default hold
    # {"num_experts", "input_scale"} (stride 32, 1×1 head) or also {"stride"} (8/16)
    old = WeightingCNN(2, stride=32, head_kernel=1)
    from trainer.checkpoint import weighting_config_of  # the one table of older-checkpoint rules

    def from_checkpoint(config):
        return WeightingCNN.from_config(weighting_config_of({"weighting_config": config}))

    clone = from_checkpoint({"num_experts": 2, "input_scale": 1.0})
    clone.load_state_dict(old.state_dict())
    assert clone.config["stride"] == 32 and clone.head.kernel_size == (1, 1)
    assert from_checkpoint({"num_experts": 2, "input_scale": 1.0, "stride": 8}).head.in_channels == 128
    with pytest.raises(ValueError, match="stride"):
        WeightingCNN(2, stride=12)
    from trainer.config import RunConfig
    from trainer.errors import InputError

    with pytest.raises(InputError, match="weight_stride"):
        RunConfig.from_dict({"loss": {"weight_stride": 12}})
    with pytest.raises(InputError, match="weight_head_kernel"):
        RunConfig.from_dict({"loss": {"weight_head_kernel": 5}})


@pytest.mark.parametrize("iteration, n", [(0, 0), (999, 0), (1000, 1), (2500, 2), (7000, 7)])
def test_lambda_schedule_authors_form(iteration, n):
    # their code: 2·(sigmoid(n) − ½), which is tanh(n/2)
    l1, l2 = lambda_schedule(iteration, form="authors")
    t = 2 * (1 / (1 + math.exp(-n)) - 0.5)
    assert l1 == pytest.approx(1 / (1 + t)) and l2 == pytest.approx(t / (1 + t))
    with pytest.raises(ValueError, match="lambda form"):
        lambda_schedule(0, form="fast")
