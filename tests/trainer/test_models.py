"""Model registry: shapes, gradients, config round trip, pretrained handling."""

from __future__ import annotations

import time

import huggingface_hub.constants
import pytest
import timm
import torch

from trainer.errors import InputError, PretrainedUnavailable
from trainer.models import MODELS, build_from_config, create_model, model_config
from trainer.reweighting import WeightingCNN

NAMES = ["hrnet18", "hrnet48", "unet", "deeplabv3plus", "pspnet"]


def test_registry_holds_the_table2_models():
    assert sorted(MODELS) == sorted(NAMES)


def test_the_torch_free_table_is_the_registry():
    """The train widget lists models and encoders from trainer.model_registry without torch: the
    same names, and each model's default backbone is what create_model builds."""
    import subprocess
    import sys

    from trainer.model_registry import FIXED_BACKBONES, TABLE2_MODELS

    assert list(TABLE2_MODELS) == list(MODELS)
    for name, default in TABLE2_MODELS.items():
        built = MODELS[name].default_encoder
        assert built == (FIXED_BACKBONES[name] if default is None else default), name
    probe = "import sys, trainer.model_registry, napari_gleason._train_settings; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_config_round_trip(name):
    torch.manual_seed(0)
    model = create_model(name, 4)
    x = torch.randn(2, 3, 64, 64)  # batch 2: PSPNet's 1×1 pooled branch has BatchNorm
    out = model(x)
    assert out.shape == (2, 4, 64, 64)
    out.float().square().mean().backward()
    first = next(p for p in model.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0, "no gradient reaches the backbone"

    cfg = model_config(model)
    assert cfg["name"] == name and cfg["num_classes"] == 4
    assert all(isinstance(v, (str, int, float, bool)) for v in cfg.values())  # plain data
    clone = build_from_config(cfg)
    clone.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    model.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_smp_encoder_defaults_and_override():
    assert create_model("unet", 2).config["encoder"] == "resnet34"
    assert create_model("deeplabv3plus", 2).config["encoder"] == "resnet50"
    m = create_model("pspnet", 2, encoder="resnet18")
    assert m.config["encoder"] == "resnet18" and build_from_config(m.config).config == m.config
    with pytest.raises(KeyError, match="unknown encoder"):
        create_model("unet", 2, encoder="resnet999")
    # encoder=None (RunConfig's default) = the model's default; HRNet's backbone is fixed
    assert create_model("hrnet18", 2, encoder=None).config["encoder"] == "hrnet_w18"
    with pytest.raises(KeyError, match="fixed backbone"):
        create_model("hrnet18", 2, encoder="resnet50")


def test_sizes_not_multiple_of_32_are_padded():
    model = create_model("hrnet18", 3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 70, 50)).shape == (1, 3, 70, 50)


def test_unknown_name_lists_choices():
    with pytest.raises(KeyError) as err:
        create_model("segformer", 4)
    assert all(n in str(err.value) for n in NAMES)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize(
    "make", [lambda: create_model("hrnet18", 4, pretrained=True), lambda: create_model("unet", 4, pretrained=True),
             lambda: WeightingCNN(3, pretrained=True)],
    ids=["hrnet18", "unet", "weighting"],
)
def test_pretrained_offline_fails_clearly_and_fast(offline, make):
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailable, match="--init CKPT"):
        make()
    assert time.monotonic() - start < 10


def test_pretrained_from_local_file(tmp_path):
    torch.manual_seed(1)
    donor = create_model("unet", 4)
    path = tmp_path / "resnet34.pth"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in donor.backbone.state_dict().items()}}, path)
    model = create_model("unet", 4, pretrained=path)
    for (k, a), b in zip(donor.backbone.state_dict().items(), model.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    assert "pretrained" not in model.config

    # a full timm classification state dict (with fc.*) loads into the weighting CNN's backbone
    full = timm.create_model("resnet18", pretrained=False)
    torch.save(full.state_dict(), tmp_path / "r18.pth")
    w = WeightingCNN(2, pretrained=tmp_path / "r18.pth")
    assert torch.equal(w.backbone.conv1.weight, full.conv1.weight)

    with pytest.raises(InputError, match="do not fit"):  # resnet18 weights into a resnet34 encoder
        create_model("unet", 4, pretrained=tmp_path / "r18.pth")
    with pytest.raises(InputError, match="not found"):
        create_model("unet", 4, pretrained=tmp_path / "missing.pth")
