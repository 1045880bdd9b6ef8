"""The data check (every core, every mask, all problems at once) and the file formats users bring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from tests.broken_inputs import image_of, mask_of
from PIL import Image

from trainer.cli import main
from trainer.data import open_dataset
from trainer.data.check import DataProblemsError, check_dataset, checked_split, problems_by_core
from trainer.data.io import image_header, read_image, read_mask
from trainer.errors import InputError

from tests.fakes import make_fake_gleason
from tests.fakes_formats import save_mask_as, stripes, write_labelled_generic, write_ome_pyramid


def break_every_way(root):
    """The catalogue's dataset breakers, each on its own core; returns {file name: reason needle}."""
    corrupt = image_of(root, "slide001_core001")
    corrupt.write_bytes(b"\xff\xd8 this is not a jpeg")
    truncated = image_of(root, "slide001_core002")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    floats = image_of(root, "slide002_core001")
    floats.unlink()
    Image.fromarray(np.zeros((48, 40), np.float32)).save(floats.with_suffix(".tif"))
    Image.fromarray(np.ones((10, 10), np.uint8)).save(mask_of(root, "1", "slide002_core002"))
    seven = np.asarray(Image.open(mask_of(root, "3", "slide002_core003"))).copy()
    seven[0, 0] = 7
    Image.fromarray(seven).save(mask_of(root, "3", "slide002_core003"))
    rgb = np.asarray(Image.open(mask_of(root, "4", "slide003_core001")).convert("RGB")).copy()
    rgb[0, 0] = (1, 3, 4)
    Image.fromarray(rgb).save(mask_of(root, "4", "slide003_core001"))
    return {corrupt.name: "not an image Pillow can read", "slide002_core001.tif": "unsupported image mode",
            "slide002_core002_classimg_nonconvex.png": "differs from its image",
            "slide002_core003_classimg_nonconvex.png": "values [7]",
            "slide003_core001_classimg_nonconvex.png": "channels differ"}, truncated.name


def test_every_bad_input_in_one_run(tmp_path, capsys):
    root = make_fake_gleason(tmp_path / "data é").root
    expected, truncated = break_every_way(root)
    ds = open_dataset(root)
    quick = check_dataset(ds)
    found = {p.path.name: p.problem for p in quick.problems}
    assert set(found) == set(expected)  # the truncated JPEG's header is fine: only --full decodes it
    for name, needle in expected.items():
        assert needle in found[name] and name not in found[name]  # the reason, without the file again
    full = check_dataset(ds, full=True)
    assert {p.path.name for p in full.problems} == set(expected) | {truncated}
    by_core = problems_by_core(ds)
    assert by_core["slide004_core001"] == [] and len(by_core["slide002_core003"]) == 1
    # the CLI: one table on stdout, one line on stderr, exit 2
    assert main(["check", "--data", str(root)]) == 2
    out, err = capsys.readouterr()
    assert all(name in out for name in expected) and out.splitlines()[1].startswith("file")
    assert err.strip().splitlines() == [f"error: {root}: 5 problems in the data (listed above)"]
    # training refuses the data before its first iteration, naming the first problem and the count
    with pytest.raises(DataProblemsError, match="and 4 more problems"):
        checked_split(ds)


def test_check_of_good_data_returns_classes(tmp_path, capsys):
    cores = {"a b": {"x": [0, 1]}, "ünï": {"x": [0, 2], "y": [1]}}
    root = write_labelled_generic(tmp_path / "gen", cores)
    report = check_dataset(open_dataset(root))
    assert report.ok and report.classes == {"a b": {0, 1}, "ünï": {0, 1, 2}}
    assert report.files == 5 and report.cores == 2
    assert main(["check", "--data", str(root), "--full"]) == 0
    assert "no problems" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["P", "I16", "RGB"])
def test_mask_formats_give_the_values_written(tmp_path, kind):
    values = stripes([0, 1, 3, 4, 5, 6], (24, 20))
    path = tmp_path / f"mask {kind} é.png"
    save_mask_as(path, values, kind)
    from trainer.data.classes import GLEASON_SCHEME

    expected = np.vectorize(GLEASON_SCHEME.values.get)(values)
    np.testing.assert_array_equal(read_mask(path, GLEASON_SCHEME, shape=(24, 20)), expected)


def test_rgb_mask_with_colours_is_a_clear_error(tmp_path):
    from trainer.data.classes import GLEASON_SCHEME

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 1
    rgb[..., 1] = 3
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour.png: RGB mask whose channels differ"):
        read_mask(tmp_path / "colour.png", GLEASON_SCHEME)


