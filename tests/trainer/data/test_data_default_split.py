"""The default split for every dataset: the paper's rule where it applies, a stratified one elsewhere."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from PIL import Image

from trainer.cli import main
from trainer.data import open_dataset
from trainer.data.splits import default_split, paper_split, stratified_split

from tests.fakes import make_fake_gleason
from tests.fakes_formats import write_labelled_generic


def classes_on_disk(ds, name):
    """Class indices of a core's masks, read with Pillow and the scheme's table (not the code under test)."""
    found = set()
    for path in ds.core(name).masks.values():
        found |= {ds.scheme.values[int(v)] for v in np.unique(np.asarray(Image.open(path)))}
    return found


def assert_partition(split, names):
    parts = [split.train, split.val, split.test]
    assert sorted(itertools.chain(*parts)) == sorted(names)  # every core once
    assert all(len(set(a) & set(b)) == 0 for a, b in itertools.combinations(parts, 2))


def test_paper_case_unchanged(tmp_path):
    ds = open_dataset(make_fake_gleason(tmp_path / "g").root)
    split = default_split(ds, val_fraction=0.2, seed=3)
    assert split == paper_split(ds, val_fraction=0.2, seed=3)
    assert split.test == ["slide001_core001", "slide001_core002"]
    assert "paper's rule" in split.reason and "\n" not in split.reason


def test_generic_all_annotated_is_stratified(tmp_path):
    # 10 cores, every one by both annotators; class 3 is rare (3 cores), class 2 in one core only
    cores = {f"c{i:02d}": {"ann1": [0, 1], "ann2": [0, 1]} for i in range(10)}
    for name in ("c00", "c01", "c02"):
        cores[name]["ann2"] = [0, 3]
    cores["c05"]["ann1"] = [0, 2]
    ds = open_dataset(write_labelled_generic(tmp_path / "all", cores))
    with pytest.raises(Exception, match="nothing to train on"):
        paper_split(ds, ds.experts)  # the old default refused this dataset
    split = default_split(ds)
    assert "every core is annotated by every expert" in split.reason
    assert_partition(split, ds.names)
    assert split.counts() == {"train": 6, "val": 2, "test": 2}  # 20 % of 10; 20 % of the other 8
    on_disk = {n: classes_on_disk(ds, n) for n in ds.names}
    for part in (split.train, split.val, split.test):
        assert {3} <= set().union(*(on_disk[n] for n in part))  # the rare class reaches every subset
    assert "c05" in split.train  # a class in a single core is trained on
    assert default_split(ds, seed=1) == default_split(ds, seed=1)
    assert len({tuple(default_split(ds, seed=s).test) for s in range(6)}) > 1


def test_partial_coverage_uses_every_annotated_core(tmp_path):
    # crowdsourced: each patch has 1-4 of 4 annotators; three patches have all four
    annotators = ("a", "b", "c", "d")
    cores = {}
    for i in range(12):
        who = annotators[: 1 + i % 4]
        cores[f"patch {i}"] = {a: [0, 1 + (i % 3)] for a in who}
    ds = open_dataset(write_labelled_generic(tmp_path / "crowd", cores))
    assert ds.experts == annotators
    split = default_split(ds)
    assert "stratified" in split.reason and "no core outside" in split.reason
    assert_partition(split, ds.names)
    assert split.excluded == []
    assert split.test and split.val and len(split.train) >= 6


def test_gleason_with_only_the_three_training_experts(tmp_path):
    cores = {f"slide{i:03d}_core001": ("1", "3", "4") for i in range(6)}
    cores["slide009_core001"] = ("1",)
    ds = open_dataset(make_fake_gleason(tmp_path / "g134", cores=cores).root)
    assert ds.experts == ("1", "3", "4")
    split = default_split(ds)
    assert "stratified" in split.reason
    assert_partition(split, ds.names)  # the core with expert 1 alone is used too
    assert split.counts()["test"] == 1 and split.counts()["val"] == 1


def test_explicit_training_experts_can_bring_the_paper_rule_to_a_generic_set(tmp_path):
    cores = {"x1": {"a": [0, 1], "b": [0, 1], "c": [0, 1]}, "x2": {"a": [0, 1], "b": [0, 2]},
             "x3": {"a": [1, 2], "b": [0, 1]}, "x4": {"c": [0, 1]}}
    ds = open_dataset(write_labelled_generic(tmp_path / "gen", cores))
    split = default_split(ds, ("a", "b"), val_fraction=0.5)
    assert split.test == ["x1"] and sorted(split.train + split.val) == ["x2", "x3"] and split.excluded == ["x4"]


def coverage(parts, classes):
    """(classes train sees, (subset, class) pairs seen): what the stratification maximises."""
    seen = [set().union(*(classes[n] for n in part)) if part else set() for part in parts]
    return len(seen[0]), sum(len(x) for x in seen)


def best_coverage(names, classes, sizes):
    """The best coverage over every split of ``names`` into subsets of ``sizes``, by brute force."""
    best = (-1, -1)
    for train in itertools.combinations(names, sizes[0]):
        rest = [n for n in names if n not in train]
        for val in itertools.combinations(rest, sizes[1]):
            test = [n for n in rest if n not in val]
            best = max(best, coverage([train, val, test], classes))
    return best


def test_stratified_split_against_brute_force():
    # A local search, so not always the optimum: training must see every class it can, the
    # subsets together at most one (subset, class) pair fewer, and most splits be optimal.
    rng = np.random.default_rng(0)
    optimal = 0
    for trial in range(40):
        n = int(rng.integers(3, 9))
        names = [f"n{i}" for i in range(n)]
        classes = {nm: frozenset(int(c) for c in np.flatnonzero(rng.random(5) < 0.35)) for nm in names}
        train, val, test = stratified_split(names, classes, 0.2, 0.25, seed=trial)
        assert sorted(train + val + test) == sorted(names)
        n_test = max(1, round(0.2 * n))
        n_val = max(1, round(0.25 * (n - n_test)))
        assert (len(train), len(val), len(test)) == (n - n_test - n_val, n_val, n_test)
        best = best_coverage(names, classes, (len(train), len(val), len(test)))
        got = coverage([train, val, test], classes)
        assert got[0] == best[0] and got[1] >= best[1] - 1, (trial, classes, train, val, test)
        optimal += got == best
    assert optimal >= 34  # measured: 37 of 40


def test_small_sets():
    cls = {"a": {0}, "b": {0}}
    assert stratified_split(["a"], cls) == (["a"], [], [])
    train, val, test = stratified_split(["a", "b"], cls)
    assert len(train) == 1 and val == [] and len(test) == 1
    assert stratified_split(["a", "b"], cls, test_fraction=0.0, val_fraction=0.0) == (["a", "b"], [], [])


def test_cli_split_prints_the_rule(tmp_path, capsys):
    cores = {f"c{i}": {"x": [0, 1], "y": [0, 1]} for i in range(5)}
    root = write_labelled_generic(tmp_path / "data ü", cores)
    assert main(["split", "--data", str(root), "--out", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("split: stratified") and out[1].startswith("train 3 · val 1 · test 1")


def test_train_on_an_all_annotated_generic_set(tmp_path, capsys):
    cores = {f"c{i}": {"x": [0, 1], "y": [0, 2]} for i in range(4)}
    root = write_labelled_generic(tmp_path / "all", cores)
    args = ["train", "--data", str(root), "--model", "pspnet", "--encoder", "resnet18", "--size", "32",
            "--iters", "1", "--device", "cpu", "--no-reweight", "--loss", "focal", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "split: stratified by class" in out and (tmp_path / "run" / "last.pt").is_file()
    shutil.rmtree(tmp_path / "run")
