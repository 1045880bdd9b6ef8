"""The browser's per-core scores (headless) and their cache."""

from __future__ import annotations

import json
import math
import os
import time
from itertools import combinations

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import GLEASON_VALUES, write_gleason
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from napari_gleason import _scores
from napari_gleason._scores import (GRID_TOLERANCE, DatasetScores, ScoreCache, grid_step, read_mask_grid, score_core,
                                    score_masks)
from trainer.data import open_dataset
from trainer.data.check import check_core
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX
from trainer.errors import InputError

C = 4


def age(root, seconds: float = 60) -> None:
    """Every file older than the cache's 2-second racy window (as files on a real dataset are)."""
    old = time.time() - seconds
    for p in root.rglob("*.*"):
        os.utime(p, (old, old))


def brute_force(masks: dict[str, np.ndarray]) -> tuple[float, float]:
    """Disagreement by a per-pixel loop (vote: most frequent, the higher class on a tie) and the mean
    pairwise κ by scikit-learn on the pixels both experts labelled."""
    shares = []
    h, w = next(iter(masks.values())).shape
    for y in range(h):
        for x in range(w):
            labels = [int(m[y, x]) for m in masks.values() if m[y, x] != IGNORE_INDEX]
            if not labels:
                continue
            counts = [labels.count(c) for c in range(C)]
            v = max(range(C), key=lambda c: (counts[c], c))
            shares.append(sum(lab != v for lab in labels) / len(labels))
    kappas = []
    for a, b in combinations(masks, 2):
        both = (masks[a] != IGNORE_INDEX) & (masks[b] != IGNORE_INDEX)
        kappas.append(cohen_kappa_score(masks[a][both], masks[b][both], labels=list(range(C))))
    return float(np.mean(shares)), float(np.mean(kappas))


def test_scores_match_a_brute_force_reference(rng):
    masks = {e: rng.integers(0, C, (24, 20)).astype(np.uint8) for e in "abc"}
    masks["a"][:5] = masks["b"][:5]  # some agreement
    masks["c"][3:9, 2:7] = IGNORE_INDEX  # c did not annotate a patch
    disagreement, kappa, pairs = score_masks(masks, C)
    ref_d, ref_k = brute_force(masks)
    assert disagreement == pytest.approx(ref_d, abs=1e-6)  # the map is float32
    assert kappa == pytest.approx(ref_k, abs=1e-9)
    assert set(pairs) == {"a|b", "a|c", "b|c"}
    assert math.isnan(score_masks({"a": masks["a"]}, C)[0])  # one expert: nothing to score


def test_the_grid_gives_the_full_resolution_scores_within_the_stated_tolerance(tmp_path):
    """The synthetic sample core's six experts at 128 px, sampled every 4 px as a 5120² core is:
    the scores stay within :data:`GRID_TOLERANCE` of full resolution (the benchmark checks 5120²)."""
    from trainer.synthetic import sample_core

    _image, _truth, experts = sample_core(seed=3, size=128)
    root = write_gleason(tmp_path / "g", {"core": {e: m for e, m in experts.items()}}, shape=(128, 128))
    ds = open_dataset(root)
    full = score_core(ds.core("core"), ds.scheme, step=1)
    grid = score_core(ds.core("core"), ds.scheme, step=4)
    assert grid.step == 4 and full.step == 1
    assert full.disagreement > 0.005 and full.agreement < 0.99  # the experts do disagree
    assert abs(grid.disagreement - full.disagreement) <= GRID_TOLERANCE["disagreement"]
    assert abs(grid.agreement - full.agreement) <= GRID_TOLERANCE["agreement"]
    assert grid_step((5120, 5120)) == 4 and grid_step((128, 128)) == 1
    ref = brute_force(experts)
    assert (full.disagreement, full.agreement) == pytest.approx(ref, abs=1e-6)


def test_the_grid_read_checks_every_pixel_not_only_the_grid(tmp_path):
    values = np.full((16, 16), 3, np.uint8)
    values[1, 1] = 9  # off the 4-px grid, not a Gleason value
    path = tmp_path / "m.png"
    Image.fromarray(values).save(path)
    with pytest.raises(InputError, match=r"m\.png.*\[9\]"):
        read_mask_grid(path, GLEASON_SCHEME, (16, 16), 4)
    with pytest.raises(InputError, match="differs from its image's"):
        read_mask_grid(path, GLEASON_SCHEME, (16, 20), 4)
    values[1, 1] = 3
    Image.fromarray(values).save(path)
    assert (read_mask_grid(path, GLEASON_SCHEME, (16, 16), 4) == 1).all()  # G3 is class 1, on a 4×4 grid
    assert read_mask_grid(path, GLEASON_SCHEME, (16, 16), 4).shape == (4, 4)


def test_problems_are_the_checks_problems_and_the_other_cores_still_score(tmp_path):
    a = np.zeros((16, 16), np.uint8)
    b = a.copy()
    b[:8] = 2
    root = write_gleason(tmp_path / "g", {"good": {"1": a, "2": b}, "bad": {"1": a, "2": b, "3": a}},
                         shape=(16, 16))
    Image.fromarray(np.full((8, 8), 3, np.uint8)).save(root / "Maps2_T" / "bad_classimg_nonconvex.png")  # wrong size
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(root / "Maps3_T" / "bad_classimg_nonconvex.png")  # bad value
    ds = open_dataset(root)
    scores = DatasetScores(ds, cache=tmp_path / "cache").all()
    bad = scores["bad"]
    assert math.isnan(bad.disagreement) and math.isnan(bad.agreement)
    expected, _classes, _files = check_core(ds.core("bad"), ds.scheme)
    assert [(p.path.name, p.problem) for p in bad.problems] == [(p.path.name, p.problem) for p in expected]
    assert len(bad.problems) == 2 and "differs from its image's" in bad.problem_text
    good = scores["good"]
    assert not good.problems
    assert good.disagreement == pytest.approx(0.25)  # half the pixels: one of two experts differs
    assert good.agreement == pytest.approx(0.0)  # expert 1 all benign: κ is 0 (chance)


