"""What a core is to the plugin: its pixels (:class:`CoreData`) and how labels are shown
(:class:`LabelCoding`). Plain data, no Qt and no viewer: readers, the store, sample data and
tests build these; :mod:`._layers` turns them into napari layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.data.classes import CLASS_COLORS, GLEASON_CLASSES, IGNORE_INDEX, ClassScheme

#: Benign is drawn half-transparent so the tissue stays readable under a whole-core mask.
BENIGN_ALPHA = 0.45

#: Fallback class colours for schemes other than the paper's four classes (RGB 0-255).
_OTHER_COLORS = ((200, 200, 200), (230, 25, 25), (25, 190, 25), (30, 60, 230), (240, 160, 20),
                 (150, 40, 200), (20, 200, 200), (230, 60, 160), (120, 90, 40), (90, 90, 90))


def role_prefix(role: str) -> str:
    """``"expert:3"`` -> ``"expert"``."""
    return role.split(":", 1)[0]


@dataclass(frozen=True)
class LabelCoding:
    """Class index <-> napari label value, plus the class colours.

    ``values[c]`` is the label value shown for class ``c``; 0 always means "no label"
    (:data:`IGNORE_INDEX` in class maps) and is transparent. When a scheme's export values are
    all non-zero and distinct (Gleason: benign 1, G3 3, G4 4, G5 5) they are used, so the value a
    pathologist paints *is* the Gleason value written on export; otherwise class ``c`` shows as
    ``c + 1``.
    """

    names: tuple[str, ...]
    values: tuple[int, ...]
    colors: tuple[tuple[int, int, int], ...]

    @classmethod
    def from_scheme(cls, scheme: ClassScheme) -> LabelCoding:
        n = scheme.num_classes
        export = tuple(scheme.export_value(c) for c in range(n))
        usable = all(0 < v < 256 for v in export) and len(set(export)) == n
        values = export if usable else tuple(range(1, n + 1))
        paper = tuple(scheme.names) == GLEASON_CLASSES or n == len(CLASS_COLORS)
        colors = tuple(CLASS_COLORS) if paper else tuple(_OTHER_COLORS[c % len(_OTHER_COLORS)] for c in range(n))
        return cls(tuple(scheme.names), values, colors)

    def _lut_to_labels(self) -> np.ndarray:
        lut = np.zeros(256, np.uint8)  # IGNORE_INDEX and any unknown index -> 0 (no label)
        lut[: len(self.values)] = self.values
        return lut

    def _lut_to_classes(self) -> np.ndarray:
        lut = np.full(256, IGNORE_INDEX, np.uint8)  # 0 and values no class uses -> ignored
        lut[list(self.values)] = np.arange(len(self.values), dtype=np.uint8)
        return lut

    def to_labels(self, class_map: np.ndarray) -> np.ndarray:
        """uint8 class indices -> uint8 label values (one table lookup)."""
        return self._lut_to_labels()[np.asarray(class_map, dtype=np.uint8)]

    def to_classes(self, labels: np.ndarray) -> np.ndarray:
        """Label values -> uint8 class indices; 0 and unknown values become IGNORE_INDEX."""
        labels = np.asarray(labels)
        if labels.dtype != np.uint8:  # a user may paint label 300 on an int32 layer
            labels = np.where((labels < 0) | (labels > 255), 0, labels).astype(np.uint8)
        return self._lut_to_classes()[labels]

    def unknown_values(self, labels: np.ndarray) -> list[int]:
        """Label values present in ``labels`` that are neither 0 nor a class (e.g. painted by hand)."""
        found = np.unique(np.asarray(labels))
        return [int(v) for v in found if v != 0 and int(v) not in self.values]

    def colormap(self) -> dict:
        """Direct label colormap: class colours, benign half-transparent, 0 and unknowns clear."""
        cmap: dict[int | None, tuple[float, ...]] = {0: (0.0, 0.0, 0.0, 0.0), None: (0.0, 0.0, 0.0, 0.0)}
        for c, (value, rgb) in enumerate(zip(self.values, self.colors)):
            # class 0 of a generic scheme is usually benign/background too: keep it see-through
            alpha = BENIGN_ALPHA if c == 0 or self.names[c] == "benign" else 1.0
            cmap[value] = (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, alpha)
        return cmap

    def to_dict(self) -> dict:
        return {"names": list(self.names), "values": list(self.values), "colors": [list(c) for c in self.colors]}

    @classmethod
    def from_dict(cls, d: dict) -> LabelCoding:
        return cls(tuple(d["names"]), tuple(int(v) for v in d["values"]), tuple(tuple(c) for c in d["colors"]))


@dataclass
class CoreData:
    """One core as the plugin shows it (Qt-free; readers, the store and sample data make these).

    ``image`` is ``uint8 H×W×3`` or a multiscale list (level 0 first, lazy arrays allowed);
    ``masks`` maps expert name -> uint8 class map; ``extras`` maps a role (``consensus:vote``,
    ``truth``, ``corrected``) -> uint8 class map; ``labels`` maps a role to data *already* in
    label values (the review store hands out lazy pyramids this way, so reopening a core reads
    only what is drawn); ``origin`` says where the core came from (``source`` file, ``dataset``
    root and ``layout``, ``store``) for export and caching.
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

    @property
    def multiscale(self) -> bool:
        return isinstance(self.image, (list, tuple))

    @property
    def shape(self) -> tuple[int, int]:
        level0 = self.image[0] if self.multiscale else self.image
        return tuple(level0.shape[:2])

    def label_roles(self) -> dict[str, tuple[Any, bool]]:
        """role -> (data, in_label_values) for every labels layer, experts first; ``in_label_values``: in label values."""
        out = {f"expert:{e}": (m, False) for e, m in self.masks.items()}
        out.update({r: (m, False) for r, m in self.extras.items()})
        out.update({r: (m, True) for r, m in self.labels.items()})
        return dict(sorted(out.items(), key=lambda kv: role_prefix(kv[0]) != "expert"))

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
