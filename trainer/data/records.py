"""What a multi-expert dataset holds: cores, their image file and each expert's mask file.

Layout readers (:mod:`gleason2019`, :mod:`generic`) only list files and build these records;
pixels are read on demand by :func:`load_core` into a :class:`~trainer.data.core.Core`. Not
every expert annotated every core: a core's ``masks`` holds only the experts that did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.classes import ClassScheme
from trainer.data.core import Core, natural_sorted
from trainer.data.io import read_image, read_mask
from trainer.errors import InputError


@dataclass
class CoreRecord:
    """One core (image) and the mask file of every expert who annotated it."""

    name: str
    image_path: Path
    masks: dict[str, Path]

    @property
    def experts(self) -> tuple[str, ...]:
        """Names of the experts who annotated this core."""
        return tuple(self.masks)

    def has_experts(self, experts: tuple[str, ...] | list[str]) -> bool:
        """True when every expert in ``experts`` annotated this core."""
        return all(e in self.masks for e in experts)


@dataclass
class MultiExpertSet:
    """A dataset of cores annotated by several experts.

    ``layout`` is ``"gleason2019"`` or ``"generic"``; ``experts`` lists every expert of the
    dataset in natural order (:func:`~trainer.data.core.natural_key`), as does each core's ``masks``; ``notes``
    records what was skipped while reading, for the user.
    """

    root: Path
    layout: str
    scheme: ClassScheme
    experts: tuple[str, ...]
    cores: list[CoreRecord]
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # one expert order from here on, whatever the layout reader listed (:func:`~trainer.data.core.natural_key`)
        self.experts = tuple(natural_sorted(self.experts))
        for c in self.cores:
            c.masks = {e: c.masks[e] for e in natural_sorted(c.masks)}
        self._by_name = {c.name: c for c in self.cores}

    def __len__(self) -> int:
        return len(self.cores)

    @property
    def names(self) -> list[str]:
        """Core names in dataset order."""
        return [c.name for c in self.cores]

    def core(self, name: str) -> CoreRecord:
        """The record of core ``name``; an :class:`InputError` naming the dataset if absent."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(f"no core named {name!r} in this dataset", self.root) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def origin(self, name: str) -> dict[str, str]:
        """Where core ``name`` comes from: its image file, this dataset's root and layout."""
        return {"source": str(self.core(name).image_path), "dataset": str(self.root), "layout": self.layout}

    def load(self, name: str) -> Core:
        """Core ``name`` read into memory (:func:`load_core`), its origin in this dataset."""
        return load_core(self.core(name), self.scheme, self.origin(name))


def load_core(record: CoreRecord, scheme: ClassScheme, origin: dict | None = None) -> Core:
    """Read a core's image and every expert mask (checked against the image size) into a
    :class:`~trainer.data.core.Core`; ``origin`` defaults to the image file."""
    image = read_image(record.image_path)
    masks = {e: read_mask(p, scheme, shape=image.shape[:2]) for e, p in record.masks.items()}
    return Core(record.name, image, masks, scheme, origin=origin or {"source": str(record.image_path)})
