"""The one resampling module: nearest at pixel centres in exact arithmetic, antialiased bilinear as
torch's (and Pillow's) filter; checked against brute force and torch, not against itself."""

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer import resample
from trainer.data.augment import rescale_image


def _brute_nearest_index(out_len: int, src_len: int) -> list[int]:
    return [min(int((Fraction(2 * i + 1, 2) * src_len / out_len)), src_len - 1) for i in range(out_len)]


@pytest.mark.parametrize("src,out", [(512, 431), (26, 23), (431, 512), (7, 23), (23, 7), (5120, 512), (3, 2), (1, 5)])
def test_nearest_index_is_the_pixel_centre_rule_in_exact_arithmetic(src, out):
    # 512 → 431 fails in float32 (torch's nearest-exact), 26 → 23 in float64
    assert resample.source_index(out, src).tolist() == _brute_nearest_index(out, src)


def test_resize_nearest_keeps_values_dtype_and_leading_axes():
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 6, (3, 2, 41, 37)).astype(np.uint8)
    for size in [(17, 50), (41, 37), 64]:
        out = resample.resize_nearest(stack, size)
        h, w = resample.size_hw(size)
        rows, cols = _brute_nearest_index(h, 41), _brute_nearest_index(w, 37)
        assert out.dtype == np.uint8 and out.shape == (3, 2, h, w)
        np.testing.assert_array_equal(out, stack[..., rows, :][..., cols])
    mask = rng.random((9, 9)) > 0.5
    assert resample.resize_nearest(mask, (27, 27)).dtype == bool
    np.testing.assert_array_equal(resample.resize_nearest(mask, (27, 27)), np.kron(mask, np.ones((3, 3), bool)))
    assert resample.resize_nearest(np.zeros((0, 8, 8), np.uint8), 4).shape == (0, 4, 4)


def test_resize_nearest_is_torchs_nearest_exact_where_float32_is_exact():
    src = np.random.default_rng(1).integers(0, 4, (2, 7, 5)).astype(np.uint8)
    torch_out = F.interpolate(torch.from_numpy(src)[None], size=(23, 16), mode="nearest-exact")[0].numpy()
    np.testing.assert_array_equal(resample.resize_nearest(src, (23, 16)), torch_out)


@pytest.mark.parametrize("shape,size", [((200, 300, 3), 64), ((64, 48, 3), (100, 90)), ((128, 128, 3), 128),
                                        ((37, 23, 3), (64, 17))])
def test_resize_image_is_torchs_antialiased_bilinear(shape, size, monkeypatch):
    monkeypatch.setattr(resample, "_COLUMNS", 20)  # several column blocks, one ragged
    image = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    h, w = resample.size_hw(size)
    t = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    theirs = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0)
    mine = resample.resize_image(image, size)
    assert mine.dtype == np.uint8 and mine.shape == (h, w, 3)
    diff = np.abs(mine.astype(int) - np.clip(np.rint(theirs.numpy()), 0, 255))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding at .5 only
    np.testing.assert_allclose(resample.resize_image(image.astype(np.float32), size), theirs.numpy(), atol=2e-3)
    assert resample.resize_image(image, shape[:2]) is image
    augmented = rescale_image(image, (h, w))  # the augmentation's torch rescale: the same filter
    assert np.abs(augmented.astype(int) - mine).max() <= 1
