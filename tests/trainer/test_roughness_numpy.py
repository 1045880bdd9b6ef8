"""The torch-free roughness map (eq. 5) the GUI draws equals the loss's torch map (its resize: test_resample.py)."""

import numpy as np
import pytest
import torch

from trainer import roughness as R
from trainer.data.augment import MEAN, STD
from trainer.losses import gaussian_kernel1d, heatmap_options, roughness_map


def _torch_map(image: np.ndarray, **kw) -> np.ndarray:
    """The loss's eq. (5) on the network input: normalise in torch, then ``losses.roughness_map``."""
    t = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    t = (t - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return roughness_map(t[None], **kw)[0].numpy()


@pytest.mark.parametrize("kernel", R.KERNELS)
@pytest.mark.parametrize("border", R.BORDERS)
@pytest.mark.parametrize("ksize,sigma", [(5, 3.0), (7, 1.5)])
def test_numpy_map_equals_the_torch_map(kernel, border, ksize, sigma):
    rng = np.random.default_rng(ksize)
    image = rng.integers(0, 256, (37, 52, 3), dtype=np.uint8)
    kw = dict(lambda_a=50.0, lambda_b=1.0, ksize=ksize, sigma=sigma, kernel=kernel, border=border)
    out = R.roughness_map(image, **kw)
    assert out.dtype == np.float32 and out.shape == (37, 52)
    np.testing.assert_allclose(out, _torch_map(image, **kw), rtol=1e-5, atol=1e-4)


def test_every_checkpoint_setting_gives_the_same_map():
    """What ``heatmap_options`` reads from a checkpoint (today's defaults, legacy runs) is accepted
    by both versions alike."""
    image = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    from trainer.checkpoint import run_config_of  # older runs' settings come from the checkpoint's table

    for config in (None, {"gauss_ksize": 5, "gauss_sigma": 3.0}, {"lambda_a": 7.0, "gauss_border": "reflect"}):
        kw = heatmap_options(run_config_of({"config": {"loss": config}}).get("loss"))
        np.testing.assert_allclose(R.roughness_map(image, **kw), _torch_map(image, **kw), rtol=1e-5, atol=1e-4)


def test_kernels_are_one_definition():
    for kernel in R.KERNELS:
        np.testing.assert_allclose(gaussian_kernel1d(5, 3.0, kernel=kernel).numpy(), R.gaussian_kernel1d(5, 3.0, kernel),
                                   rtol=1e-6)
    np.testing.assert_allclose(R.gaussian_kernel1d(5, 3.0), [0.03467, 0.23897, 0.45272, 0.23897, 0.03467], atol=1e-5)  # Φ by hand


def test_grey_image_counts_as_three_equal_channels():
    grey = np.random.default_rng(2).integers(0, 256, (20, 30), dtype=np.uint8)
    np.testing.assert_array_equal(R.roughness_map(grey), R.roughness_map(np.repeat(grey[..., None], 3, axis=-1)))
    with pytest.raises(ValueError, match="H×W×3"):
        R.roughness_map(np.zeros((4, 4, 2), np.uint8))


def test_the_eq5_settings_are_one_list_and_a_misspelt_one_is_refused():
    """Both maps and the GAF loss take eq. (5)'s settings by HeatmapParams' names: a typo fails
    instead of silently using the default."""
    from trainer.losses import gaf_loss

    image = np.zeros((8, 8, 3), np.uint8)
    for call in (lambda: R.roughness_map(image, lamda_a=7.0), lambda: _torch_map(image, lamda_a=7.0),
                 lambda: gaf_loss(torch.zeros(1, 2, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long),
                                  torch.zeros(1, 3, 8, 8), lamda_a=7.0)):
        with pytest.raises(TypeError, match="lamda_a"):
            call()
    assert set(heatmap_options({})) == {f for f in R.HeatmapParams.__dataclass_fields__}
