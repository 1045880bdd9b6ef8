"""GPU-side augmentation (run here on CPU tensors) equals the worker path: numpy augment + normalise +
majority vote, for the same seeds; and a training run with it gives the worker path's losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.tiny_runs import tiny_config
from torch.utils.data import DataLoader

from trainer import events as ev
from trainer.checkpoint import load_checkpoint
from trainer.config import RunConfig
from trainer.data import open_dataset
from trainer.data.augment import augment, draw_params, normalise
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX
from trainer.data.corrected import CorrectedRecord, CorrectedCoreSet, MixedDataset
from trainer.data.dataset import IterationSampler, MultiExpertDataset
from trainer.data.device_augment import augment_batch, seed_from_int64, seed_to_int64
from trainer.data.io import write_mask_png
from trainer.data.vote import majority_vote
from trainer.engine import train
from trainer.errors import InputError
from trainer.device import resolve_augment_device


def worker_path(image, masks, seed, tie, num_classes=4, do_augment=True):
    """What the data workers compute: numpy augment in normalised space, then the numpy vote."""
    img = normalise(image)
    if do_augment:
        img, masks = augment(img, masks, np.random.default_rng(seed), image_fill=0.0)
    return img.transpose(2, 0, 1), masks, majority_vote(masks, num_classes, tie)


def random_batch(rng, b, h, w, e=4):
    """uint8 images and E expert maps with ignored patches; expert 1 absent on every other core."""
    images = rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
    masks = rng.integers(0, 4, (b, e, h, w), dtype=np.uint8)
    masks[rng.random((b, e, h, w)) < 0.1] = IGNORE_INDEX
    present = np.ones((b, e), bool)
    present[::2, 1] = False
    masks[~present] = IGNORE_INDEX
    return images, masks, present


@pytest.mark.parametrize("tie", ["highest", "lowest", "ignore"])
@pytest.mark.parametrize("shape", [(24, 24), (20, 30)], ids=["square", "non-square"])
def test_device_path_equals_worker_path(shape, tie):
    h, w = shape
    rng = np.random.default_rng(1)
    seen = set()
    for start in range(0, 120, 4):  # 120 seeds, four per batch: mixed transforms in one call
        images, masks, present = random_batch(rng, 4, h, w)
        seeds = [int(np.random.SeedSequence([start, k]).generate_state(1, np.uint64)[0]) for k in range(4)]
        out = augment_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(masks),
                            torch.from_numpy(present), seeds, num_classes=4, tie=tie)
        assert out["image"].dtype == torch.float32 and out["image"].shape == (4, 3, h, w)
        assert out["experts"].dtype == torch.int64 and out["vote"].dtype == torch.int64
        for k, seed in enumerate(seeds):
            img, m, vote = worker_path(images[k], masks[k], seed, tie)
            np.testing.assert_allclose(out["image"][k].numpy(), img, rtol=0, atol=1e-5)
            np.testing.assert_array_equal(out["experts"][k].numpy(), m)
            np.testing.assert_array_equal(out["vote"][k].numpy(), vote)
            p = draw_params(np.random.default_rng(seed), (h, w))
            zoom = None if p.scaled is None else p.scaled[0] > h
            seen.add((p.hflip, p.vflip, p.rot, zoom))
    # every flip and rotation the shape allows occurred, with zoom in, zoom out and no rescale
    rots = {0, 1, 2, 3} if h == w else {0, 2}
    assert {(hf, vf, r) for hf, vf, r, _ in seen} == {(a, b, r) for a in (0, 1) for b in (0, 1) for r in rots}
    assert {z for *_, z in seen} == {None, True, False}


def test_ties_are_exercised_and_absent_experts_stay_ignored():
    rng = np.random.default_rng(3)
    images, masks, present = random_batch(rng, 2, 16, 16)
    votes = {t: augment_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(masks),
                              torch.from_numpy(present), [5, 6], 4, tie=t)
             for t in ("highest", "lowest", "ignore")}
    assert not torch.equal(votes["highest"]["vote"], votes["lowest"]["vote"])  # ties do occur
    assert (votes["ignore"]["vote"] == IGNORE_INDEX).any()
    assert (votes["highest"]["experts"][0, 1] == IGNORE_INDEX).all()  # absent expert of core 0


def test_without_augmentation_only_normalise_and_vote():
    rng = np.random.default_rng(4)
    images, masks, present = random_batch(rng, 2, 12, 12)
    out = augment_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(masks),
                        torch.from_numpy(present), None, 4, augment=False)
    for k in range(2):
        img, m, vote = worker_path(images[k], masks[k], 0, "highest", do_augment=False)
        np.testing.assert_array_equal(out["image"][k].numpy(), img)
        np.testing.assert_array_equal(out["experts"][k].numpy(), m)
        np.testing.assert_array_equal(out["vote"][k].numpy(), vote)
    with pytest.raises(ValueError, match="seed"):
        augment_batch(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), torch.from_numpy(masks),
                      torch.from_numpy(present), [1], 4)


def test_seeds_travel_as_int64_without_loss():
    for seed in (0, 1, 2**63 - 1, 2**63, 2**64 - 1, 12345678901234567890):
        as_int = seed_to_int64(seed)
        assert -(2**63) <= as_int < 2**63
        assert seed_from_int64(torch.tensor([as_int]).tolist()[0]) == seed


def test_uint8_items_through_a_loader_equal_the_worker_items(synthetic_data, tmp_path):
    """The real datasets end to end, corrected cores included: uint8 + seed, then augment_batch."""
    ds = open_dataset(synthetic_data)
    experts = ("1", "3", "4")
    mask = np.full((96, 96), 2, np.uint8)
    mask[:20] = 0
    write_mask_png(tmp_path / "corrected.png", mask, GLEASON_SCHEME)
    corrected = [CorrectedRecord("edited", ds.cores[0].image_path, tmp_path / "corrected.png")]

    def datasets(on_device):
        base = MultiExpertDataset(ds, ds.cores[:4], experts, 48, device_augment=on_device)
        extra = CorrectedCoreSet(corrected, ds.scheme, len(experts), 48, device_augment=on_device)
        return MixedDataset(base, extra, repeat=2)

    raw_set, ref_set = datasets(True), datasets(False)
    item = raw_set[(0, 2**64 - 5)]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 48, 48)
    assert item["experts"].dtype == torch.uint8 and "vote" not in item
    sampler = IterationSampler(len(raw_set), 3, seed=2, start_iter=0, num_iters=4)
    saw_corrected = False
    for batch, pairs in zip(DataLoader(raw_set, batch_sampler=sampler), sampler):
        seeds = [seed_from_int64(s) for s in batch["seed"].tolist()]
        assert seeds == [s for _, s in pairs]
        out = augment_batch(batch["image"], batch["experts"], batch["present"], seeds, 4)
        for k, key in enumerate(pairs):
            ref = ref_set[key]
            np.testing.assert_allclose(out["image"][k].numpy(), ref["image"].numpy(), rtol=0, atol=1e-5)
            assert torch.equal(out["experts"][k], ref["experts"])
            assert torch.equal(out["vote"][k], ref["vote"])
            assert torch.equal(out["present"][k], ref["present"])
            saw_corrected |= ref["name"] == "edited"
    assert saw_corrected


def test_auto_means_device_on_cuda_only():
    assert resolve_augment_device("auto", torch.device("cuda", 0))
    assert not resolve_augment_device("auto", torch.device("cpu"))
    assert resolve_augment_device("device", torch.device("cpu")) and not resolve_augment_device("worker", torch.device("cuda"))
    with pytest.raises(InputError, match="augment_device"):
        RunConfig.from_dict({"data": {"augment_device": "gpu"}})


def _losses(events):
    return [e.losses for e in events if isinstance(e, ev.IterationDone)]


def test_training_on_device_path_matches_worker_path_and_resumes_exactly(synthetic_data, tmp_path):
    worker = _losses(train(tiny_config(synthetic_data, tmp_path / "w", iters=4, data__augment_device="worker")))
    device = _losses(train(tiny_config(synthetic_data, tmp_path / "d", iters=4, data__augment_device="device")))
    assert len(worker) == len(device) == 4
    for a, b in zip(worker, device):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6)
    # stop after 2, resume: the same next losses as the uninterrupted device-path run
    part = tiny_config(synthetic_data, tmp_path / "p", iters=4, data__augment_device="device")
    seen = []
    for e in train(part, stop=lambda: len(seen) >= 2):
        if isinstance(e, ev.IterationDone):
            seen.append(e.losses)
    assert load_checkpoint(tmp_path / "p" / "last.pt")["iteration"] == 2
    rest = _losses(train(part, resume=True))
    assert [x["total"] for x in seen + rest] == pytest.approx([x["total"] for x in device], rel=1e-6, abs=1e-7)
