"""Tiled inference against brute-force whole-image inference."""

import numpy as np
import pytest
import torch

from trainer.data.augment import MEAN, STD
from trainer.data.classes import GLEASON_SCHEME
from trainer.prediction.predictor import Predictor, load_predictor
from trainer.prediction.tiling import blend_window, predict_tiled, tile_starts


def pointwise_predictor(seed=0) -> Predictor:
    """A 1×1-conv 'network': its output at a pixel depends on that pixel only, so tiling with any
    window must reproduce whole-image inference exactly — a test of the blending arithmetic."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Tanh(), torch.nn.Conv2d(8, 4, 1)).eval()
    return Predictor(net, None, GLEASON_SCHEME, (), 32, torch.device("cpu"), precision="fp32")  # exact arithmetic


def whole_image(pred: Predictor, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.softmax(pred.model(x), 1)[0].numpy()


def test_tile_starts_cover_and_end_flush():
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68]
    assert tile_starts(20, 32, 24) == [0]
    for length, tile, stride in [(100, 32, 24), (97, 16, 5), (64, 64, 32), (65, 64, 32)]:
        starts = tile_starts(length, tile, stride)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all() and starts[-1] + tile == max(length, tile)


def test_window_positive_and_flat_in_the_middle():
    w = blend_window(32, 8)
    assert w.min() > 0 and w.max() == 1.0 and w[16, 16] == 1.0 and w[0, 0] < w[4, 4]


@pytest.mark.parametrize("shape,tile,overlap,band_rows",
                         [((70, 90), 32, 8, 256), ((70, 90), 32, 8, 5), ((64, 64), 32, 16, 256), ((20, 50), 32, 4, 3)])
def test_tiled_equals_whole_image_for_a_pointwise_model(shape, tile, overlap, band_rows):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    pred = pointwise_predictor()
    ref = whole_image(pred, image)
    res = predict_tiled(pred, image, tile=tile, overlap=overlap, batch=3, band_rows=band_rows)
    np.testing.assert_allclose(res.probabilities, ref, atol=1e-5)
    assert (res.classes == ref.argmax(0)).all()


def test_bands_streamed_to_a_sink_cover_every_row_once():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(100, 60, 3), dtype=np.uint8)
    pred = pointwise_predictor()
    bands = []
    predict_tiled(pred, image, tile=32, overlap=8, sink=lambda y0, y1, c, p, w: bands.append((y0, y1, c, p)))
    assert bands[0][0] == 0 and bands[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))
    # no band is taller than one tile: memory stays bounded by a band, not the core
    assert max(y1 - y0 for y0, y1, *_ in bands) <= 32
    full = predict_tiled(pred, image, tile=32, overlap=8)
    np.testing.assert_allclose(np.concatenate([b[3] for b in bands], axis=1), full.probabilities, atol=1e-6)


def test_reads_lazily_from_a_zarr_array(tmp_path):
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(80, 80, 3), dtype=np.uint8)
    arr = zarr.create_array(str(tmp_path / "img.zarr"), shape=image.shape, chunks=(32, 32, 3), dtype="uint8")
    arr[:] = image
    pred = pointwise_predictor()
    out = zarr.create_array(str(tmp_path / "cls.zarr"), shape=(80, 80), chunks=(32, 32), dtype="uint8")
    from trainer.prediction.tiling import zarr_sink

    predict_tiled(pred, arr, tile=32, overlap=8, sink=zarr_sink(out))
    assert (out[:] == whole_image(pred, image).argmax(0)).all()


def test_scale_runs_the_model_at_lower_magnification():
    import torch.nn.functional as F

    rng = np.random.default_rng(4)
    base = np.kron(rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
    image = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))  # 96², 16×16 blocks; 24² at 1/4
    pred = pointwise_predictor()
    res = predict_tiled(pred, image, tile=16, overlap=4, scale=0.25)
    # reference: the whole core at 1/4 magnification, logits upsampled back (the paper's way)
    x = torch.from_numpy(base).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = F.interpolate(pred.model(x), size=(96, 96), mode="bilinear", align_corners=False).argmax(1)[0]
    assert res.probabilities.shape == (4, 96, 96)
    assert (res.classes == ref.numpy()).mean() > 0.95


def test_real_checkpoint_with_weight_maps(tiny_run):
    pred = load_predictor(f"{tiny_run}/last.pt", "cpu")
    image = np.random.default_rng(5).integers(0, 256, size=(100, 90, 3), dtype=np.uint8)
    res = predict_tiled(pred, image, tile=64, overlap=16)
    assert res.classes.shape == (100, 90) and res.probabilities.shape == (4, 100, 90)
    assert res.weights.shape == (3, 100, 90)
    np.testing.assert_allclose(res.weights.sum(0), 1, atol=1e-4)
    np.testing.assert_allclose(res.probabilities.sum(0), 1, atol=1e-4)


class _PointwiseSegmenter(torch.nn.Module):
    """1×1 convolutions with the Segmenter's ``features=True`` and ``padded_size``: tiles change nothing."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Tanh())
        self.classifier = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x, features=False):
        f = self.body(x)
        return (self.classifier(f), f) if features else self.classifier(f)

    def padded_size(self, h, w):
        return h, w


@pytest.mark.parametrize("shape,tile,overlap", [((70, 90), 32, 8), ((20, 50), 32, 4)])
def test_tiled_confusion_matrices_are_the_whole_image_sums(shape, tile, overlap):
    """The per-core matrices of a tiled prediction are summed from the tiles, each pixel counted once
    by its share of the blend, over the tissue: with pointwise networks they equal the whole-image
    ``confusion_summary`` exactly, and the image-only error maps equal ``error_map_prior``."""
    from trainer.annotators import ConfusionHeads, confusion_summary, error_map_prior

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    tissue = rng.random(shape) > 0.3
    heads = ConfusionHeads(2, 4, 8, width=8)
    heads.mix = torch.nn.Identity()  # pointwise
    torch.nn.init.normal_(heads.head.weight, std=0.5)
    heads.eval()
    pred = Predictor(_PointwiseSegmenter().eval(), None, GLEASON_SCHEME, ("a", "b"), 32, torch.device("cpu"),
                     confusion=heads, precision="fp32")
    res = predict_tiled(pred, image, tile=tile, overlap=overlap, batch=2, tissue=tissue)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits, feats = pred.model(x, features=True)
        p, a = torch.softmax(logits, 1)[0], heads(feats).exp()[0]
        want = confusion_summary(p, a, torch.from_numpy(tissue)).numpy()
        prior = error_map_prior(p, a).numpy()
    np.testing.assert_allclose(res.confusion, want, atol=1e-5)
    np.testing.assert_allclose(res.errors, prior, atol=1e-5)
    share = (p.double().numpy()[:, tissue]).sum(1)
    np.testing.assert_allclose(res.share, share / share.sum(), atol=1e-6)
