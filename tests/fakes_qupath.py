"""QuPath GeoJSON fakes: features as QuPath exports them (``File › Export objects as GeoJSON``) and a
generic dataset whose experts are a PNG (``ann``) and a QuPath GeoJSON export (``qupath``).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32
CLASSES = {"classes": ["benign", "G3", "G4", "G5"], "values": {"0": 0, "1": 0, "3": 1, "4": 2, "5": 3},
           "ignore": [255], "names": {"Benign": 1, "Gleason 3": 3, "Gleason 4": 4, "Gleason 5": 5, "Ignore*": 255}}


def feature(name: str | None, geometry: dict, object_type: str = "annotation", color: bool = True) -> dict:
    """A feature as QuPath exports it (``id`` a UUID, ``classification`` with its colour)."""
    props: dict = {"objectType": object_type}
    if name is not None:
        props["classification"] = {"name": name, "color": [200, 0, 0]} if color else {"name": name,
                                                                                    "colorRGB": -3670016}
    return {"type": "Feature", "id": str(uuid.uuid4()), "geometry": geometry, "properties": props}


def poly(*rings) -> dict:
    return {"type": "Polygon", "coordinates": [[list(p) for p in r] for r in rings]}


def multi(*polys) -> dict:
    return {"type": "MultiPolygon", "coordinates": [p["coordinates"] for p in polys]}


def collection(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def save(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def square(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]


def expert_maps() -> tuple[np.ndarray, list[dict]]:
    """The PNG expert's raw values and the QuPath expert's features for one core."""
    png = np.zeros((H, W), np.uint8)
    png[4:20, 4:28] = 3
    png[8:12, 8:12] = 4
    feats = [feature("Gleason 3", poly(square(4, 4, 28, 20), square(8, 8, 12, 12))),
             feature("Gleason 4", multi(poly(square(8, 8, 12, 12)), poly(square(20, 14, 26, 18))))]
    return png, feats


def make_mixed_dataset(root: Path, classes: dict | None = CLASSES) -> Path:
    """Generic layout: cores a and b, expert ``ann`` as PNG, expert ``qupath`` as QuPath GeoJSON."""
    for sub in ("images", "masks/ann", "masks/qupath"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if classes is not None:
        save(root / "classes.json", classes)
    rng = np.random.default_rng(1)
    png, feats = expert_maps()
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(png).save(root / "masks" / "ann" / f"{name}.png")
        save(root / "masks" / "qupath" / f"{name}.geojson", collection(*feats))
    return root


def qupath_classes() -> np.ndarray:
    want = np.zeros((H, W), np.uint8)
    want[4:20, 4:28] = 1
    want[8:12, 8:12] = 2
    want[14:18, 20:26] = 2
    return want