@pytest.fixture
def three_cores(tmp_path):
    rng = np.random.default_rng(1)
    cores = {f"c{i}": {e: rng.integers(0, C, (16, 16)).astype(np.uint8) for e in "123"} for i in range(3)}
    root = write_gleason(tmp_path / "g", cores, shape=(16, 16))
    age(root)
    return root


def counting(monkeypatch) -> list[str]:
    scored: list[str] = []
    real = _scores.score_core

    def spy(record, scheme, step=None):
        scored.append(record.name)
        return real(record, scheme, step)

    monkeypatch.setattr(_scores, "score_core", spy)
    return scored


def test_cache_lists_at_once_and_rescores_only_a_changed_mask(three_cores, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = DatasetScores(open_dataset(three_cores), cache=cache).all()
    assert not any(s.cached for s in first.values())
    scored = counting(monkeypatch)

    again = DatasetScores(open_dataset(three_cores), cache=cache)
    listed = again.cached()
    assert set(listed) == {"c0", "c1", "c2"} and all(s.cached for s in listed.values())
    for name, s in listed.items():
        assert (s.disagreement, s.agreement, s.pairs) == (first[name].disagreement, first[name].agreement,
                                                         first[name].pairs)
    assert again.all()["c1"].cached and scored == []  # nothing decoded

    # expert 2 changes c1: same size and shape, other values, an older mtime than before
    path = three_cores / "Maps2_T" / "c1_classimg_nonconvex.png"
    Image.fromarray(GLEASON_VALUES[np.zeros((16, 16), np.uint8)]).save(path)
    old = time.time() - 30
    os.utime(path, (old, old))
    third = DatasetScores(open_dataset(three_cores), cache=cache)
    assert set(third.cached()) == {"c0", "c2"}
    result = third.all()
    assert scored == ["c1"]
    assert result["c1"].disagreement != first["c1"].disagreement
    assert result["c1"].disagreement == pytest.approx(brute_force(_classes_of(three_cores, "c1"))[0])
    assert set(DatasetScores(open_dataset(three_cores), cache=cache).cached()) == {"c0", "c1", "c2"}


def _classes_of(root, core: str) -> dict[str, np.ndarray]:
    lut = {int(v): c for c, v in enumerate(GLEASON_VALUES)}
    return {e: np.vectorize(lut.get)(np.asarray(Image.open(root / f"Maps{e}_T" / f"{core}_classimg_nonconvex.png")))
            .astype(np.uint8) for e in "123"}


@pytest.mark.parametrize("damage", [b"{ not json", b'{"format": 1, "ident": "someone else", "entries": {}}',
                                    b'{"format": 1, "ident": null, "entries": []}'])
def test_a_damaged_cache_file_is_ignored_and_rebuilt(three_cores, tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    DatasetScores(open_dataset(three_cores), cache=cache).all()
    ds = open_dataset(three_cores)
    path = ScoreCache(cache, ds.root, ds.scheme).path
    assert path.is_file()
    path.write_bytes(damage)
    scored = counting(monkeypatch)
    again = DatasetScores(ds, cache=cache)
    assert again.cached() == {}
    assert len(again.all()) == 3 and sorted(scored) == ["c0", "c1", "c2"]
    assert len(json.loads(path.read_text())["entries"]) == 3  # rebuilt
    assert set(DatasetScores(open_dataset(three_cores), cache=cache).cached()) == {"c0", "c1", "c2"}


def test_a_foreign_entry_under_a_valid_key_is_scored_again(three_cores, tmp_path):
    cache = tmp_path / "cache"
    DatasetScores(open_dataset(three_cores), cache=cache).all()
    ds = open_dataset(three_cores)
    path = ScoreCache(cache, ds.root, ds.scheme).path
    data = json.loads(path.read_text())
    data["entries"] = {k: {"experts": 3} for k in data["entries"]}
    path.write_text(json.dumps(data))
    assert DatasetScores(ds, cache=cache).cached() == {}


def test_files_changed_in_the_last_seconds_are_scored_but_not_cached(tmp_path):
    root = write_gleason(tmp_path / "g", {"c": {"1": np.zeros((8, 8), np.uint8), "2": np.ones((8, 8), np.uint8)}},
                         shape=(8, 8))
    DatasetScores(open_dataset(root), cache=tmp_path / "cache").all()
    assert DatasetScores(open_dataset(root), cache=tmp_path / "cache").cached() == {}


def test_a_review_stores_cores_score_as_their_dataset_folders(three_cores, tmp_path):
    from napari_gleason._core_sources import FolderSource
    from napari_gleason._scores import score_store_core
    from trainer.review_store import ReviewStore

    folder = FolderSource.open(three_cores)
    store = ReviewStore.create(tmp_path / "r.zarr", GLEASON_SCHEME)
    for name in ("c0", "c2"):
        store.write_core(folder.load(name))
    store = ReviewStore.open(tmp_path / "r.zarr")
    for name in ("c0", "c2"):
        got, want = score_store_core(store, name), score_core(folder.ds.core(name), folder.scheme)
        assert not got.problems and got.experts == ("1", "2", "3")
        assert (got.disagreement, got.agreement) == pytest.approx((want.disagreement, want.agreement))
        assert got.pairs == pytest.approx(want.pairs)
