"""Class definitions: the four classes of the paper (Table 1) and the Gleason 2019 value map."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Index used in class maps for pixels that no loss or metric counts (missing expert, unknown).
IGNORE_INDEX = 255

GLEASON_CLASSES: tuple[str, ...] = ("benign", "G3", "G4", "G5")

#: Gleason 2019 mask values -> class index. 0, 1, 6 are benign (paper, section 3.1).
GLEASON_VALUE_TO_CLASS: dict[int, int] = {0: 0, 1: 0, 6: 0, 3: 1, 4: 2, 5: 3}

#: Class index -> the Gleason value written when exporting a class map (benign -> 1).
CLASS_TO_GLEASON_VALUE: tuple[int, ...] = (1, 3, 4, 5)

#: Display colours (RGB 0-255) as in the paper's Fig. 4: G3 red, G4 green, G5 blue, benign neutral.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (200, 200, 200),
    (230, 25, 25),
    (25, 190, 25),
    (30, 60, 230),
)


@dataclass(frozen=True)
class ClassScheme:
    """How raw mask values map to class indices.

    ``values`` maps a raw mask value to a class index; ``ignore`` lists raw values that no
    loss or metric counts (they become :data:`IGNORE_INDEX`). A raw value in neither is an error.
    ``export_values[c]`` is the raw value written back for class ``c``.
    ``annotation_names`` maps a QuPath classification name to the raw value its GeoJSON regions
    stand for (classes.json's ``"names"``, :mod:`trainer.data.geojson`); it says how files are
    read, not what the classes are, so two schemes that differ only there compare equal.
    """

    names: tuple[str, ...]
    values: dict[int, int]
    ignore: tuple[int, ...] = ()
    export_values: tuple[int, ...] | None = None
    annotation_names: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def export_value(self, class_index: int) -> int:
        if self.export_values is not None:
            return self.export_values[class_index]
        return class_index

    def to_dict(self) -> dict:
        d = {
            "names": list(self.names),
            "values": {str(k): v for k, v in self.values.items()},
            "ignore": list(self.ignore),
            "export_values": None if self.export_values is None else list(self.export_values),
        }
        if self.annotation_names:  # absent otherwise, so dicts written before it read the same
            d["annotation_names"] = dict(self.annotation_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassScheme":
        return cls(
            names=tuple(d["names"]),
            values={int(k): int(v) for k, v in d["values"].items()},
            ignore=tuple(int(v) for v in d.get("ignore", ())),
            export_values=None if d.get("export_values") is None else tuple(d["export_values"]),
            annotation_names={str(k): int(v) for k, v in (d.get("annotation_names") or {}).items()},
        )


GLEASON_SCHEME = ClassScheme(
    names=GLEASON_CLASSES,
    values=dict(GLEASON_VALUE_TO_CLASS),
    ignore=(),
    export_values=CLASS_TO_GLEASON_VALUE,
)


# --- label values <-> class indices: the one place they are converted ---------------------------

#: Benign is drawn half-transparent so the tissue stays readable under a whole-core mask.
BENIGN_ALPHA = 0.45

#: Fallback class colours for schemes other than the paper's four classes (RGB 0-255).
OTHER_COLORS = ((200, 200, 200), (230, 25, 25), (25, 190, 25), (30, 60, 230), (240, 160, 20),
                (150, 40, 200), (20, 200, 200), (230, 60, 160), (120, 90, 40), (90, 90, 90))


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
        colors = tuple(CLASS_COLORS) if paper else tuple(OTHER_COLORS[c % len(OTHER_COLORS)] for c in range(n))
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
