"""Resizing and augmentation (paper §3.2): identical geometry for image and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.data.augment import MEAN, STD, augment, normalise, normalise_tensor
from trainer.resample import resize_image, resize_nearest
from trainer.data.classes import IGNORE_INDEX


def _coords(h, w):
    """Image whose channels hold the row, the column and a constant; masks hold row and column."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.uint8)
    image = np.dstack([yy, xx, np.full_like(yy, 77)])
    return image, np.stack([yy, xx])


def _dihedral(a):
    """The eight flips/rotations of a square array's last two axes (independent reference)."""
    out = []
    for k in range(4):
        r = np.rot90(a, k, axes=(-2, -1))
        out += [r, r[..., ::-1]]
    return out


def test_flips_and_rotations_move_image_and_masks_together():
    image, masks = _coords(16, 16)
    seen = set()
    for seed in range(60):
        img, m = augment(image, masks, np.random.default_rng(seed), scale=None)
        np.testing.assert_array_equal(img[..., 0], m[0])
        np.testing.assert_array_equal(img[..., 1], m[1])
        assert (img[..., 2] == 77).all()
        matches = [i for i, d in enumerate(_dihedral(masks)) if np.array_equal(d, m)]
        assert len(matches) == 1  # a rigid flip/rotation, nothing else
        seen.add(matches[0])
    assert seen == set(range(8))  # every flip/rotation combination does occur


def test_rescale_moves_image_and_masks_together_and_pads_with_ignore():
    image, masks = _coords(32, 32)
    image_f = image.astype(np.float32)
    saw_pad = saw_crop = False
    for seed in range(30):
        img, m = augment(image_f, masks, np.random.default_rng(seed), image_fill=-1.0)
        pad = m[0] == IGNORE_INDEX
        np.testing.assert_array_equal(pad, m[1] == IGNORE_INDEX)
        np.testing.assert_array_equal(pad, (img == -1.0).all(axis=-1))  # same padded region
        valid = ~pad
        # Bilinear image vs nearest masks of the same geometry: within one pixel.
        assert np.abs(img[..., 0][valid] - m[0][valid]).max() <= 1.0
        assert np.abs(img[..., 1][valid] - m[1][valid]).max() <= 1.0
        saw_pad |= bool(pad.any())
        saw_crop |= not pad.any() and np.unique(m[0]).size < 32  # zoomed in: rows repeat
    assert saw_pad and saw_crop


def test_masks_keep_only_valid_values():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    masks = {"1": rng.choice(np.array([0, 2, 3], np.uint8), (24, 24)), "3": np.full((24, 24), IGNORE_INDEX, np.uint8)}
    for seed in range(10):
        img, out = augment(image, masks, np.random.default_rng(seed))
        assert isinstance(out, dict) and list(out) == ["1", "3"]
        assert set(np.unique(out["1"])) <= {0, 2, 3, IGNORE_INDEX}
        assert (out["3"] == IGNORE_INDEX).all()
        assert img.shape == image.shape and img.dtype == np.uint8


def test_uint8_padding_is_the_mean_colour():
    image = np.full((20, 20, 3), 10, np.uint8)
    masks = np.zeros((1, 20, 20), np.uint8)
    img, m = augment(image, masks, np.random.default_rng(0), flip=False, rot90_p=0.0, scale=(0.8, 0.85))
    pad = m[0] == IGNORE_INDEX
    assert pad.any() and not pad.all()
    assert (img[pad] == np.rint(MEAN).astype(np.uint8)).all()
    assert (img[~pad] == 10).all()


def test_same_seed_same_transform_and_non_square_keeps_shape():
    image, masks = _coords(12, 20)
    a = augment(image, masks, np.random.default_rng(9))
    b = augment(image, masks, np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for seed in range(20):
        img, m = augment(image, masks, np.random.default_rng(seed), scale=None)
        assert img.shape == (12, 20, 3) and m.shape == (2, 12, 20)
        np.testing.assert_array_equal(img[..., 0], m[0])


def test_resize_core_nearest_masks_and_bilinear_image():
    image, masks = _coords(40, 40)
    labels = {"a": (masks[0] // 10).astype(np.uint8)}  # 4 bands of 10 rows
    img, out = resize_image(image, 20), {"a": resize_nearest(labels["a"], 20)}  # how a core is resized
    assert img.shape == (20, 20, 3) and out["a"].shape == (20, 20)
    np.testing.assert_array_equal(np.unique(out["a"]), [0, 1, 2, 3])
    np.testing.assert_array_equal(out["a"][:, 0], np.repeat([0, 1, 2, 3], 5))
    # Area-averaged rows 2i, 2i+1 -> row value 2i + 0.5, rounded; interior is linear in the row.
    assert np.abs(img[2:-2, 5, 0].astype(float) - (np.arange(2, 18) * 2 + 0.5)).max() <= 1.0


def test_to_tensor_normalises_with_mmseg_mean_std():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = (255, 0, 128)
    t = normalise_tensor(torch.from_numpy(image).permute(2, 0, 1)[None])[0]  # the network input
    assert t.shape == (3, 2, 3) and t.dtype == torch.float32
    expected = (np.array([255, 0, 128]) - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(t[:, 0, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(normalise(np.full((1, 1, 3), np.round(MEAN), np.uint8)), 0, atol=0.01)


def test_mismatched_masks_are_refused():
    with pytest.raises(ValueError):
        augment(np.zeros((8, 8, 3), np.uint8), np.zeros((1, 6, 8), np.uint8), np.random.default_rng(0))
