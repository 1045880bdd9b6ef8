"""Pyramidal OME-TIFF: what tifffile reads back is what was written, level by level, with its pixel size."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import tifffile

from trainer.errors import InputError
from trainer.ome_tiff import pixel_size_um, write_ome_tiff


def _pixels(path) -> dict:
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        return tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]


def test_float_map_reads_back_bit_exact_with_its_levels_and_pixel_size(tmp_path):
    rng = np.random.default_rng(0)
    error_map = rng.random((1100, 1300), dtype=np.float32)
    error_map[:40, :] = np.nan  # off the tissue
    path = write_ome_tiff(tmp_path / "c1_error_1.ome.tif", error_map, 0.25, ["error:1"])
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        levels = [level.asarray() for level in series.levels]
        assert series.axes == "YX" and tif.pages[0].is_tiled and len(tif.pages[0].subifds) == 2
    # level 0 bit for bit (NaN included); halved until the smaller side is ≤ 512
    assert levels[0].dtype == np.float32
    np.testing.assert_array_equal(levels[0].view(np.uint32), error_map.view(np.uint32))
    assert [lv.shape for lv in levels] == [(1100, 1300), (550, 650), (275, 325)]
    # level 1: the mean of 2×2 blocks, computed here by reshaping (NaN stays NaN)
    expected = error_map.astype(np.float64).reshape(550, 2, 650, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(levels[1], expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(levels[1][:20]).all() and not np.isnan(levels[1][20:]).any()
    pixels = _pixels(path)
    assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeY"]) == (0.25, 0.25)
    assert pixels["PhysicalSizeXUnit"] == "µm" and pixels["Channel"]["Name"] == "error:1"
    assert pixel_size_um(path) == (0.25, 0.25)


def test_label_stack_keeps_its_values_and_states_no_pixel_size_when_unknown(tmp_path):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 6, (3, 1030, 600), dtype=np.uint8)
    path = write_ome_tiff(tmp_path / "s.ome.tif", stack, channel_names=["a", "b", "c"], min_size=256)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        levels = [level.asarray() for level in series.levels]
        assert series.axes == "CYX"
    np.testing.assert_array_equal(levels[0], stack)
    # labels are subsampled (every other pixel, ceil of odd sizes), never averaged into new values
    np.testing.assert_array_equal(levels[1], stack[:, ::2, ::2])
    np.testing.assert_array_equal(levels[2], stack[:, ::4, ::4])
    assert [lv.shape[1:] for lv in levels] == [(1030, 600), (515, 300), (258, 150)]
    pixels = _pixels(path)
    assert "PhysicalSizeX" not in pixels and [c["Name"] for c in pixels["Channel"]] == ["a", "b", "c"]
    assert pixel_size_um(path) is None


def test_a_full_disk_leaves_no_file_and_the_old_one_intact(tmp_path, monkeypatch):
    target = tmp_path / "m.ome.tif"
    target.write_bytes(b"an earlier export")

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile.FileHandle, "write", no_space)
    with pytest.raises(InputError) as info:
        write_ome_tiff(target, np.ones((600, 700), np.float32), 0.5)
    assert "m.ome.tif" in str(info.value) and "No space left on device" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.tif"]
    assert target.read_bytes() == b"an earlier export"


def test_pixel_size_from_an_input_image_where_it_states_one(tmp_path):
    image = np.zeros((64, 64, 3), np.uint8)
    ome = tmp_path / "core.ome.tif"  # written by tifffile directly, in nanometres
    tifffile.imwrite(ome, image, ome=True, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 500.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 250.0, "PhysicalSizeYUnit": "nm"})
    assert pixel_size_um(ome) == pytest.approx((0.25, 0.5))
    scanner = tmp_path / "scanner.tif"  # plain TIFF tags: 20 000 pixels per cm = 0.5 µm
    tifffile.imwrite(scanner, image, photometric="rgb", resolution=(20000, 20000), resolutionunit="CENTIMETER")
    assert pixel_size_um(scanner) == pytest.approx((0.5, 0.5))
    screen = tmp_path / "screen.tif"  # 72 dpi is a default, not a measurement
    tifffile.imwrite(screen, image, photometric="rgb", resolution=(72, 72), resolutionunit="INCH")
    assert pixel_size_um(screen) is None
    jpeg = tmp_path / "core.jpg"
    jpeg.write_bytes(b"not read")
    assert pixel_size_um(jpeg) is None
