"""Class definitions: the four classes of the paper (Table 1) and the Gleason 2019 value map."""

from __future__ import annotations

from dataclasses import dataclass

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
    """

    names: tuple[str, ...]
    values: dict[int, int]
    ignore: tuple[int, ...] = ()
    export_values: tuple[int, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def export_value(self, class_index: int) -> int:
        if self.export_values is not None:
            return self.export_values[class_index]
        return class_index

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "values": {str(k): v for k, v in self.values.items()},
            "ignore": list(self.ignore),
            "export_values": None if self.export_values is None else list(self.export_values),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ClassScheme":
        return cls(
            names=tuple(d["names"]),
            values={int(k): int(v) for k, v in d["values"].items()},
            ignore=tuple(int(v) for v in d.get("ignore", ())),
            export_values=None if d.get("export_values") is None else tuple(d["export_values"]),
        )


GLEASON_SCHEME = ClassScheme(
    names=GLEASON_CLASSES,
    values=dict(GLEASON_VALUE_TO_CLASS),
    ignore=(),
    export_values=CLASS_TO_GLEASON_VALUE,
)
