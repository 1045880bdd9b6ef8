"""Cores whose labels a pathologist corrected: the human-in-the-loop part of fine-tuning.

A corrected core has one authoritative label map (exported from an edited consensus or prediction
layer). It trains the segmentation network through the vote term only: its ``vote`` is the
corrected map, no expert is ``present`` (so eq. 3's weighted term and the weighting CNN ignore it),
and it gets the same augmentations as every other core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import augment as augment_core
from .augment import normalise
from .classes import IGNORE_INDEX, ClassScheme
from .core_cache import CoreCache
from .dataset import resized_planes
from .device_augment import seed_to_int64


@dataclass(frozen=True)
class CorrectedRecord:
    """A corrected core's files (an entry of ``data.corrected``), as :class:`~trainer.data.records.CoreRecord`
    holds a dataset core's."""

    name: str
    image: Path
    mask: Path  # PNG in the dataset's raw values (e.g. Gleason values), as the exporter writes it

    @classmethod
    def from_dict(cls, d: dict) -> "CorrectedRecord":
        return cls(str(d["name"]), Path(d["image"]), Path(d["mask"]))


class CorrectedCoreSet(Dataset):
    """Items shaped like :class:`~trainer.data.dataset.MultiExpertDataset`'s, indexed by (index, seed).

    With ``device_augment=True`` items are uint8 and un-augmented, as the multi-expert dataset's
    are then; the corrected map rides in expert channel 0 with no expert ``present``, so the vote
    computed on the device is that map and the channel is reset to ignored afterwards
    (:mod:`trainer.data.device_augment`). ``cache_dir`` keeps the resized core on disk.
    """

    def __init__(self, cores: list[CorrectedRecord], scheme: ClassScheme, num_experts: int, size: int,
                 augment: bool = True, cache_dir: str | Path | None = None, device_augment: bool = False):
        self.cores, self.scheme, self.num_experts = list(cores), scheme, num_experts
        self.size, self.augment = size, augment
        self.disk = CoreCache(cache_dir) if cache_dir else None
        self.device_augment = device_augment
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.cores)

    def _load(self, index: int) -> np.ndarray:
        """uint8 4×S×S: the resized image's colour planes, then the corrected class map."""
        if index not in self._cache:
            core = self.cores[index]
            self._cache[index] = resized_planes(core.name, core.image, [("corrected", core.mask)], self.scheme,
                                                self.size, self.disk)
        return self._cache[index]

    def __getitem__(self, key) -> dict:
        index, seed = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), int(key))
        planes = self._load(index)
        h, w = planes.shape[1:]
        if self.device_augment:
            experts = torch.full((self.num_experts, h, w), IGNORE_INDEX, dtype=torch.uint8)
            experts[0] = torch.from_numpy(np.array(planes[3]))
            return {
                "image": torch.from_numpy(np.array(planes[:3])),
                "experts": experts,
                "present": torch.zeros(self.num_experts, dtype=torch.bool),
                "seed": torch.tensor(seed_to_int64(seed)),
                "name": self.cores[index].name,
            }
        image, mask = normalise(np.moveaxis(planes[:3], 0, -1)), np.array(planes[3:])
        if self.augment:
            image, mask = augment_core(image, mask, np.random.default_rng(seed), image_fill=0.0)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "experts": torch.full((self.num_experts, h, w), IGNORE_INDEX, dtype=torch.int64),
            "present": torch.zeros(self.num_experts, dtype=torch.bool),
            "vote": torch.from_numpy(mask[0].astype(np.int64)),
            "name": self.cores[index].name,
        }


class MixedDataset(Dataset):
    """The dataset's training cores followed by the corrected cores, each repeated ``repeat`` times
    so that a single corrected core is actually seen during a short fine-tuning run."""

    def __init__(self, base: Dataset, extra: CorrectedCoreSet, repeat: int):
        self.base, self.extra, self.repeat = base, extra, max(int(repeat), 1)

    def __len__(self) -> int:
        return len(self.base) + len(self.extra) * self.repeat

    def __getitem__(self, key) -> dict:
        index, seed = key
        if index < len(self.base):
            return self.base[(index, seed)]
        return self.extra[((index - len(self.base)) % len(self.extra), seed)]


def default_repeat(n_base: int, n_extra: int) -> int:
    """About a quarter of the samples come from the corrected cores."""
    return max(1, round(n_base / (3 * max(n_extra, 1))))
