"""MultiExpertDataset items and IterationSampler determinism (resume, DDP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainer.data import open_dataset
from trainer.data.classes import IGNORE_INDEX
from trainer.data.dataset import IterationSampler, MultiExpertDataset
from trainer.data.vote import majority_vote
from trainer.errors import InputError

from tests.fakes import make_fake_gleason

CORES = ["slide002_core001", "slide002_core002", "slide004_core002"]  # 1,3,4 / 1,2,3,4 / 2 only


@pytest.fixture
def gleason(tmp_path):
    make_fake_gleason(tmp_path / "Gleason ü")
    return open_dataset(tmp_path / "Gleason ü")


def test_item_shapes_dtypes_and_absent_experts(gleason):
    data = MultiExpertDataset(gleason, CORES, experts=("1", "3", "4"), size=32, augment=False)
    assert len(data) == 3
    item = data[(0, 123)]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["experts"].shape == (3, 32, 32) and item["experts"].dtype == torch.int64
    assert item["vote"].shape == (32, 32) and item["vote"].dtype == torch.int64
    assert item["present"].tolist() == [True, True, True] and item["name"] == CORES[0]
    lone = data[(2, 0)]  # annotated by expert 2 only: no training expert present
    assert lone["present"].tolist() == [False, False, False]
    assert (lone["experts"] == IGNORE_INDEX).all() and (lone["vote"] == IGNORE_INDEX).all()


def test_partially_absent_expert_channel_is_ignore(gleason):
    data = MultiExpertDataset(gleason, CORES, experts=("2", "1"), size=24, augment=False)
    first = data[(0, 0)]  # slide002_core001 has no expert 2
    assert first["present"].tolist() == [False, True]
    assert (first["experts"][0] == IGNORE_INDEX).all()
    assert set(first["experts"][1].unique().tolist()) <= {0, 1, 2, 3}
    assert torch.equal(first["vote"], first["experts"][1])  # one voter decides


def test_augmented_vote_matches_vote_of_augmented_experts(gleason):
    data = MultiExpertDataset(gleason, CORES, experts=("1", "3", "4"), size=32, augment=True)
    a, b = data[(1, 7)], data[(1, 7)]
    assert torch.equal(a["image"], b["image"])  # same seed, same augmentation
    expected = majority_vote(a["experts"].numpy().astype(np.uint8), 4)
    np.testing.assert_array_equal(a["vote"].numpy(), expected)
    others = [data[(1, s)]["experts"] for s in range(8)]
    assert any(not torch.equal(others[0], o) for o in others[1:])  # seeds differ -> transforms differ


def test_resized_core_is_cached(gleason, monkeypatch):
    data = MultiExpertDataset(gleason, CORES, experts=("1",), size=16, augment=True)
    data[(0, 1)]
    import trainer.data.dataset as module

    def fail(*args, **kwargs):
        raise AssertionError("read again")

    monkeypatch.setattr(module, "read_image", fail)
    data[(0, 2)]  # served from the cache


def test_unknown_expert_is_refused(gleason):
    with pytest.raises(InputError, match="'7'"):
        MultiExpertDataset(gleason, CORES, experts=("1", "7"), size=16)


def test_dataloader_with_iteration_sampler(gleason):
    data = MultiExpertDataset(gleason, CORES, experts=("1", "3", "4"), size=16)
    loader = DataLoader(data, batch_sampler=IterationSampler(len(data), 2, seed=0, start_iter=0, num_iters=3))
    batches = list(loader)
    assert len(batches) == 3
    assert batches[0]["image"].shape == (2, 3, 16, 16) and batches[0]["experts"].shape == (2, 3, 16, 16)
    assert batches[0]["present"].dtype == torch.bool and len(batches[0]["name"]) == 2


def test_sampler_resume_equals_uninterrupted_run():
    full = list(IterationSampler(7, 3, seed=11, start_iter=0, num_iters=10))
    resumed = list(IterationSampler(7, 3, seed=11, start_iter=5, num_iters=10))
    assert len(full) == 10 and len(resumed) == 5
    assert resumed == full[5:]
    other_seed = list(IterationSampler(7, 3, seed=12, start_iter=0, num_iters=10))
    assert other_seed != full


def test_sampler_epochs_are_permutations_of_default_rng():
    n, batch = 6, 2
    sampler = IterationSampler(n, batch, seed=4, start_iter=0, num_iters=6)  # two epochs
    indices = [i for b in sampler for i, _ in b]
    for epoch in range(2):
        expected = np.random.default_rng([4, epoch]).permutation(n).tolist()
        assert indices[epoch * n : (epoch + 1) * n] == expected
    seeds = [s for b in sampler for _, s in b]
    assert len(set(seeds)) == len(seeds)  # every slot gets its own augmentation


def test_ddp_ranks_take_disjoint_slices_of_the_global_batch():
    single = IterationSampler(20, 4, seed=1, start_iter=3, num_iters=8)
    ranks = [IterationSampler(20, 4, seed=1, start_iter=3, num_iters=8, rank=r, world_size=2) for r in range(2)]
    for it, (whole, r0, r1) in enumerate(zip(single, *ranks)):
        assert len(r0) == len(r1) == 2
        assert r0 + r1 == whole  # together: the single-GPU global batch, seeds included
        assert not {i for i, _ in r0} & {i for i, _ in r1}  # n >= batch: no shared cores
    with pytest.raises(ValueError):
        IterationSampler(20, 3, seed=1, start_iter=0, num_iters=2, world_size=2)
