"""A core in memory, from whatever source: the one type the loaders, the review store, the CLI and
the plugin hand each other.

A folder dataset (either layout), a single image file, the review store and the synthetic sample
all build a :class:`Core`; the plugin turns it into napari layers and the store writes it. Class
maps (uint8 class indices, :data:`~trainer.data.classes.IGNORE_INDEX` where unlabelled) are what
a core holds; label values (the mask files' and the viewer's numbers) appear only where a core
is read, written or drawn. The one exception is ``labels``: data that *is* already in label values
and lazy, as the review store's pyramids are, so that reopening a core converts no pixel it does
not draw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .classes import ClassScheme, LabelCoding


def natural_key(name: str) -> tuple:
    """Sort key of an expert (or folder) name: case-insensitive, digit runs compared as numbers —
    ``NP2`` before ``NP10``, ``expert`` before ``NP1``; names that tie (``NP01``, ``NP1``) keep a
    fixed order by the name itself. Every view and output that lists experts uses this order."""
    parts = re.split(r"(\d+)", str(name))  # text at even positions, digits at odd: comparable pairwise
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), str(name)


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in :func:`natural_key` order."""
    return sorted(names, key=natural_key)


def role_prefix(role: str) -> str:
    """``"expert:3"`` -> ``"expert"``: the kind of a layer's role (``expert``, ``consensus``,
    ``probability``, ``weight``, ...)."""
    return role.split(":", 1)[0]


@dataclass
class Core:
    """One core: its pixels, every expert's class map and what the core is.

    ``image``: uint8 ``H×W×3``, or a multiscale list (level 0 first; lazy arrays allowed).
    ``masks``: expert name -> uint8 class map of the image's size (only the experts who annotated
    the core). ``scheme``: the dataset's classes. ``extras``: role (``consensus:vote``, ``truth``,
    ``corrected``) -> uint8 class map. ``labels``: role -> data *in label values* (lazy pyramids of
    the review store). ``maps``: image role (``probability:<class>``, ``weight:<expert>``,
    ``roughness``) -> float data, e.g. a stored prediction. ``origin``: where it came from
    (``source`` image file, ``dataset`` root and ``layout``, ``store``), for export and caching.
    ``scale``: the layers' pixel scale. ``notes``: what whoever shows the core must tell the user
    (an expert's mask left out, and why).
    """

    name: str
    image: Any
    masks: dict[str, np.ndarray]
    scheme: ClassScheme
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    scale: tuple[float, float] = (1.0, 1.0)
    labels: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def multiscale(self) -> bool:
        return isinstance(self.image, (list, tuple))

    @property
    def shape(self) -> tuple[int, int]:
        level0 = self.image[0] if self.multiscale else self.image
        return tuple(level0.shape[:2])

    def label_roles(self) -> dict[str, tuple[Any, bool]]:
        """role -> (data, in label values) of every label image: the experts first (in natural
        order, :func:`natural_key`), then ``extras`` and ``labels``."""
        out = {f"expert:{e}": (m, False) for e, m in self.masks.items()}
        out.update({r: (m, False) for r, m in self.extras.items()})
        out.update({r: (m, True) for r, m in self.labels.items()})

        def rank(role: str):
            return (0, natural_key(role.split(":", 1)[1])) if role_prefix(role) == "expert" else (1, ())

        return dict(sorted(out.items(), key=lambda kv: rank(kv[0])))

    @property
    def experts(self) -> list[str]:
        """The experts with a label image, in natural order."""
        return [r.split(":", 1)[1] for r in self.label_roles() if role_prefix(r) == "expert"]

    def class_maps(self) -> dict[str, np.ndarray]:
        """role -> uint8 class map at full resolution (reads lazy label data: level 0)."""
        coding = LabelCoding.from_scheme(self.scheme)
        out = {}
        for role, (data, in_label_values) in self.label_roles().items():
            data = data[0] if isinstance(data, (list, tuple)) else data
            out[role] = coding.to_classes(np.asarray(data)) if in_label_values else np.asarray(data)
        return out
