"""BU-BIL dataset 1 (Gurari et al., WACV 2015) as users have it: layout, classes, quirks, gold standard."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer.data import load_core, open_dataset
from trainer.data.bubil import BUBIL_SCHEME, gold_standard, natural_key, open_bubil
from trainer.data.check import check_dataset
from trainer.data.splits import default_split
from trainer.errors import InputError

from tests.fakes_bubil import FAKE_EXPERTS, write_fake_bubil
from tests.paths import SHARED

#: The published set, beside the clone (CI: ../shared next to the repository).
REAL = SHARED / "data" / "bu-bil-dataset1"


@pytest.fixture
def fake(tmp_path):
    root = tmp_path / "bu-bil-dataset1"
    return root, write_fake_bubil(root)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_experts_cores_and_notes(fake):
    root, written = fake
    ds = open_dataset(root)
    assert ds.layout == "bubil" and ds.scheme == BUBIL_SCHEME
    assert ds.scheme.names == ("background", "cell")
    # natural order: Person10 after Person2; the gold standard is not an expert
    assert ds.experts == ("Person1_Amira", "Person1_ImageJ", "Person2_Amira", "Person10_ImageJ")
    assert ds.names == ["B01", "B02", "B03", "B04"]
    assert "Person2_Amira" not in ds.core("B03").masks  # the one missing annotation
    assert ds.core("B03").experts == ("Person1_Amira", "Person1_ImageJ", "Person10_ImageJ")
    # the capitalised Seg_B04.png is Person1_Amira's mask of B04, with a note naming it
    assert ds.core("B04").masks["Person1_Amira"] == written["capital"]
    assert any("Person1_Amira/Seg_B04.png" in n for n in ds.notes)


def test_pixels_grey_image_as_rgb_masks_as_classes(fake):
    root, written = fake
    ds = open_dataset(root)
    for name in ds.names:
        core = load_core(ds.core(name), ds.scheme)
        assert core.image.shape == (40, 48, 3) and core.image.dtype == np.uint8
        # grey (and B02's palette-grey) -> three equal channels holding the grey level
        assert (core.image == written["images"][name][..., None]).all()
        for expert, mask in core.masks.items():
            np.testing.assert_array_equal(mask, written["masks"][expert][name], err_msg=f"{expert} {name}")
    # the stray pixel (value 24, inside a cell) is read as cell
    path, (y, x), value = written["stray"]
    assert value == 24
    core = load_core(ds.core("B02"), ds.scheme)
    assert core.masks["Person1_ImageJ"][y, x] == 1


def test_gold_standard_is_separate_and_true_means_background(fake):
    root, written = fake
    ds = open_bubil(root)
    assert not any("GoldStandard" in str(p) for c in ds.cores for p in c.masks.values())
    for name in ds.names:
        gold = gold_standard(root, name, shape=(40, 48))
        assert gold.dtype == np.uint8
        np.testing.assert_array_equal(gold, written["gold"][name])
    # the file itself is 1-bit with True = background
    from PIL import Image

    with Image.open(root / "GoldStandard" / "seg_B01.png") as img:
        assert img.mode == "1"
        np.testing.assert_array_equal(np.asarray(img), written["gold"]["B01"] == 0)
    with pytest.raises(InputError, match="differs from its image"):
        gold_standard(root, "B01", shape=(41, 48))
    (root / "GoldStandard" / "seg_B02.png").unlink()
    with pytest.raises(InputError, match="no gold standard for image 'B02'") as err:
        gold_standard(root, "B02")
    assert err.value.path == root / "GoldStandard"


def test_check_notes_the_stray_value_naming_the_file(fake):
    root, written = fake
    before = _digest(root)
    ds = open_dataset(root)
    report = check_dataset(ds, cache=False)
    assert report.ok, report.table()
    assert [(n.path, n.core) for n in report.notes] == [(written["stray"][0], "B02")]
    assert "24" in report.notes[0].problem and "cell" in report.notes[0].problem
    assert "note: ExpertsAnnotations/Person1_ImageJ/seg_B02.png: " in report.summary()
    assert report.classes == {n: frozenset({0, 1}) for n in ds.names}
    assert _digest(root) == before  # experts' files are only read


def test_check_cli_prints_the_note(fake, capsys):
    from trainer.cli import main

    root, _ = fake
    assert main(["check", "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "no problems" in out and "Person1_ImageJ/seg_B02.png" in out and "24" in out


def test_default_split_is_stratified_over_every_core(fake):
    root, _ = fake
    ds = open_dataset(root)
    split = default_split(ds, val_fraction=0.25, test_fraction=0.25)
    assert sorted(split.train + split.val + split.test) == ds.names and split.test
    assert "stratified" in split.reason


def test_bad_folders_name_the_file(tmp_path, fake):
    root, _ = fake
    # a mask whose size differs from its image: the check names it
    from PIL import Image

    bad = root / "ExpertsAnnotations" / "Person1_Amira" / "seg_B01.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad)
    report = check_dataset(open_dataset(root), cache=False)
    assert [p.path for p in report.problems] == [bad] and "differs" in report.problems[0].problem
    # no expert folder with masks
    empty = tmp_path / "empty"
    (empty / "RawImages").mkdir(parents=True)
    shutil.copy(root / "RawImages" / "B01.png", empty / "RawImages")
    (empty / "ExpertsAnnotations" / "Person1_Amira").mkdir(parents=True)
    with pytest.raises(InputError, match="no expert folder holds any") as err:
        open_dataset(empty)
    assert err.value.path == empty / "ExpertsAnnotations"
    # without GoldStandard/ the set still opens for training, with a note
    shutil.rmtree(root / "GoldStandard")
    assert any("GoldStandard" in n for n in open_dataset(root).notes)


def test_natural_key():
    assert sorted(["Person10_A", "Person2_A", "Person1_B"], key=natural_key) == ["Person1_B", "Person2_A", "Person10_A"]
    assert list(FAKE_EXPERTS) == sorted(FAKE_EXPERTS, key=natural_key)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the published BU-BIL dataset 1 is not at {REAL}")
def test_the_published_set():
    ds = open_dataset(REAL)
    assert ds.layout == "bubil" and len(ds) == 35
    assert ds.names == [f"B{k:02d}" for k in range(1, 36)]
    assert ds.experts == tuple(f"Person{k}_{tool}" for k in range(1, 6) for tool in ("Amira", "ImageJ"))
    # Person3_Amira's four "missing" masks are there, named Seg_…: every core has all ten experts
    capital = sorted(n.split("/")[2].split(":")[0] for n in ds.notes if "Person3_Amira/Seg_" in n)
    assert capital == ["Seg_B18.png", "Seg_B24.png", "Seg_B25.png", "Seg_B31.png"]
    assert all(len(c.masks) == 10 for c in ds.cores)
    # cells are a few per cent of each image, in the experts' masks and in the gold standard
    core = load_core(ds.core("B04"), ds.scheme)
    gold = gold_standard(REAL, "B04", core.image.shape[:2])
    assert core.image.shape == (811, 1024, 3)
    assert 0.01 < gold.mean() < 0.3
    for expert, mask in core.masks.items():
        assert 0.01 < mask.mean() < 0.3, expert
        dice = 2 * (mask & gold).sum() / (mask.sum() + gold.sum())
        assert dice > 0.7, expert  # the experts agree with the gold standard (0.85-1.0 on B04)
    # the stray value: one pixel of 24 in Person5_Amira's B04, inside a cell (gold: cell)
    report = check_dataset(ds, names=["B04"], cache=False)
    assert report.ok and [n.path.relative_to(REAL).as_posix() for n in report.notes] == [
        "ExpertsAnnotations/Person5_Amira/seg_B04.png"]
    assert core.masks["Person5_Amira"][629, 289] == 1 and gold[629, 289] == 1
