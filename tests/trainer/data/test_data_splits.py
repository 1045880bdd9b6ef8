"""Paper §3.1 split on the fake Gleason set, and split files."""

from __future__ import annotations

import json

import pytest

from trainer.data import open_dataset
from trainer.data.splits import Split, load_split, paper_split, save_split
from trainer.errors import InputError

from tests.fakes import make_fake_gleason


@pytest.fixture
def gleason(tmp_path):
    make_fake_gleason(tmp_path / "g")
    return open_dataset(tmp_path / "g")


def test_paper_split_counts_on_fake(gleason):
    split = paper_split(gleason, val_fraction=0.2, seed=0)
    # By construction of GLEASON_CORES: 2 cores by all six; 5 others by 1, 3 and 4; 2 excluded.
    assert split.test == ["slide001_core001", "slide001_core002"]
    assert split.counts() == {"train": 4, "val": 1, "test": 2}
    assert sorted(split.train + split.val) == sorted(
        ["slide002_core001", "slide002_core002", "slide002_core003", "slide003_core001", "slide_é_ü_core005"]
    )
    assert split.excluded == ["slide004_core001", "slide004_core002"]
    assert "train 4" in split.summary() and "test 2" in split.summary() and "2 excluded" in split.summary()


def test_split_is_seeded_and_keeps_one_val_core(gleason):
    assert paper_split(gleason, seed=5) == paper_split(gleason, seed=5)
    vals = {tuple(paper_split(gleason, seed=s).val) for s in range(8)}
    assert len(vals) > 1  # the seed matters
    tiny = paper_split(gleason, val_fraction=0.01)
    assert len(tiny.val) == 1
    assert len(paper_split(gleason, val_fraction=0.0).val) == 0


def test_unknown_training_expert(gleason):
    with pytest.raises(InputError, match="'9'"):
        paper_split(gleason, train_experts=("1", "9"))


def test_split_file_round_trip(gleason, tmp_path):
    split = paper_split(gleason)
    path = save_split(split, tmp_path / "split ü.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"train", "val", "test"}
    loaded = load_split(path, gleason)
    assert (loaded.train, loaded.val, loaded.test) == (split.train, split.val, split.test)
    assert loaded.excluded == split.excluded


def test_split_file_with_unknown_names(gleason, tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["slide002_core001", "ghost_core"], "val": [], "test": []}))
    load_split(path)  # without a dataset nothing is checked
    with pytest.raises(InputError) as info:
        load_split(path, gleason)
    assert "ghost_core" in str(info.value) and info.value.path == path


@pytest.mark.parametrize(
    "content", ["{", "[1, 2]", json.dumps({"train": "a"}), json.dumps({"train": ["a"], "test": ["a"]})]
)
def test_bad_split_files(tmp_path, content):
    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(InputError, match="split.json"):
        load_split(path)


def test_split_counts_and_summary_without_excluded():
    s = Split(["a", "b"], ["c"], [])
    assert s.counts() == {"train": 2, "val": 1, "test": 0}
    assert s.summary() == "train 2 · val 1 · test 0 cores"


def test_a_dataset_every_expert_annotated_is_all_test_for_evaluation(tmp_path):
    all_six = ("1", "2", "3", "4", "5", "6")
    ds = open_dataset(make_fake_gleason(tmp_path / "all", cores={"a_core1": all_six, "a_core2": all_six}).root)
    with pytest.raises(InputError, match="nothing to train on"):
        paper_split(ds)  # training needs cores outside the test set
    split = paper_split(ds, require_train=False)  # evaluation does not
    assert split.test == ["a_core1", "a_core2"] and split.train == [] and split.val == []
