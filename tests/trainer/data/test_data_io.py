"""trainer.data.io: reading images and masks, writing masks, and every bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX, ClassScheme
from trainer.data.io import MaskExistsError, read_image, read_mask, write_mask_png
from trainer.errors import InputError

from tests.fakes import save_mask


def _rgb(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_max_image_pixels_allows_big_cores_but_stays_finite():
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS >= 20000 * 20000
    assert Image.MAX_IMAGE_PIXELS < 10**10


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grey_image_is_stacked_to_three_channels(tmp_path):
    grey = _rgb()[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_rgba_opaque_drops_alpha_and_transparent_blends_to_white(tmp_path):
    rgb = _rgb()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), rgb)
    alpha[0, 0] = 0
    alpha[1, 1] = 128
    Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(tmp_path / "holes.png")
    out = read_image(tmp_path / "holes.png")
    assert out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    expected = np.rint(rgb[1, 1] * (128 / 255) + 255 * (1 - 128 / 255))
    np.testing.assert_allclose(out[1, 1], expected, atol=1)
    np.testing.assert_array_equal(out[2:, 2:], rgb[2:, 2:])


def test_16bit_grey_is_scaled_to_8bit(tmp_path):
    values = np.array([[0, 257, 65535], [32896, 514, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[..., 0], np.rint(values / 257.0).astype(np.uint8))


def test_palette_image_gives_its_colours(tmp_path):
    img = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), mode="P")
    img.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png")[1, 0], [40, 50, 60])


def test_float_image_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(InputError, match="f.tif"):
        read_image(tmp_path / "f.tif")


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n garbage"])
def test_corrupt_image_names_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "broken.png" in str(info.value) and info.value.path == path


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_names_file(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(_rgb(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"cut\\{suffix}"):
        read_image(path)


def test_missing_image_names_file(tmp_path):
    with pytest.raises(InputError, match="nothere.jpg"):
        read_image(tmp_path / "nothere.jpg")


def test_paths_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "Train Imgs" / "Präparat ü 1"
    folder.mkdir(parents=True)
    rgb = _rgb()
    Image.fromarray(rgb).save(folder / "core é 1.png")
    np.testing.assert_array_equal(read_image(folder / "core é 1.png"), rgb)
    save_mask(folder / "maske ø.png", np.full((12, 10), 3, np.uint8))
    assert (read_mask(folder / "maske ø.png", GLEASON_SCHEME) == 1).all()


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_gleason_value_map_for_each_png_flavour(tmp_path, mode):
    raw = np.array([[0, 1, 3], [4, 5, 6]], np.uint8)
    save_mask(tmp_path / "m.png", raw, mode)
    out = read_mask(tmp_path / "m.png", GLEASON_SCHEME, shape=(2, 3))
    # Independent reference: paper §3.1 — 0, 1, 6 benign; 3, 4, 5 -> G3, G4, G5.
    np.testing.assert_array_equal(out, [[0, 0, 1], [2, 3, 0]])
    assert out.dtype == np.uint8


def test_rgb_mask_with_unequal_channels_is_refused(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (3, 4, 5)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour.png"):
        read_mask(tmp_path / "colour.png", GLEASON_SCHEME)


def test_unknown_mask_values_are_listed(tmp_path):
    save_mask(tmp_path / "odd.png", np.array([[0, 2, 7], [3, 3, 2]], np.uint8))
    with pytest.raises(InputError) as info:
        read_mask(tmp_path / "odd.png", GLEASON_SCHEME)
    msg = str(info.value)
    assert "odd.png" in msg and "[2, 7]" in msg and "[0, 2, 3, 7]" in msg


def test_mask_size_mismatch_names_file_and_both_sizes(tmp_path):
    save_mask(tmp_path / "small.png", np.zeros((5, 7), np.uint8))
    with pytest.raises(InputError) as info:
        read_mask(tmp_path / "small.png", GLEASON_SCHEME, shape=(6, 8))
    msg = str(info.value)
    assert "small.png" in msg and "7×5" in msg and "8×6" in msg


def test_ignore_values_become_ignore_index(tmp_path):
    scheme = ClassScheme(("a", "b"), {0: 0, 10: 1}, ignore=(99,))
    save_mask(tmp_path / "m.png", np.array([[0, 10, 99]], np.uint8))
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", scheme), [[0, 1, IGNORE_INDEX]])


def test_write_mask_png_exports_gleason_values(tmp_path):
    classes = np.array([[0, 1], [2, 3]], np.uint8)
    path = write_mask_png(tmp_path / "out.png", classes, GLEASON_SCHEME)
    raw = np.asarray(Image.open(path))
    np.testing.assert_array_equal(raw, [[1, 3], [4, 5]])  # benign exported as 1
    np.testing.assert_array_equal(read_mask(path, GLEASON_SCHEME), classes)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left


def test_write_mask_png_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.png"
    write_mask_png(path, np.zeros((3, 3), np.uint8), GLEASON_SCHEME)
    before = path.read_bytes()
    with pytest.raises(MaskExistsError) as info:
        write_mask_png(path, np.ones((3, 3), np.uint8), GLEASON_SCHEME)
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, InputError)
    assert path.read_bytes() == before
    write_mask_png(path, np.ones((3, 3), np.uint8), GLEASON_SCHEME, overwrite=True)
    assert (np.asarray(Image.open(path)) == 3).all()


def test_write_mask_png_ignore_needs_an_ignore_value(tmp_path):
    classes = np.array([[0, IGNORE_INDEX]], np.uint8)
    with pytest.raises(ValueError, match="ignore_value"):
        write_mask_png(tmp_path / "x.png", classes, GLEASON_SCHEME)
    assert not (tmp_path / "x.png").exists()
    write_mask_png(tmp_path / "x.png", classes, GLEASON_SCHEME, ignore_value=0)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), [[1, 0]])


def test_expert_files_unchanged_by_reading_and_writing_elsewhere(tmp_path):
    experts = tmp_path / "Maps1_T"
    save_mask(experts / "c_classimg_nonconvex.png", np.array([[0, 1, 6], [3, 4, 5]], np.uint8))
    Image.fromarray(_rgb(2, 3)).save(tmp_path / "c.jpg")
    files = [experts / "c_classimg_nonconvex.png", tmp_path / "c.jpg"]
    digests = [_sha(p) for p in files]
    mtimes = [p.stat().st_mtime_ns for p in files]
    classes = read_mask(files[0], GLEASON_SCHEME, shape=read_image(files[1]).shape)
    (tmp_path / "out").mkdir()
    write_mask_png(tmp_path / "out" / "c_classimg_nonconvex.png", classes, GLEASON_SCHEME)
    assert [_sha(p) for p in files] == digests
    assert [p.stat().st_mtime_ns for p in files] == mtimes


def test_written_mask_is_readable_by_others(tmp_path):
    path = write_mask_png(tmp_path / "m.png", np.zeros((2, 2), np.uint8), GLEASON_SCHEME)
    assert path.stat().st_mode & 0o044 == 0o044
