"""Dataset layouts: Gleason 2019 and generic, detection, and every bad folder."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from trainer.data import load_core, open_dataset
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX
from trainer.data.generic import open_generic
from trainer.data.gleason2019 import is_gleason_dir, open_gleason2019
from trainer.errors import InputError

from tests.fakes import GENERIC_CLASSES, GLEASON_CORES, make_fake_generic, make_fake_gleason, save_mask

# Independent reference for the Gleason value map (paper §3.1).
GLEASON_REF = {0: 0, 1: 0, 6: 0, 3: 1, 4: 2, 5: 3}


def _ref_classes(raw, mapping):
    out = np.full(raw.shape, -1, np.int64)
    for v, c in mapping.items():
        out[raw == v] = c
    assert (out >= 0).all()
    return out


def test_gleason_fake_lists_cores_experts_and_notes(tmp_path):
    fake = make_fake_gleason(tmp_path / "Gleason 2019")
    ds = open_dataset(tmp_path / "Gleason 2019")
    assert ds.layout == "gleason2019" and ds.scheme == GLEASON_SCHEME
    assert ds.experts == ("1", "2", "3", "4", "5", "6")
    expected = {n: e for n, e in GLEASON_CORES.items() if e}
    assert {c.name: tuple(sorted(c.masks)) for c in ds.cores} == expected
    assert any("slide005_core001" in n and "skipped" in n for n in ds.notes)
    assert "slide005_core001" not in ds
    assert ds.core("slide004_core002").experts == ("2",)  # a core with one expert
    assert ds.core("slide_é_ü_core005").image_path == fake.root / "Train Imgs" / "slide_é_ü_core005.jpg"


def test_gleason_value_map_on_every_core_and_expert(tmp_path):
    fake = make_fake_gleason(tmp_path / "g")
    ds = open_gleason2019(tmp_path / "g")
    seen = set()
    for rec in ds.cores:
        loaded = load_core(rec, ds.scheme)
        assert loaded.image.shape == (48, 40, 3) and loaded.image.dtype == np.uint8
        assert set(loaded.masks) == set(GLEASON_CORES[rec.name])
        for expert, classes in loaded.masks.items():
            raw = fake.raw[(rec.name, expert)]
            seen |= set(np.unique(raw).tolist())
            np.testing.assert_array_equal(classes, _ref_classes(raw, GLEASON_REF))
    assert seen == {0, 1, 3, 4, 5, 6}  # value 6 (benign) really was exercised


@pytest.mark.parametrize("folder", ["Train_imgs", "Test_imgs"])
def test_gleason_alternative_image_folders(tmp_path, folder):
    make_fake_gleason(tmp_path, {"a": ("1",), "b": ("1", "2")}, image_dir=folder, image_suffix=".png")
    ds = open_dataset(tmp_path)
    assert ds.names == ["a", "b"] and ds.experts == ("1", "2")
    assert any("Maps3_T" in n for n in ds.notes)  # absent expert folders are noted, not fatal


def test_gleason_missing_image_folder(tmp_path):
    make_fake_gleason(tmp_path, {"a": ("1",)})
    shutil.rmtree(tmp_path / "Train Imgs")
    with pytest.raises(InputError, match="Train Imgs"):
        open_gleason2019(tmp_path)


def test_gleason_empty_image_folder_is_named(tmp_path):
    make_fake_gleason(tmp_path, {"a": ("1",)})
    for p in (tmp_path / "Train Imgs").iterdir():
        p.unlink()
    with pytest.raises(InputError) as info:
        open_dataset(tmp_path)
    assert info.value.path == tmp_path / "Train Imgs"


def test_gleason_empty_maps_folder_is_named(tmp_path):
    make_fake_gleason(tmp_path, {"a": ("1",)})
    (tmp_path / "Maps2_T").mkdir()
    with pytest.raises(InputError) as info:
        open_dataset(tmp_path)
    assert info.value.path == tmp_path / "Maps2_T"


def test_gleason_without_any_maps_folder(tmp_path):
    make_fake_gleason(tmp_path, {"a": ()})
    with pytest.raises(InputError, match="Maps1_T"):
        open_gleason2019(tmp_path)


def test_gleason_unknown_value_names_file_and_values(tmp_path):
    fake = make_fake_gleason(tmp_path, {"a": ("1", "2")})
    bad = fake.raw[("a", "2")].copy()
    bad[0, 0], bad[1, 1] = 2, 9
    save_mask(fake.mask_paths[("a", "2")], bad)
    ds = open_dataset(tmp_path)
    with pytest.raises(InputError) as info:
        load_core(ds.core("a"), ds.scheme)
    msg = str(info.value)
    assert "Maps2_T" in msg and "a_classimg_nonconvex.png" in msg and "[2, 9]" in msg


def test_gleason_mask_size_mismatch(tmp_path):
    fake = make_fake_gleason(tmp_path, {"a": ("1",)})
    save_mask(fake.mask_paths[("a", "1")], np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="a_classimg_nonconvex.png.*10×10.*40×48"):
        load_core(open_dataset(tmp_path).core("a"), GLEASON_SCHEME)


def test_loading_leaves_expert_files_byte_identical(tmp_path):
    fake = make_fake_gleason(tmp_path)
    files = sorted(fake.mask_paths.values()) + sorted((tmp_path / "Train Imgs").iterdir())
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    ds = open_dataset(tmp_path)
    for rec in ds.cores:
        load_core(rec, ds.scheme)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before


def test_unknown_folder_and_missing_folder(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(InputError, match="not a dataset folder"):
        open_dataset(tmp_path / "random")
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    assert not is_gleason_dir(tmp_path / "random")


def test_generic_with_classes_json_and_ignore_value(tmp_path):
    fake = make_fake_generic(tmp_path / "my data")
    ds = open_dataset(tmp_path / "my data")
    assert ds.layout == "generic" and ds.experts == ("alice", "bob", "carol")
    assert ds.scheme.names == tuple(GENERIC_CLASSES["classes"]) and ds.scheme.ignore == (255,)
    assert ds.names == ["bild_ö", "img a", "img_b"]
    assert any("lonely" in n and "skipped" in n for n in ds.notes)
    mapping = {int(k): v for k, v in GENERIC_CLASSES["values"].items()} | {255: IGNORE_INDEX}
    saw_ignore = False
    for rec in ds.cores:
        loaded = load_core(rec, ds.scheme)
        np.testing.assert_array_equal(loaded.image, fake.images[rec.name])  # PNG: lossless
        for annotator, classes in loaded.masks.items():
            raw = fake.raw[(rec.name, annotator)]
            saw_ignore |= bool((raw == 255).any())
            np.testing.assert_array_equal(classes, _ref_classes(raw, mapping))
    assert saw_ignore
    assert set(ds.core("img_b").masks) == {"alice", "carol"}  # annotators cover different images


def test_generic_without_classes_json_infers_classes(tmp_path):
    fake = make_fake_generic(tmp_path, classes=None)
    ds = open_generic(tmp_path)
    assert ds.scheme.names == ("class0", "class1", "class2") and ds.scheme.ignore == (255,)
    loaded = load_core(ds.core("img a"), ds.scheme)
    raw = fake.raw[("img a", "bob")]
    np.testing.assert_array_equal(loaded.masks["bob"], raw)  # class i = value i, 255 = ignore


def test_generic_without_classes_json_refuses_16bit_labels(tmp_path):
    make_fake_generic(tmp_path, annotators={"a": ("x",)}, extra_images=(), classes=None)
    from PIL import Image

    Image.fromarray(np.full((32, 36), 300, np.uint16)).save(tmp_path / "masks" / "a" / "x.png")
    with pytest.raises(InputError, match="classes.json"):
        open_generic(tmp_path)


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        json.dumps({"classes": []}),
        json.dumps({"classes": ["a"], "values": {"0": 3}}),
        json.dumps({"classes": ["a", "b"], "values": {"0": 0}}),  # class b has no value
        json.dumps({"classes": ["a"], "values": {"0": 0}, "ignore": [0]}),
    ],
)
def test_generic_bad_classes_json_is_named(tmp_path, spec):
    make_fake_generic(tmp_path, annotators={"a": ("x",)}, extra_images=(), classes=None)
    (tmp_path / "classes.json").write_text(spec, encoding="utf-8")
    with pytest.raises(InputError, match="classes.json"):
        open_dataset(tmp_path)


def test_generic_missing_and_empty_folders(tmp_path):
    make_fake_generic(tmp_path, annotators={"a": ("x",)}, extra_images=())
    shutil.rmtree(tmp_path / "masks" / "a")
    with pytest.raises(InputError) as info:
        open_generic(tmp_path)
    assert info.value.path == tmp_path / "masks"
    shutil.rmtree(tmp_path / "masks")
    with pytest.raises(InputError, match="masks"):
        open_generic(tmp_path)
    (tmp_path / "masks" / "a").mkdir(parents=True)
    for p in (tmp_path / "images").iterdir():
        p.unlink()
    with pytest.raises(InputError) as info:
        open_generic(tmp_path)
    assert info.value.path == tmp_path / "images"


def test_gleason_archive_extracted_into_same_name_folder(tmp_path):
    make_fake_gleason(tmp_path / "inner", {"a": ("1", "3")})
    for name in ("Train Imgs", "Maps1_T"):  # e.g. unzip produced Maps1_T/Maps1_T/...
        (tmp_path / name).mkdir()
        (tmp_path / "inner" / name).rename(tmp_path / name / name)
    (tmp_path / "inner" / "Maps3_T").rename(tmp_path / "Maps3_T")
    ds = open_dataset(tmp_path)
    assert ds.names == ["a"] and ds.core("a").experts == ("1", "3")
    assert load_core(ds.core("a"), ds.scheme).masks["1"].shape == (48, 40)
