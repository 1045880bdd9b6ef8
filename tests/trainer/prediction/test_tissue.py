"""The tissue mask against the synthetic cores' known core masks (Gleason value 0 = glass)."""

import numpy as np
import pytest
from PIL import Image

from trainer.prediction.tissue import blank_outside, tissue_mask
from trainer.resample import resize_nearest

from tests.paths import SAMPLES

CORES = sorted(p.stem for p in (SAMPLES / "Train Imgs").glob("*.jpg"))


def core(name):
    image = np.asarray(Image.open(SAMPLES / "Train Imgs" / f"{name}.jpg").convert("RGB"))
    truth = np.asarray(Image.open(SAMPLES / "truth" / f"{name}_classimg_nonconvex.png")) > 0
    return image, truth


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("name", CORES)
def test_mask_matches_the_known_core_mask(name):
    image, truth = core(name)
    mask = tissue_mask(image)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth) > 0.95  # measured 0.968-0.993: the misses are a pixel or two along the soft edge
    # lumens of benign glands are as white as glass, but inside the core: filled
    assert mask[truth].mean() > 0.97 and (~mask[~truth]).mean() > 0.98


def test_generated_core_at_another_size_and_a_reduced_analysis():
    from trainer.synthetic import make_core

    c = make_core(11, size=300)
    full = tissue_mask(c.image, max_side=None)
    strided = tissue_mask(c.image, max_side=100)  # analysed at 100², returned at 300²
    assert strided.shape == full.shape == c.core_mask.shape
    assert iou(full, c.core_mask) > 0.95 and iou(strided, c.core_mask) > 0.9


def test_lazy_source_and_rgba():
    image, truth = core(CORES[0])

    class Lazy:  # e.g. the review store's image: only shape and (strided) slicing
        shape = image.shape

        def __getitem__(self, key):
            return image[key]

    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(tissue_mask(Lazy(), max_side=256), tissue_mask(image, max_side=256))
    np.testing.assert_array_equal(tissue_mask(rgba), tissue_mask(image))


def test_all_glass_all_tissue_and_debris():
    rng = np.random.default_rng(0)
    glass = np.clip(rng.normal(245, 2, (256, 256, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(glass).any()
    pink = np.clip(rng.normal((200, 120, 170), 8, (256, 256, 3)), 0, 255).astype(np.uint8)
    assert tissue_mask(pink).all()  # no glass at all: Otsu's split is clamped, nothing is dropped
    dusty = glass.copy()
    dusty[10, 10] = dusty[140, 50:53] = 60  # dust specks: too small to be tissue
    assert not tissue_mask(dusty).any()
    with pytest.raises(ValueError, match="H×W×3"):
        tissue_mask(np.zeros((8, 8), np.uint8))


def test_blank_outside_and_resize():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    big = resize_nearest(mask, (8, 8))
    np.testing.assert_array_equal(big, np.kron(mask, np.ones((2, 2), bool)))
    values = np.arange(64, dtype=np.float32).reshape(8, 8)
    out = blank_outside(values, mask)  # a low-resolution mask for a full map: resized
    assert out.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(out), ~big)
    np.testing.assert_array_equal(out[big], values[big])
    stack = blank_outside(np.ones((2, 8, 8)), big, fill=0.0)
    assert stack.shape == (2, 8, 8) and stack.sum() == 2 * big.sum()
