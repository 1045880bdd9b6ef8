"""The reader without a viewer: which paths it takes, what layers it returns, how it fails."""

import numpy as np
from tests.napari_gleason.helpers_plugin import A, B, blocks, jpeg_core, write_generic

from napari_gleason._core_sources import dataset_root_of_image
from napari_gleason._reader import napari_get_reader


def _roles(tuples):
    return [kw["metadata"]["napari_gleason"]["role"] for _, kw, _ in tuples]


def test_core_image_gives_image_and_one_labels_layer_per_expert(two_expert_dataset):
    path = two_expert_dataset / "Train Imgs" / "c2.png"
    reader = napari_get_reader(str(path))
    assert callable(reader)
    tuples = reader(str(path))
    assert _roles(tuples) == ["image", "expert:1", "expert:3"]
    data, kw, kind = tuples[1]
    assert kind == "labels"
    np.testing.assert_array_equal(data, np.array([1, 3, 4, 5], np.uint8)[blocks(B, 4)])
    assert kw["metadata"]["napari_gleason"]["origin"]["layout"] == "gleason2019"


def test_generic_core_image(tmp_path):
    root = write_generic(tmp_path / "gen", {"a": {"ann1": A, "ann2": B}, "b": {"ann2": A}}, shape=A.shape)
    tuples = napari_get_reader(str(root / "images" / "a.png"))(str(root / "images" / "a.png"))
    assert _roles(tuples) == ["image", "expert:ann1", "expert:ann2"]


def test_reader_declines_paths_it_does_not_handle(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"not looked at")
    (tmp_path / "plain").mkdir()
    (tmp_path / "other.zarr").mkdir()
    for p in ("photo.png", "plain", "other.zarr", "missing.png"):
        assert napari_get_reader(str(tmp_path / p)) is None
    assert napari_get_reader([str(tmp_path / "a.png"), str(tmp_path / "b.png")]) is None


def test_dataset_root_of_image_layouts(tmp_path):
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "x.jpg") == tmp_path
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "Train Imgs" / "x.jpg") == tmp_path
    assert dataset_root_of_image(tmp_path / "Test_imgs" / "x.tif") == tmp_path
    assert dataset_root_of_image(tmp_path / "Train Imgs" / "x.txt") is None


# --- coarse first: a large JPEG core opens from its draft level ---------------------------------


def test_large_jpeg_opens_from_its_draft_level_while_full_resolution_decodes(tmp_path, monkeypatch):
    """First frame from a 1/4-size DCT decode; level 0 arrives from a background decode, and
    reading it gives exactly the full decode. (Thresholds lowered so a 128×96 core counts as large.)"""
    import threading

    from napari_gleason import _core_sources
    from napari_gleason._core_sources import Deferred
    from trainer.data.io import read_image

    monkeypatch.setattr(_core_sources, "COARSE_ABOVE", 32)
    monkeypatch.setattr(_core_sources, "SMALLEST_LEVEL", 16)
    path, classes = jpeg_core(tmp_path / "big")
    release = threading.Event()
    full_decodes = []

    def held_full_decode(p):
        assert release.wait(30)
        full_decodes.append(p)
        return read_image(p)

    monkeypatch.setattr(_core_sources, "read_image", held_full_decode)
    tuples = napari_get_reader(str(path))(str(path))  # returns while the full decode is held
    assert _roles(tuples) == ["image", "expert:1"] and not full_decodes
    levels, kw, _ = tuples[0]
    assert kw["multiscale"] and [lvl.shape[:2] for lvl in levels] == [(128, 96), (64, 48), (32, 24), (16, 12)]
    assert isinstance(levels[0], Deferred) and not levels[0].done
    full = read_image(path)
    # the draft level is the image at 1/4: close to a 4×4 box mean of the full decode
    box = full.reshape(32, 4, 24, 4, 3).mean(axis=(1, 3))
    assert np.abs(levels[2].astype(float) - box).mean() < 4
    release.set()
    np.testing.assert_array_equal(np.asarray(levels[0]), full)
    np.testing.assert_array_equal(levels[1][:], full[::2, ::2])
    assert full_decodes == [path]
    np.testing.assert_array_equal(tuples[1][0], np.array([1, 3, 4, 5], np.uint8)[classes])  # full-resolution labels