def test_image_formats(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "core é.PNG")
    Image.fromarray(image).save(tmp_path / "core.JPG", quality=95)
    tifffile.imwrite(tmp_path / "plain.tif", image, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tiff", np.moveaxis(image, -1, 0), photometric="rgb", planarconfig="separate")
    for name in ("core é.PNG", "plain.tif", "planar.tiff"):
        np.testing.assert_array_equal(read_image(tmp_path / name), image)
        assert image_header(tmp_path / name).shape == (40, 56)
    # lossy: compare with Pillow's own decoding of the upper-case .JPG
    np.testing.assert_array_equal(read_image(tmp_path / "core.JPG"), np.asarray(Image.open(tmp_path / "core.JPG")))


def test_pyramidal_ome_tiff_reads_level_0(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
    path = write_ome_pyramid(tmp_path / "slide ü.ome.tif", image, levels=3)
    with tifffile.TiffFile(path) as tif:  # what was written: a pyramid, level 0 first
        assert tif.is_ome and [lv.shape[:2] for lv in tif.series[0].levels] == [(64, 48), (32, 24), (16, 12)]
    np.testing.assert_array_equal(read_image(path), image)
    assert image_header(path).shape == (64, 48)


def test_pyramidal_ome_tiff_levels_open_lazily(tmp_path):
    """The viewer's path: every level as a lazy (zarr) array, read tile by tile when sliced."""
    from trainer.data.io import open_tiff_levels

    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
    path = write_ome_pyramid(tmp_path / "slide ü.ome.tif", image, levels=3, tile=16)
    levels = open_tiff_levels(path)
    assert [lv.shape for lv in levels] == [(64, 48, 3), (32, 24, 3), (16, 12, 3)]
    assert not any(isinstance(lv, np.ndarray) for lv in levels)
    import zarr

    assert all(isinstance(lv, zarr.Array) for lv in levels)  # tifffile's zarr view of the tiles
    np.testing.assert_array_equal(levels[0][16:32, 16:32], image[16:32, 16:32])
    np.testing.assert_array_equal(levels[1][:], image[::2, ::2])
    np.testing.assert_array_equal(levels[2][:], image[::4, ::4])
    # not such a TIFF: the caller decodes the file whole
    Image.fromarray(image).save(tmp_path / "plain.png")
    assert open_tiff_levels(tmp_path / "plain.png") is None
    tifffile.imwrite(tmp_path / "grey.tif", image[..., 0])
    assert open_tiff_levels(tmp_path / "grey.tif") is None


def test_the_viewer_opens_a_large_ome_tiff_from_its_lazy_levels(tmp_path, monkeypatch):
    import napari_gleason._core_sources as sources

    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = write_ome_pyramid(tmp_path / "core.ome.tif", image, levels=3)
    monkeypatch.setattr(sources, "COARSE_ABOVE", 32)  # a "large" core at test size
    called = []
    levels = sources.image_for_viewer(path, first=lambda: called.append(1))
    assert called == [1] and len(levels) == 3 and not isinstance(levels[0], np.ndarray)
    np.testing.assert_array_equal(np.asarray(levels[0]), image)
    monkeypatch.setattr(sources, "COARSE_ABOVE", 2048)  # small: decoded whole, as before
    np.testing.assert_array_equal(sources.image_for_viewer(path), image)


def test_generic_dataset_with_every_format_trains_its_split(tmp_path):
    root = tmp_path / "mixed ü"
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True)
    shape = (32, 32)
    for i, (suffix, kind) in enumerate([(".JPG", "L"), (".png", "P"), (".tif", "I16"), (".ome.tif", "RGB")]):
        name = f"core {i}"
        img = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        path = root / "images" / f"{name}{suffix}"
        if suffix == ".ome.tif":
            write_ome_pyramid(path, img, levels=2)
        else:
            Image.fromarray(img).save(path)
        save_mask_as(root / "masks" / "ann" / f"{name}.png", stripes([0, 1 + i % 2], shape), kind)
    ds = open_dataset(root)
    assert ds.names == [f"core {i}" for i in range(4)]  # slide.ome.tif is core "slide", its mask slide.png
    report = check_dataset(ds, full=True)
    assert report.ok, report.table()
    assert report.classes == {f"core {i}": {0, 1 + i % 2} for i in range(4)}  # palette: indices, not colours
    split = checked_split(ds)
    assert sorted(split.train + split.val + split.test) == sorted(ds.names)


def test_no_check_trains_past_a_problem_the_run_never_reads(tmp_path, capsys):
    from tests.broken_data import unsampled_mask, value_7_on_unsampled_core

    root = make_fake_gleason(tmp_path / "g").root
    value_7_on_unsampled_core(root)
    args = ["train", "--data", str(root), "--model", "pspnet", "--encoder", "resnet18", "--size", "32", "--iters", "1",
            "--device", "cpu", "--no-reweight", "--loss", "focal"]
    assert main([*args, "--out", str(tmp_path / "checked")]) == 2
    assert unsampled_mask(root).name in capsys.readouterr().err and not (tmp_path / "checked").exists()
    assert main([*args, "--out", str(tmp_path / "unchecked"), "--no-check"]) == 0
    assert (tmp_path / "unchecked" / "last.pt").is_file()


# --- the check's cache: a second check of an unchanged dataset decodes nothing -----------------------
def _age_all(root, seconds_ago: int = 60) -> int:
    """Set every file's mtime well in the past (the cache skips files changed in the last 2 s)."""
    import os
    import time

    t = time.time_ns() - seconds_ago * 10**9
    for f in root.rglob("*"):
        if f.is_file():
            os.utime(f, ns=(t, t))
    return t


def test_check_cache_decodes_only_touched_files(tmp_path, monkeypatch):
    import os

    import trainer.data.check as check
    from tests.broken_inputs import CORE

    root = make_fake_gleason(tmp_path / "data").root
    t = _age_all(root)
    ds = open_dataset(root)
    decoded = []
    real = check.read_mask_value_set
    monkeypatch.setattr(check, "read_mask_value_set",
                        lambda p, shape=None, scheme=None: decoded.append(p.name) or real(p, shape, scheme))
    cache = tmp_path / "cache"
    uncached = check_dataset(ds, cache=False)
    masks = sum(len(ds.core(n).masks) for n in ds.names)
    assert len(decoded) == masks
    decoded.clear()
    first = check_dataset(ds, cache=cache)
    assert len(decoded) == masks and len(list(cache.glob("*.json"))) == 1
    decoded.clear()
    second = check_dataset(ds, cache=cache)
    assert decoded == [] and second.classes == first.classes == uncached.classes and second.ok
    # touched (same bytes, new mtime): decoded again, alone
    touched = mask_of(root, "1", CORE)
    os.utime(touched, ns=(t + 10**9, t + 10**9))
    check_dataset(ds, cache=cache)
    assert decoded == [touched.name]
    # edited to hold a 7: found, and still found from the cache on the next check without decoding
    seven = np.asarray(Image.open(touched)).copy()
    seven[0, 0] = 7
    Image.fromarray(seven).save(touched)
    os.utime(touched, ns=(t + 2 * 10**9, t + 2 * 10**9))
    decoded.clear()
    found = check_dataset(ds, cache=cache)
    again = check_dataset(ds, cache=cache)
    assert decoded == [touched.name]
    assert [(p.path, p.problem) for p in again.problems] == [(p.path, p.problem) for p in found.problems]
    assert len(found.problems) == 1 and "values [7]" in found.problems[0].problem
    assert found.problems == check_dataset(ds, cache=False).problems


def test_check_cache_damaged_file_is_rebuilt_and_fresh_files_not_cached(tmp_path, monkeypatch):
    import json

    import trainer.data.check as check

    root = make_fake_gleason(tmp_path / "data").root
    ds = open_dataset(root)
    cache = tmp_path / "cache"
    decoded = []
    real = check.read_mask_value_set
    monkeypatch.setattr(check, "read_mask_value_set",
                        lambda p, shape=None, scheme=None: decoded.append(p.name) or real(p, shape, scheme))
    check_dataset(ds, cache=cache)  # the files were just written: checked, but not trusted to the cache
    check_dataset(ds, cache=cache)
    masks = sum(len(ds.core(n).masks) for n in ds.names)
    assert len(decoded) == 2 * masks
    _age_all(root)
    reference = check_dataset(ds, cache=cache)
    (cache_file,) = cache.glob("*.json")
    cache_file.write_text('{"format": 1, "entries": {"x": [')  # damaged
    decoded.clear()
    rebuilt = check_dataset(ds, cache=cache)
    assert len(decoded) == masks and rebuilt.classes == reference.classes
    assert json.loads(cache_file.read_text())["format"] == check.CACHE_FORMAT  # rewritten whole
    decoded.clear()
    check_dataset(ds, cache=cache)
    assert decoded == []


def test_cache_and_settings_folders_follow_the_os_conventions(monkeypatch, tmp_path):
    """No hard-coded ~/.cache or ~/.config: platformdirs decides, the environment overrides."""
    from platformdirs import user_cache_dir, user_config_dir

    from napari_gleason._recent import settings_dir
    from trainer.data.check import default_cache_folder

    monkeypatch.delenv("NAPARI_GLEASON_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg config"))
    assert default_cache_folder() == Path(user_cache_dir("napari-gleason", appauthor=False)) / "check"
    assert str(default_cache_folder()).startswith(str(tmp_path / "xdg cache"))  # XDG honoured on Linux
    monkeypatch.setenv("NAPARI_GLEASON_CACHE", str(tmp_path / "mine"))
    assert default_cache_folder() == tmp_path / "mine" / "check"
    monkeypatch.delenv("NAPARI_GLEASON_HOME", raising=False)
    assert settings_dir() == Path(user_config_dir("napari-gleason", appauthor=False))
    assert str(settings_dir()).startswith(str(tmp_path / "xdg config"))
