"""Fakes for what users' files look like: masks holding chosen values, and each file format.

Masks: grey, palette (indices, with a colourful palette), 16-bit, grey-valued RGB, RGB with
colours. Images: PNG, JPEG (upper-case suffix too), plain TIFF and pyramidal OME-TIFF (level 0
plus sub-resolutions in SubIFDs, written with tifffile as OME-NGFF converters do).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from tests.fakes import fake_image


def stripes(values: list[int], shape: tuple[int, int] = (32, 32), dtype=np.uint8) -> np.ndarray:
    """A mask holding exactly ``values``, in horizontal stripes of equal height."""
    h, w = shape
    rows = np.array_split(np.arange(h), len(values))
    out = np.zeros(shape, dtype)
    for v, r in zip(values, rows):
        out[r, :] = v
    return out


def save_mask_as(path: Path, values: np.ndarray, kind: str) -> None:
    """Write label ``values`` as ``kind``: L, P (palette indices), I16 (16-bit grey), RGB (equal channels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "L":
        Image.fromarray(values.astype(np.uint8), mode="L").save(path)
    elif kind == "P":
        img = Image.fromarray(values.astype(np.uint8), mode="P")
        img.putpalette([c for i in range(256) for c in ((i * 53) % 256, (255 - i * 29) % 256, (i * 101) % 256)])
        img.save(path)
    elif kind == "I16":
        Image.fromarray(values.astype(np.uint16)).save(path)  # Pillow writes a 16-bit grey PNG
    elif kind == "RGB":
        Image.fromarray(np.repeat(values.astype(np.uint8)[..., None], 3, axis=2), mode="RGB").save(path)
    else:
        raise ValueError(kind)


def write_labelled_generic(
    root: Path,
    cores: dict[str, dict[str, list[int]]],
    shape: tuple[int, int] = (32, 32),
    classes: dict | None = None,
    seed: int = 0,
) -> Path:
    """Generic layout: core -> {annotator: the values its mask holds}; images are PNG."""
    import json

    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    if classes is not None:
        (root / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    for name, masks in cores.items():
        Image.fromarray(fake_image(rng, shape)).save(root / "images" / f"{name}.png")
        for annotator, values in masks.items():
            save_mask_as(root / "masks" / annotator / f"{name}.png", stripes(values, shape), "L")
    return root


def write_ome_pyramid(path: Path, image: np.ndarray, levels: int = 3, tile: int = 16) -> Path:
    """A tiled pyramidal OME-TIFF: ``image`` (H×W×3 uint8) at level 0, halved sizes in SubIFDs."""
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        opts = dict(tile=(tile, tile), photometric="rgb", compression="zlib")
        tif.write(image, subifds=levels - 1, metadata={"axes": "YXS"}, **opts)
        level = image
        for _ in range(levels - 1):
            level = level[::2, ::2]
            tif.write(level, subfiletype=1, **opts)
    return path
