"""The torch dataset of cores with their expert masks, and a resumable batch sampler.

Items are indexed by ``(index, seed)``: the sampler decides which core *and* which
augmentation each slot of a batch gets, so iteration *i* of a run is the same whether the
run was resumed or not (the random state lives in the sampler's arithmetic, not in a
generator that a restart would reset).

Use them together::

    loader = DataLoader(dataset, batch_sampler=IterationSampler(len(dataset), 2, seed, it0, total))

torch's default collate stacks the tensors and turns ``name`` into a list of str.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from trainer.data.augment import augment as augment_core
from trainer.data.augment import normalise
from trainer.data.classes import IGNORE_INDEX, ClassScheme
from trainer.data.core_cache import CoreCache
from trainer.data.device_augment import seed_to_int64
from trainer.data.io import read_image, read_mask
from trainer.data.records import CoreRecord, MultiExpertSet
from trainer.data.vote import majority_vote
from trainer.errors import InputError
from trainer.resample import resize_image, resize_nearest, size_hw


def resized_planes(name: str, image: Path, masks: Sequence[tuple[str, Path | None]], scheme: ClassScheme,
                   size: int | tuple[int, int], disk: CoreCache | None = None) -> np.ndarray:
    """The one loader of a training core (the dataset's and a corrected one): uint8 ``(3+E)×h×w``,
    the image resized to ``size`` (antialiased bilinear), then each ``(role, mask file)``'s class
    map resized nearest (``IGNORE_INDEX`` for a role without a file). With ``disk`` the planes come
    from (or go to) the core cache, keyed on the files' identities, the size and the scheme."""
    h, w = size_hw(size)

    def decode() -> np.ndarray:
        pixels = read_image(image)
        planes = np.full((3 + len(masks), h, w), IGNORE_INDEX, dtype=np.uint8)
        planes[:3] = resize_image(pixels, (h, w)).transpose(2, 0, 1)
        have = [i for i, (_role, path) in enumerate(masks) if path is not None]
        if have:
            stack = np.stack([read_mask(masks[i][1], scheme, shape=pixels.shape[:2]) for i in have])
            planes[[3 + i for i in have]] = resize_nearest(stack, (h, w))
        return planes

    if disk is None:
        return decode()
    key = disk.key(image, list(masks), (h, w), scheme.to_dict())
    return disk.get(key, name, (3 + len(masks), h, w), decode)


class MultiExpertDataset(Dataset):
    """Cores resized to ``size``, optionally augmented (paper §3.2), with one mask per expert.

    ``experts`` are the training experts, in channel order. Each item is a dict:
    ``image`` float32 3×S×S (normalised), ``experts`` int64 E×S×S (``IGNORE_INDEX`` everywhere
    for an expert who did not annotate that core), ``present`` bool E, ``vote`` int64 S×S
    (eq. 1 over the present experts, tie rule ``tie``), ``name`` str.

    With ``device_augment=True`` the item is the core resized but neither augmented nor
    normalised, for :func:`~trainer.data.device_augment.augment_batch` to finish on the training
    device: ``image`` uint8 3×S×S, ``experts`` uint8 E×S×S, ``present`` bool E, ``seed`` int64
    (the sample's uint64 seed, same bits; see :func:`~trainer.data.device_augment.seed_from_int64`)
    and ``name``; no ``vote``.

    The resized core is kept in memory per index (``cache``; each DataLoader worker holds its
    own) and, with ``cache_dir``, on disk (:class:`~trainer.data.core_cache.CoreCache`), so later
    workers and runs do not decode the full-size files again. An ``int`` key means
    ``(index, index)``.
    """

    def __init__(
        self,
        ds: MultiExpertSet,
        cores: Sequence[str | CoreRecord],
        experts: Sequence[str],
        size: int | tuple[int, int],
        augment: bool = True,
        tie: str = "highest",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        device_augment: bool = False,
    ):
        self.ds = ds
        self.records = [c if isinstance(c, CoreRecord) else ds.core(c) for c in cores]
        self.experts = tuple(experts)
        unknown = [e for e in self.experts if e not in ds.experts]
        if unknown:
            raise InputError(f"experts {unknown} are not in this dataset (experts: {list(ds.experts)})", ds.root)
        self.size = size
        self.augment = augment
        self.tie = tie
        self.cache = cache
        self.disk = CoreCache(cache_dir) if cache_dir else None
        self.device_augment = device_augment
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def present(self, index: int) -> np.ndarray:
        """bool E: which of the experts annotated core ``index``."""
        return np.array([e in self.records[index].masks for e in self.experts], dtype=bool)

    def load_planes(self, index: int) -> np.ndarray:
        """uint8 (3+E)×S×S for core ``index``: the resized image's colour planes, then each
        expert's resized class map (cached; read-only when it comes from the disk cache)."""
        if index in self._cache:
            return self._cache[index]
        rec = self.records[index]
        planes = resized_planes(rec.name, rec.image_path, [(e, rec.masks.get(e)) for e in self.experts],
                                self.ds.scheme, self.size, self.disk)
        if self.cache:
            self._cache[index] = planes
        return planes

    def load_resized(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image uint8 S×S×3, masks uint8 E×S×S, present bool E) for core ``index``, cached."""
        planes = self.load_planes(index)
        return np.moveaxis(planes[:3], 0, -1), planes[3:], self.present(index)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), int(key))
        if self.device_augment:
            planes = torch.from_numpy(np.array(self.load_planes(index)))  # a private, writable copy
            return {
                "image": planes[:3],
                "experts": planes[3:],
                "present": torch.from_numpy(self.present(index)),
                "seed": torch.tensor(seed_to_int64(seed)),
                "name": self.records[index].name,
            }
        image, stack, present = self.load_resized(index)
        image = normalise(image)  # augment in normalised space: padding with 0 is the mean colour
        stack = np.array(stack)  # writable (torch refuses read-only memory maps without a warning)
        if self.augment:
            image, stack = augment_core(image, stack, np.random.default_rng(seed), image_fill=0.0)
        vote = majority_vote(stack, self.ds.scheme.num_classes, self.tie)  # eq. (1)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "experts": torch.from_numpy(stack.astype(np.int64)),
            "present": torch.from_numpy(present),
            "vote": torch.from_numpy(vote.astype(np.int64)),
            "name": self.records[index].name,
        }


class IterationSampler(Sampler):
    """Batch sampler: yields, per training iteration, a list of ``(index, seed)`` pairs.

    - ``batch_size`` is the *global* batch (all ranks together); each of ``world_size`` ranks
      yields its own contiguous, disjoint slice of ``batch_size // world_size`` pairs, so a run
      sees the same global batches on one GPU or several.
    - Iterations ``start_iter … num_iters - 1`` are yielded (``num_iters`` is the run's total).
    - The sample stream is a sequence of epochs; epoch *e* is the permutation
      ``default_rng([seed, e]).permutation(n)``, and global slot *s* of iteration *i* takes
      position ``i * batch_size + s`` of that stream. Its augmentation seed is derived from
      ``(seed, i, s)``. Nothing depends on earlier iterations, hence resuming is exact.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start_iter: int,
        num_iters: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if n <= 0:
            raise ValueError("the dataset is empty")
        if batch_size <= 0 or batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must be a positive multiple of world_size {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if seed < 0 or start_iter < 0:
            raise ValueError("seed and start_iter must be >= 0")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_iter, self.num_iters = start_iter, num_iters
        self.rank, self.world_size = rank, world_size
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return max(0, self.num_iters - self.start_iter)

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # a batch spans at most a few epochs
                self._perms.pop(next(iter(self._perms)))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def sample_seed(self, iteration: int, slot: int) -> int:
        """Augmentation seed of global ``slot`` in ``iteration``."""
        return int(np.random.SeedSequence([self.seed, iteration, slot]).generate_state(1, np.uint64)[0])

    def batch_for(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's ``(index, seed)`` pairs for ``iteration``."""
        local = self.batch_size // self.world_size
        slots = range(self.rank * local, (self.rank + 1) * local)
        out = []
        for slot in slots:
            pos = iteration * self.batch_size + slot
            index = int(self._perm(pos // self.n)[pos % self.n])
            out.append((index, self.sample_seed(iteration, slot)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for iteration in range(self.start_iter, self.num_iters):
            yield self.batch_for(iteration)