def test_small_jpeg_and_png_cores_open_whole(tmp_path, two_expert_dataset):
    path, _ = jpeg_core(tmp_path / "small", shape=(64, 48))
    image = napari_get_reader(str(path))(str(path))[0][0]
    assert isinstance(image, np.ndarray) and image.shape == (64, 48, 3)


def test_broken_jpeg_is_one_notification_naming_it(tmp_path, monkeypatch):
    from napari_gleason import _core_sources, _reader

    monkeypatch.setattr(_core_sources, "COARSE_ABOVE", 32)
    path, _ = jpeg_core(tmp_path / "broken")
    path.write_bytes(path.read_bytes()[:600])  # truncated: the draft decode finds it
    shown = []
    monkeypatch.setattr(_reader, "show_error", shown.append)
    assert _reader.read(str(path)) == _reader.NOTHING
    assert len(shown) == 1 and "j.jpg" in shown[0]


def test_dataset_folder_gives_its_first_core_marked_for_the_browser(two_expert_dataset, monkeypatch):
    from napari_gleason import _reader

    monkeypatch.setattr(_reader, "show_info", lambda message: None)
    tuples = napari_get_reader(str(two_expert_dataset))(str(two_expert_dataset))
    assert _roles(tuples) == ["image", "expert:1", "expert:2"]
    meta = tuples[0][1]["metadata"]["napari_gleason"]
    assert meta["core"] == "c1" and meta["browse"] == str(two_expert_dataset)
    assert len({kw["metadata"]["napari_gleason"]["opened"] for _, kw, _ in tuples}) == 1  # one opening


def test_opening_a_core_and_its_roughness_map_imports_neither_qt_nor_torch(two_expert_dataset):
    """In a fresh process: the reader imports no Qt, and drawing the roughness map loads no torch."""
    import subprocess
    import sys

    code = f"""
import sys
import numpy as np
from napari_gleason._reader import read
layers = read({str(two_expert_dataset / "Train Imgs" / "c1.png")!r})
assert [kw["metadata"]["napari_gleason"]["role"] for _, kw, _ in layers] == ["image", "expert:1", "expert:2"]
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"))
assert not qt, qt
from napari_gleason._qt.roughness import RoughnessParams, roughness_job
heat, _ = roughness_job(np.asarray(layers[0][0]), RoughnessParams(size=32))
assert heat.shape == (32, 32) and float(heat.min()) >= 1.0
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_a_dataset_folder_whose_first_core_is_broken_opens_the_next_and_names_the_broken_file(
        two_expert_dataset, monkeypatch):
    import napari_gleason._reader as reader_module

    errors = []
    monkeypatch.setattr(reader_module, "show_error", errors.append)
    monkeypatch.setattr(reader_module, "show_info", lambda *_: None)
    broken = two_expert_dataset / "Train Imgs" / "c1.png"
    broken.write_bytes(b"not a PNG")
    tuples = napari_get_reader(str(two_expert_dataset))(str(two_expert_dataset))
    assert _roles(tuples) == ["image", "expert:1", "expert:3"]  # c2's experts
    assert tuples[0][1]["metadata"]["napari_gleason"]["browse"] == str(two_expert_dataset)
    assert len(errors) == 1 and "c1.png" in errors[0] and "c2 is open instead" in errors[0]
    (two_expert_dataset / "Train Imgs" / "c2.png").write_bytes(b"not a PNG either")
    errors.clear()
    assert napari_get_reader(str(two_expert_dataset))(str(two_expert_dataset)) == reader_module.NOTHING
    assert len(errors) == 1 and "none of its 2 cores opens" in errors[0]
