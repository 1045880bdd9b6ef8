"""OME-Zarr (NGFF 0.5) pieces shared by the store's reader and writers: JSON files replaced
atomically, ``multiscales`` metadata, the one label-image metadata helper, label key names; the
pyramid rule is :mod:`trainer.pyramid`'s (re-exported here).
"""

from __future__ import annotations

import hashlib
import re

import json
from pathlib import Path


from trainer.atomic import atomic_write
from trainer.pyramid import halve, level_shapes, pyramid  # noqa: F401 (the store's names for them)
from trainer.data.classes import LabelCoding

NGFF_VERSION = "0.5"
#: The attribute key under which napari-gleason keeps its own metadata.
STORE_KEY = "napari_gleason"
CHUNK = 1024

YX = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
CYX = [{"name": "c", "type": "channel"}, *YX]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json_atomic(path: Path, obj: dict) -> None:
    """Replace ``path`` with ``obj`` as JSON (:func:`trainer.atomic.atomic_write`: an OS error is an
    ``InputError`` naming the file, and no temporary file stays)."""
    with atomic_write(path, "w", what="the store's metadata") as f:
        json.dump(obj, f, indent=2)


def multiscale(name: str, axes: list[dict], shapes: list[tuple[int, ...]], kind: str) -> dict:
    """One NGFF ``multiscales`` entry: a scale (and half-pixel translation) per level."""
    base = shapes[0]
    datasets = []
    for i, shape in enumerate(shapes):
        scale = [1.0 if ax["type"] == "channel" else base[d] / shape[d] for d, ax in enumerate(axes)]
        shift = [0.0 if ax["type"] == "channel" else (s - 1) / 2 for ax, s in zip(axes, scale)]
        transforms = [{"type": "scale", "scale": scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": shift})
        datasets.append({"path": str(i), "coordinateTransformations": transforms})
    return {"name": name, "axes": axes, "datasets": datasets, "type": kind}


def rgba(coding: LabelCoding) -> list[list[int]]:
    cmap = coding.colormap()
    return [[int(round(255 * v)) for v in cmap[value]] for value in coding.values]


def label_image_attrs(key: str, shapes: list[tuple[int, int]], coding: LabelCoding, extra: dict) -> dict:
    """Attributes of an OME-Zarr label image: multiscales, ``image-label`` colours and class names,
    and napari-gleason's own ``extra`` (its role, the prediction id)."""
    colors = [{"label-value": int(v), "rgba": c} for v, c in zip(coding.values, rgba(coding))]
    props = [{"label-value": int(v), "class": n} for n, v in zip(coding.names, coding.values)]
    ome = {"version": NGFF_VERSION, "multiscales": [multiscale(key, YX, shapes, "nearest")],
           "image-label": {"colors": colors, "properties": props, "source": {"image": "../../"}}}
    return {"ome": ome, STORE_KEY: extra}


def safe_key(name: str) -> str:
    """A zarr node name for ``name``: kept if plain ASCII, else made plain plus a short hash."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        return name
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._") or "x"
    return f"{plain}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def label_key(role: str) -> str:
    """``expert:1`` -> ``expert_1``; ``consensus:vote`` -> ``consensus_vote``."""
    return safe_key(role.replace(":", "_"))
