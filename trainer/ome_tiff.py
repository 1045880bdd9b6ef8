"""Pyramidal OME-TIFF: the map format QuPath and Fiji (Bio-Formats) open, overlaid on the core.

:func:`write_ome_tiff` writes a 2-D map (``H×W``: an error, weight, probability or roughness map,
or a class mask) or a ``C×H×W`` stack (the probabilities of every class) as one tiled, zlib-compressed
(lossless) OME-TIFF with its smaller levels as sub-IFDs, the layout QuPath and Bio-Formats read as a
pyramid. Each level halves the one before until the smaller side is at most ``min_size`` (512):
float maps by the mean of 2×2 blocks (odd sizes floored; NaN off the tissue stays NaN), integer
maps (labels) by taking every other pixel so that they keep their values — the review store's rule
(:mod:`trainer.pyramid`).

The pixel size is written (OME ``PhysicalSizeX/Y`` in µm, and the TIFF resolution tags in
centimetres for readers without Bio-Formats) only when it is known: napari-gleason's own data never
record it (Gleason 2019's JPEGs carry none, the review store's scales are in core pixels), so it
comes from the user or from the core's image when that is a TIFF that states it
(:func:`pixel_size_um`). Without it the file is in pixels, which QuPath overlays on the core just
as well. The file is written atomically (:func:`trainer.atomic.atomic_write`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import InputError
from .pyramid import pyramid

#: The pyramid stops once the smaller side of a level is at most this.
MIN_LEVEL_SIZE = 512
TILE = 256
#: µm per unit of an OME ``PhysicalSizeXUnit``.
_OME_UNITS_UM = {"µm": 1.0, "um": 1.0, "micron": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "Å": 1e-4}
#: A TIFF resolution of this many µm per pixel or more is a screen or print dpi, not a microscope's.
_MAX_PLAUSIBLE_UM = 20.0


def write_ome_tiff(
    path: str | Path,
    array: np.ndarray,
    pixel_size_um: float | tuple[float, float] | None = None,
    channel_names: Sequence[str] | None = None,
    *,
    name: str | None = None,
    min_size: int = MIN_LEVEL_SIZE,
    what: str = "the OME-TIFF",
) -> Path:
    """Write ``array`` (``H×W`` or ``C×H×W``; float, integer or bool) as a pyramidal OME-TIFF at ``path``.

    ``pixel_size_um``: µm per pixel (one value, or ``(y, x)``) at level 0, or ``None`` when unknown
    (then no physical size is written). ``channel_names`` name the planes of a ``C×H×W`` stack (or
    the one plane of a map). Float maps are written as float32, booleans as uint8. An ``OSError``
    (full disk, read-only folder) becomes an :class:`~trainer.errors.InputError` naming ``path``, and
    nothing is left behind.
    """
    import tifffile

    path = Path(path)
    array = np.asarray(array)
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ValueError(f"need an H×W map or a C×H×W stack, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    elif not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"cannot write a map of {array.dtype}")
    axes = "YX" if array.ndim == 2 else "CYX"
    planes = 1 if array.ndim == 2 else array.shape[0]
    metadata: dict = {"axes": axes}
    if name:
        metadata["Name"] = name
    if channel_names is not None:
        if len(channel_names) != planes:
            raise ValueError(f"{len(channel_names)} channel names for {planes} planes")
        metadata["Channel"] = {"Name": [str(n) for n in channel_names]}
    size_yx = _pixel_size_pair(pixel_size_um)
    if size_yx is not None:
        metadata.update(PhysicalSizeY=size_yx[0], PhysicalSizeYUnit="µm",
                        PhysicalSizeX=size_yx[1], PhysicalSizeXUnit="µm")
    kind = "map" if np.issubdtype(array.dtype, np.floating) else "labels"  # integers: class masks
    levels = pyramid(array, kind, min_size=min_size)
    options = {"tile": (TILE, TILE), "compression": "zlib", "photometric": "minisblack"}
    with atomic_write(path, "wb", what=what) as f:
        # named here: tifffile takes the name from ``f.name``, an int for a file opened from a descriptor
        handle = tifffile.FileHandle(f, mode="wb", name=path.name, size=0)
        with tifffile.TiffWriter(handle, bigtiff=array.nbytes > 2**31, ome=True) as tif:
            for i, level in enumerate(levels):
                factor = 2**i
                resolution = {} if size_yx is None else {
                    "resolution": (1e4 / (size_yx[1] * factor), 1e4 / (size_yx[0] * factor)),
                    "resolutionunit": "CENTIMETER"}
                if i == 0:
                    tif.write(level, subifds=len(levels) - 1, metadata=metadata, **resolution, **options)
                else:  # a reduced-resolution sub-IFD of level 0
                    tif.write(level, subfiletype=1, metadata=None, **resolution, **options)
    return path


def _pixel_size_pair(value) -> tuple[float, float] | None:
    if value is None:
        return None
    pair = (float(value), float(value)) if np.isscalar(value) else tuple(float(v) for v in value)
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"the pixel size must be a positive number of µm, got {value!r}")
    return pair


def pixel_size_um(image_path: str | Path | None) -> tuple[float, float] | None:
    """The ``(y, x)`` µm per pixel a TIFF image states, else ``None`` (not a TIFF, or nothing stated).

    Read from the OME-XML (``PhysicalSizeY/X`` and their units), an Aperio description's ``MPP``, or
    the TIFF resolution tags when their unit is a length and the value is a microscope's (below
    20 µm per pixel: 72 or 300 dpi is a screen's or a printer's default, not a measurement).
    Only the header is read; a file tifffile cannot open gives ``None``.
    """
    if image_path is None or Path(image_path).suffix.lower() not in (".tif", ".tiff", ".svs", ".btf"):
        return None
    try:
        import tifffile

        with tifffile.TiffFile(image_path) as tif:
            if tif.is_ome and tif.ome_metadata:
                pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
                pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
                found = [_ome_size(pixels, axis) for axis in "YX"]
                if all(found):
                    return found[0], found[1]
            if tif.is_svs:
                mpp = tifffile.svs_description_metadata(tif.pages[0].description).get("MPP")
                if mpp:
                    return float(mpp), float(mpp)
            tags = tif.pages[0].tags
            unit = tags.get("ResolutionUnit")
            per_unit = {2: 25400.0, 3: 1e4}.get(int(unit.value) if unit is not None else 0)
            xres, yres = tags.get("XResolution"), tags.get("YResolution")
            if per_unit and xres is not None and yres is not None:
                size = tuple(per_unit * r.value[1] / r.value[0] for r in (yres, xres) if r.value[0])
                if len(size) == 2 and all(0 < s < _MAX_PLAUSIBLE_UM for s in size):
                    return size
    except Exception:  # noqa: BLE001 - unreadable metadata means "not stated"
        return None
    return None


def _ome_size(pixels: dict, axis: str) -> float | None:
    value = pixels.get(f"PhysicalSize{axis}")
    scale = _OME_UNITS_UM.get(str(pixels.get(f"PhysicalSize{axis}Unit", "µm")))
    if value is None or scale is None:
        return None
    size = float(value) * scale
    return size if math.isfinite(size) and size > 0 else None
