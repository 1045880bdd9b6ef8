"""The disk cache of resized cores: hits skip decoding, changed files invalidate, corrupt entries are
rebuilt, and nothing is ever written next to the data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from tests.fakes import make_fake_gleason, save_mask

import trainer.data.dataset as dataset_module
from trainer.data import open_dataset
from trainer.data.core_cache import CoreCache
from trainer.data.dataset import MultiExpertDataset
from trainer.errors import InputError

CORES = ["slide002_core001", "slide002_core002", "slide004_core002"]  # 1,3,4 / 1,2,3,4 / 2 only
EXPERTS = ("1", "3", "4")


@pytest.fixture
def gleason(tmp_path):
    fake = make_fake_gleason(tmp_path / "data")
    return open_dataset(fake.root), fake


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its size, mtime_ns and content hash."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def all_planes(data):
    return [np.array(data.load_planes(i)) for i in range(len(data))]


class DecodeCounter:
    def __init__(self, monkeypatch):
        self.images = []
        real = dataset_module.read_image

        def counting(path):
            self.images.append(Path(path).name)
            return real(path)

        monkeypatch.setattr(dataset_module, "read_image", counting)


def test_second_dataset_on_the_same_cache_does_not_decode(gleason, tmp_path, monkeypatch):
    ds, _ = gleason
    reference = all_planes(MultiExpertDataset(ds, CORES, EXPERTS, 24))  # no disk cache
    first = MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=tmp_path / "cache")
    assert [np.array_equal(a, b) for a, b in zip(all_planes(first), reference)] == [True] * 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3

    def fail(*args, **kwargs):
        raise AssertionError("decoded although the core is cached")

    monkeypatch.setattr(dataset_module, "read_image", fail)
    monkeypatch.setattr(dataset_module, "read_mask", fail)
    second = MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=tmp_path / "cache")
    planes = second.load_planes(0)
    assert isinstance(planes, np.memmap) and not planes.flags.writeable  # memory-mapped, read-only
    assert [np.array_equal(a, b) for a, b in zip(all_planes(second), reference)] == [True] * 3
    item = second[(1, 3)]  # the worker path works on the read-only map
    assert item["image"].shape == (3, 24, 24)


def test_touching_or_replacing_a_mask_invalidates_its_entry(gleason, tmp_path, monkeypatch):
    ds, fake = gleason
    cache = tmp_path / "cache"
    all_planes(MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=cache))
    counter = DecodeCounter(monkeypatch)
    all_planes(MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=cache))
    assert counter.images == []

    mask = fake.mask_paths[("slide002_core002", "3")]
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touch: same bytes, new mtime
    all_planes(MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=cache))
    assert counter.images == ["slide002_core002.jpg"]  # only the core whose mask changed

    values = fake.raw[("slide002_core002", "3")].copy()
    values[:] = 5  # the expert now calls the whole core Gleason 5 (class 3)
    save_mask(mask, values, "L")
    planes = MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=cache).load_planes(1)
    assert counter.images[-1] == "slide002_core002.jpg"
    assert (planes[3 + EXPERTS.index("3")] == 3).all()  # the new labels, not the cached ones
    # a different model size or expert list never hits another's entry
    n = len(counter.images)
    MultiExpertDataset(ds, CORES, EXPERTS, 16, cache_dir=cache).load_planes(0)
    MultiExpertDataset(ds, CORES, ("1", "3"), 24, cache_dir=cache).load_planes(0)
    assert len(counter.images) == n + 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong shape"])
def test_a_corrupt_entry_is_rebuilt(gleason, tmp_path, damage):
    ds, _ = gleason
    cache = tmp_path / "cache"
    reference = all_planes(MultiExpertDataset(ds, CORES[:1], EXPERTS, 24, cache_dir=cache))[0]
    (entry,) = cache.glob("*.npy")
    if damage == "garbage":
        entry.write_bytes(b"not a numpy file at all" * 50)
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        np.save(entry, np.zeros((2, 5, 5), np.uint8))
    planes = MultiExpertDataset(ds, CORES[:1], EXPERTS, 24, cache_dir=cache).load_planes(0)
    np.testing.assert_array_equal(planes, reference)
    np.testing.assert_array_equal(np.load(entry), reference)  # and the file is whole again


def test_nothing_is_written_next_to_the_data(gleason, tmp_path):
    ds, fake = gleason
    before = snapshot(fake.root)
    cache = tmp_path / "cache"
    data = MultiExpertDataset(ds, CORES, EXPERTS, 24, cache_dir=cache)
    all_planes(data)
    for i in range(len(data)):
        data[(i, 7)]
    assert snapshot(fake.root) == before  # experts' files untouched, no new file beside them
    assert all(p.suffix == ".npy" for p in cache.iterdir())  # no temporary file left behind


def test_cache_folder_must_be_a_writable_folder(tmp_path):
    (tmp_path / "a file").write_text("x")
    with pytest.raises(InputError, match="core cache"):
        CoreCache(tmp_path / "a file")
    with pytest.raises(InputError, match="core cache"):
        CoreCache(tmp_path / "a file" / "below")


def test_a_flipped_byte_fails_the_checksum_and_is_rebuilt(gleason, tmp_path):
    ds, _ = gleason
    cache = tmp_path / "cache"
    reference = all_planes(MultiExpertDataset(ds, CORES[:1], EXPERTS, 24, cache_dir=cache))[0]
    (entry,) = cache.glob("*.npy")
    data = bytearray(entry.read_bytes())
    data[200] ^= 0x01  # one pixel of the image planes: still a valid .npy of the right shape
    entry.write_bytes(bytes(data))
    damaged = np.load(entry)
    assert damaged.shape == reference.shape and not np.array_equal(damaged, reference)
    assert not CoreCache(cache).verify(entry)
    planes = MultiExpertDataset(ds, CORES[:1], EXPERTS, 24, cache_dir=cache).load_planes(0)
    np.testing.assert_array_equal(planes, reference)  # rebuilt from the files, not the damaged entry
    assert CoreCache(cache).verify(entry)


def test_size_limit_evicts_the_least_recently_used(tmp_path):
    cache = CoreCache(tmp_path / "cache", max_bytes=None)
    shape = (4, 16, 16)
    planes = {k: np.full(shape, i, np.uint8) for i, k in enumerate("abcd")}
    keys = {k: cache.key(tmp_path / f"{k}.png", [], (16, 16), {}) for k in planes}
    for t, k in enumerate("abc"):
        cache.get(keys[k], k, shape, lambda k=k: planes[k])
        path = cache.path(keys[k], k)
        os.utime(path, ns=(10**18 + t, 10**18 + t))  # a, then b, then c used
    (tmp_path / "cache" / "mine.npy").write_bytes(b"not an entry")  # a file of the user's: never evicted
    entry_size = cache.path(keys["a"], "a").stat().st_size
    cache.load(cache.path(keys["a"], "a"), shape)  # a used again: now the most recent
    cache.max_bytes = 3 * entry_size
    cache.get(keys["d"], "d", shape, lambda: planes["d"])  # 4 entries > 3: the least recent (b) goes
    left = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*-*.npy"))
    assert left == ["a", "c", "d"] and (tmp_path / "cache" / "mine.npy").exists()
    cache.max_bytes = 0
    assert cache.evict(keep=cache.path(keys["d"], "d"))
    assert [p.name.split("-")[0] for p, _, _ in cache.entries()] == ["d"]
    np.testing.assert_array_equal(cache.get(keys["d"], "d", shape, lambda: planes["a"]), planes["d"])  # a hit
