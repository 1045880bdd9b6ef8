"""What a core is to the plugin: its pixels (:class:`CoreData`) and how labels are shown
(:class:`LabelCoding`). Plain data, no Qt and no viewer: readers, the store, sample data and
tests build these; :mod:`._layers` turns them into napari layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# LabelCoding (label value <-> class index, the one conversion) lives with the classes in the trainer
from trainer.data.classes import BENIGN_ALPHA, ClassScheme, LabelCoding  # noqa: F401
from trainer.data.records import natural_key


def role_prefix(role: str) -> str:
    """``"expert:3"`` -> ``"expert"``."""
    return role.split(":", 1)[0]


@dataclass
class CoreData:
    """One core as the plugin shows it (Qt-free; readers, the store and sample data make these).

    ``image`` is ``uint8 H×W×3`` or a multiscale list (level 0 first, lazy arrays allowed);
    ``masks`` maps expert name -> uint8 class map; ``extras`` maps a role (``consensus:vote``,
    ``truth``, ``corrected``) -> uint8 class map; ``labels`` maps a role to data *already* in
    label values (the review store hands out lazy pyramids this way, so reopening a core reads
    only what is drawn); ``origin`` says where the core came from (``source`` file, ``dataset``
    root and ``layout``, ``store``) for export and caching; ``notes`` say what the viewer must
    tell the user (an expert mask that could not be read, left out of this opening).
    """

    name: str
    image: Any
    masks: dict[str, np.ndarray]
    scheme: ClassScheme
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    scale: tuple[float, float] = (1.0, 1.0)
    labels: dict[str, Any] = field(default_factory=dict)
    #: image roles (``probability:<class>``, ``weight:<expert>``, ``roughness``) -> data, e.g. the
    #: lazy pyramids of a prediction kept in the review store
    maps: dict[str, Any] = field(default_factory=dict)
    #: what whoever shows this core must tell the user about it (an expert's mask left out, and why)
    notes: list[str] = field(default_factory=list)

    @property
    def multiscale(self) -> bool:
        return isinstance(self.image, (list, tuple))

    @property
    def shape(self) -> tuple[int, int]:
        level0 = self.image[0] if self.multiscale else self.image
        return tuple(level0.shape[:2])

    def label_roles(self) -> dict[str, tuple[Any, bool]]:
        """role -> (data, in_label_values) for every labels layer, experts first (in natural order:
        :func:`trainer.data.records.natural_key`); ``in_label_values``: in label values."""
        out = {f"expert:{e}": (m, False) for e, m in self.masks.items()}
        out.update({r: (m, False) for r, m in self.extras.items()})
        out.update({r: (m, True) for r, m in self.labels.items()})
        def rank(role: str):
            return (0, natural_key(role.split(":", 1)[1])) if role_prefix(role) == "expert" else (1, ())

        return dict(sorted(out.items(), key=lambda kv: rank(kv[0])))

    @property
    def experts(self) -> list[str]:
        return [r.split(":", 1)[1] for r in self.label_roles() if role_prefix(r) == "expert"]

    def class_maps(self) -> dict[str, np.ndarray]:
        """role -> uint8 class map at full resolution (reads lazy label data)."""
        coding = LabelCoding.from_scheme(self.scheme)
        out = {}
        for role, (data, in_label_values) in self.label_roles().items():
            data = data[0] if isinstance(data, (list, tuple)) else data
            out[role] = coding.to_classes(np.asarray(data)) if in_label_values else np.asarray(data)
        return out
