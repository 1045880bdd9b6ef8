"""CPU inference in channels_last with bfloat16 autocast, and the float32 option (issue 11, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer import device
from trainer.prediction import predictor as inference
from trainer.resample import resize_image
from trainer.prediction.predictor import compute_dtype, load_predictor, predict_core
from trainer.prediction.tiling import predict_tiled


@pytest.fixture(scope="module")
def demo():
    from napari_gleason._sample_data import synthetic_core
    from napari_gleason.demo import DEMO_MODEL

    core = synthetic_core(size=512)  # the demo's core (seed 3), smaller: the model sees 128² anyway
    return DEMO_MODEL, core.image


def test_bf16_class_map_agrees_with_fp32_on_a_trained_checkpoint(demo):
    """The trained demo model (PSPNet-MobileNetV2 + confusion model): bfloat16 autocast changes the
    class of at most 0.5 % of the pixels, whole core and tiled, and the error maps by little."""
    ckpt, image = demo
    fp32, bf16 = load_predictor(ckpt, "cpu", precision="fp32"), load_predictor(ckpt, "cpu", precision="bf16")
    assert fp32.compute_dtype is None and bf16.compute_dtype == torch.bfloat16
    small = resize_image(image, fp32.size)
    a, b = predict_core(fp32, small, experts=("1", "3")), predict_core(bf16, small, experts=("1", "3"))
    assert (a.classes == b.classes).mean() >= 0.995
    assert np.abs(a.probabilities - b.probabilities).max() < 0.1
    for e in ("1", "3"):
        assert np.abs(a.errors[e] - b.errors[e]).mean() < 0.02
    ta = predict_tiled(fp32, image[:256, :256], tile=128, overlap=32, batch=2)
    tb = predict_tiled(bf16, image[:256, :256], tile=128, overlap=32, batch=2)
    assert (ta.classes == tb.classes).mean() >= 0.995


def test_fp32_is_the_plain_float32_network(demo):
    """``precision="fp32"``: no autocast; channels_last and the folded batch norms change the order of
    sums only."""
    ckpt, image = demo
    pred = load_predictor(ckpt, "cpu", precision="fp32")
    conv = next(m for m in pred.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # CPU inference runs channels_last
    small = resize_image(image, pred.size)
    x = inference.image_to_tensor(small, pred.device, None)
    from trainer.checkpoint import load_checkpoint, networks_from_payload

    plain = networks_from_payload(load_checkpoint(ckpt), ckpt)[0].eval()  # as trained: batch norms, NCHW
    assert any(type(m) is torch.nn.BatchNorm2d for m in plain.modules())
    with torch.inference_mode():
        ref = torch.softmax(plain(x), 1)[0].numpy()
    got = predict_core(pred, small).probabilities
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_which_dtype_each_precision_runs_in(monkeypatch):
    cpu = torch.device("cpu")
    assert compute_dtype(cpu, "fp32") is None and compute_dtype(cpu, "bf16") == torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: True)
    assert compute_dtype(cpu, "auto") == torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: False)
    assert compute_dtype(cpu, "auto") is None  # emulated bfloat16 would be slower than float32
    with pytest.raises(ValueError, match="precision"):
        compute_dtype(cpu, "fp16")


def _with_running_statistics(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random running means/variances and affine parameters: a freshly built network's batch norms are
    the identity, which any folding would reproduce."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g))
    return net.eval()


@pytest.mark.parametrize("name", ["hrnet18", "unet", "deeplabv3plus", "pspnet"])
def test_folding_batch_norms_keeps_each_table2_model_the_same_function(name):
    from trainer.prediction.predictor import fold_batchnorm
    from trainer.models import create_model

    net = _with_running_statistics(create_model(name, 4))
    before = sum(type(m) is torch.nn.BatchNorm2d for m in net.modules())
    folded, count = fold_batchnorm(net)
    after = sum(type(m) is torch.nn.BatchNorm2d for m in folded.modules())
    assert count > 0 and after == before - count and after <= before // 4, (before, after)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = net(x), folded(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    assert any(type(m) is torch.nn.BatchNorm2d for m in net.modules())  # the original is untouched


def test_folding_leaves_norms_with_an_activation_and_refuses_a_wrong_pairing():
    """timm's BatchNormAct2d applies its activation inside: not a plain batch norm, not folded. A
    ``convN``/``bnN`` pair that the forward pass does not chain (bn before conv) fails the check,
    and the network comes back unchanged."""
    from timm.layers import BatchNormAct2d

    from trainer.prediction.predictor import fold_batchnorm

    class ConvNormAct(torch.nn.Sequential):
        pass

    with_act = _with_running_statistics(ConvNormAct(torch.nn.Conv2d(3, 8, 3), BatchNormAct2d(8)))
    assert fold_batchnorm(with_act) == (with_act, 0)

    class NormFirst(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.conv1(self.bn1(x))

    norm_first = _with_running_statistics(NormFirst())
    net, count = fold_batchnorm(norm_first)
    assert net is norm_first and count == 0


def test_class_map_is_the_first_largest_score_like_numpy_argmax():
    from trainer.prediction.predictor import class_map

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (4, 37, 53), generator=g).float()  # many ties between classes
    scores[:, 0, 0] = 1.0  # all four equal: class 0
    want = np.argmax(scores.numpy(), axis=0)
    for layout in (scores, scores[None].contiguous(memory_format=torch.channels_last)[0]):
        got = class_map(layout)
        assert got.dtype == torch.uint8
        np.testing.assert_array_equal(got.numpy(), want)
