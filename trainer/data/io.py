"""Reading images and masks, writing masks: the only place that touches image files.

Contracts (docs/DESIGN.md): images come back as ``uint8 H×W×3`` RGB, masks as ``uint8 H×W``
class indices (``IGNORE_INDEX`` for ignored values). Every failure is an :class:`InputError`
that names the file. Expert files are only ever opened read-only; :func:`write_mask_png`
writes atomically and never overwrites unless asked.

Decisions worth knowing:

- Truncated files are errors: we never set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` and we
  decode the whole file inside the ``try`` so a short JPEG/PNG fails here, not later.
- ``PIL.Image.MAX_IMAGE_PIXELS`` is raised to 25000² (Gleason cores are 5120², whole TMA
  spots can reach ~20000²) but kept finite, so decompression bombs are still refused.
- RGBA: alpha is checked; fully opaque pixels keep their colour, transparent ones are
  composited onto white (a bright-field slide's background), then alpha is dropped.
- 16-bit grey images are scaled to 8 bits (``v / 257``); float images are refused.
- EXIF orientation is *not* applied: masks are drawn on the stored pixel grid.
- TIFFs Pillow cannot decode (tiled, 16-bit RGB, BigTIFF) are retried with ``tifffile``.
- A mask may be a QuPath GeoJSON export (``.geojson``): it is rasterised at its image's size
  through the scheme's ``annotation_names`` (:mod:`trainer.data.geojson`), so the mask readers
  below take the image ``shape`` and the ``scheme`` for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer.atomic import atomic_write
from trainer.data.classes import IGNORE_INDEX, ClassScheme
from trainer.data.geojson import geojson_value_set, is_geojson, read_geojson_values
from trainer.errors import InputError

#: Largest image we decode without Pillow's decompression-bomb warning (25000² pixels).
MAX_PIXELS = 25_000 * 25_000
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Everything Pillow raises for unreadable, truncated or hostile files.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class MaskExistsError(InputError, FileExistsError):
    """:func:`write_mask_png` refused to replace an existing file (pass ``overwrite=True``)."""


@contextmanager
def _decoding(path: Path):
    """Turn what opening or decoding ``path`` with Pillow raises into one :class:`InputError` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except UnidentifiedImageError:
        raise InputError("not an image Pillow can read (unknown or corrupt format)", path) from None
    except _DECODE_ERRORS as e:
        raise InputError(f"cannot read image (corrupt or truncated?): {e}", path) from None


def open_decoded(path: Path) -> Image.Image:
    """Open ``path`` read-only and decode every pixel, so truncation is detected now."""
    with _decoding(path), open(path, "rb") as f:
        img = Image.open(f)
        img.load()
    return img


def _alpha_to_white(rgba: np.ndarray) -> np.ndarray:
    """Drop alpha: opaque pixels keep their colour, transparent ones blend onto white."""
    alpha = rgba[..., 3:4]
    if np.all(alpha == 255):
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    """Bring a decoded array (grey/RGB/RGBA, 8 or 16 bit) to ``uint8 H×W×3``."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise InputError(f"integer image with values outside 0..65535 ({arr.dtype})", path)
        arr = np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)  # 16 -> 8 bit
    if arr.dtype != np.uint8:
        raise InputError(f"unsupported pixel type {arr.dtype} (need 8- or 16-bit)", path)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)  # grey -> three equal channels
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _alpha_to_white(arr)
    raise InputError(f"unsupported image shape {arr.shape} (need grey, RGB or RGBA)", path)


def _pil_to_array(img: Image.Image, path: Path) -> np.ndarray:
    """Pixels of a decoded Pillow image, converting the exotic modes Pillow knows."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA") or mode.startswith("I;16") or mode == "I":
        return np.asarray(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.asarray(img.convert("RGB"))
    raise InputError(f"unsupported image mode {mode!r} (need grey, RGB or RGBA)", path)


def _planes_last(arr: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """A TIFF level with tifffile's ``axes`` (e.g. ``YXS``, ``CYX``, ``TCZYX``) as H×W or H×W×C."""
    keep = [i for i, a in enumerate(axes) if a in "YX" or arr.shape[i] > 1]
    extra = [axes[i] for i in keep if axes[i] not in "YXSC"]
    if extra:
        raise InputError(f"a TIFF of several planes (axes {axes}, shape {arr.shape}); need one 2-D image", path)
    arr = arr.reshape([arr.shape[i] for i in keep])
    kept = "".join(axes[i] for i in keep)
    if len(kept) == 3 and kept[0] in "SC":  # channels first (OME-TIFF CYX)
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _tiff_level0(path: Path):
    """tifffile's first series at full resolution (level 0 of a pyramid), not yet decoded."""
    import tifffile

    tif = tifffile.TiffFile(path)
    series = tif.series[0]
    return tif, (series.levels[0] if getattr(series, "levels", None) else series)


def _read_tiff(path: Path) -> np.ndarray | None:
    """Fallback for TIFFs Pillow cannot decode; ``None`` when tifffile is unavailable/fails.

    Only level 0 of the first series is decoded: a pyramidal (OME-)TIFF's smaller levels and
    other series are never read.
    """
    try:
        tif, level = _tiff_level0(path)
    except Exception:  # noqa: BLE001 - any failure means "not readable"; Pillow's error is reported
        return None
    try:
        return _planes_last(np.asarray(level.asarray()), level.axes, path)
    except InputError:
        raise
    except Exception:  # noqa: BLE001
        return None
    finally:
        tif.close()


def open_tiff_levels(path: str | Path) -> list | None:
    """The pyramid of a (pyramidal OME-)TIFF as lazy arrays, level 0 first, each ``uint8 h×w×3``
    (tifffile's zarr view: a tile is decoded only when a slice of it is read); ``None`` for a file
    that is not such a TIFF (not a TIFF, not RGB ``YXS``, not 8-bit), which the caller then decodes
    whole with :func:`read_image`.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return None
    try:
        import tifffile
        import zarr

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            levels = list(getattr(series, "levels", None) or [series])
            if series.axes[-3:] != "YXS" or series.dtype != np.uint8 or series.shape[-1] != 3 or any(
                    lv.axes != series.axes for lv in levels):
                return None
            store = series.aszarr()
        group = zarr.open(store, mode="r")
        arrays = [group[str(i)] for i in range(len(levels))] if hasattr(group, "keys") else [group]
        if any(a.ndim != 3 for a in arrays):
            return None
        return arrays
    except Exception:  # noqa: BLE001 - anything tifffile/zarr cannot map lazily is decoded whole
        return None


#: Pillow modes :func:`read_image` converts to RGB (see :func:`_pil_to_array`).
_IMAGE_MODES = ("L", "RGB", "RGBA", "I", "1", "LA", "PA", "RGBa", "La", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX")


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: ``shape`` (H, W), the pixel ``mode`` and the reader."""

    shape: tuple[int, int]
    mode: str
    reader: str  # "pillow" or "tifffile"


def image_header(path: str | Path) -> ImageHeader:
    """Size and pixel mode of an image from its header only (no pixel is decoded).

    The same refusals as :func:`read_image` where the header suffices (unknown format, float or
    other unsupported modes); a truncated file is only found by decoding it.
    """
    path = Path(path)
    is_tiff = path.suffix.lower() in (".tif", ".tiff")
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            mode, (w, h) = img.mode, img.size
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
        if is_tiff:
            try:
                tif, level = _tiff_level0(path)
            except Exception:  # noqa: BLE001 - not a TIFF tifffile reads either
                pass
            else:
                with tif:
                    axes, shape, dtype = level.axes, level.shape, level.dtype
                if dtype.kind not in "iub":
                    raise InputError(f"unsupported pixel type {dtype} (need 8- or 16-bit)", path) from None
                dims = dict(zip(axes, shape))
                if "Y" not in dims or "X" not in dims:
                    raise InputError(f"a TIFF without an image plane (axes {axes})", path) from None
                return ImageHeader((int(dims["Y"]), int(dims["X"])), f"{dtype}/{axes}", "tifffile")
        if isinstance(e, UnidentifiedImageError):
            raise InputError("not an image Pillow can read (unknown or corrupt format)", path) from None
        raise InputError(f"cannot read image (corrupt or truncated?): {e}", path) from None
    if not (mode in _IMAGE_MODES or mode.startswith("I;16")):
        raise InputError(f"unsupported image mode {mode!r} (need grey, RGB or RGBA)", path)
    return ImageHeader((h, w), mode, "pillow")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``uint8 H×W×3`` RGB (read-only; see module notes for modes)."""
    path = Path(path)
    try:
        img = open_decoded(path)
    except InputError:
        arr = _read_tiff(path) if path.suffix.lower() in (".tif", ".tiff") and path.is_file() else None
        if arr is None:
            raise
        return _array_to_rgb(arr, path)
    return _array_to_rgb(_pil_to_array(img, path), path)


def read_image_draft(path: str | Path, reduce: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A JPEG decoded at ``1/reduce`` of its size (``reduce`` 2, 4 or 8) by Pillow's DCT scaling
    (``Image.draft``): ``(uint8 ⌈H/reduce⌉×⌈W/reduce⌉×3, (H, W))``, several times faster than
    :func:`read_image`. ``None`` for any other format (no draft decoding). The whole file is still
    parsed, so a truncated JPEG raises :class:`InputError` here as in :func:`read_image`.
    """
    path = Path(path)
    if reduce not in (2, 4, 8):
        raise ValueError(f"reduce must be 2, 4 or 8, got {reduce}")
    with _decoding(path), open(path, "rb") as f:
        img = Image.open(f)
        if img.format != "JPEG":
            return None
        full = (img.height, img.width)
        want = (-(-full[0] // reduce), -(-full[1] // reduce))
        if min(full) < 2 * reduce:
            return None
        img.draft(img.mode, (img.width // reduce, img.height // reduce))  # Pillow floors the ratio
        img.load()
        if (img.height, img.width) != want:  # a scale Pillow would not give: decode in full instead
            return None
    return _array_to_rgb(_pil_to_array(img, path), path), full


def _mask_values(img: Image.Image, path: Path) -> np.ndarray:
    """Raw integer values of a mask image: grey, palette indices, or RGB with equal channels."""
    mode = img.mode
    if mode in ("L", "P") or mode.startswith("I;16") or mode == "I":
        return np.asarray(img)  # for 'P' these are the palette indices, i.e. the label values
    if mode == "1":
        return np.asarray(img.convert("L")) // 255
    if mode == "RGB":
        rgb = np.asarray(img)
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise InputError("RGB mask whose channels differ; masks must hold label values", path)
        return rgb[..., 0]
    raise InputError(f"unsupported mask mode {mode!r} (need grey, palette or grey-valued RGB)", path)


def _value_lut(scheme: ClassScheme, max_value: int) -> np.ndarray:
    """Lookup table raw value -> class index; -1 marks values the scheme does not know."""
    lut = np.full(max_value + 1, -1, dtype=np.int16)
    for raw, cls in scheme.values.items():
        if raw <= max_value:
            lut[raw] = cls
    for raw in scheme.ignore:
        if raw <= max_value:
            lut[raw] = IGNORE_INDEX
    return lut


def values_to_classes(values: np.ndarray, scheme: ClassScheme, path: str | Path | None = None) -> np.ndarray:
    """Map raw mask values to class indices; unknown values raise, listing what was found."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise InputError(f"mask holds {values.dtype} values, need integers", path)
    if values.size == 0:
        return np.zeros(values.shape, np.uint8)
    if values.min() < 0:
        raise InputError(f"mask has negative values (values found: {np.unique(values).tolist()})", path)
    if values.max() > 65535:
        raise InputError(f"mask has values above 65535 (largest {int(values.max())}); not a label mask", path)
    # One table lookup; the (slow) unique scan runs only when something is wrong.
    mapped = _value_lut(scheme, int(values.max()))[values]
    unknown_pixels = mapped < 0
    if unknown_pixels.any():
        unknown = np.unique(values[unknown_pixels]).tolist()
        known = sorted(set(scheme.values) | set(scheme.ignore))
        raise InputError(
            f"mask has values {unknown} that the class scheme does not define "
            f"(values found: {np.unique(values).tolist()}; allowed: {known})",
            path,
        )
    return mapped.astype(np.uint8)


def _geojson_scheme(scheme: ClassScheme | None, path: Path) -> ClassScheme:
    if scheme is None or not scheme.annotation_names:
        raise InputError('a QuPath GeoJSON mask needs the class names: add a "names" map (QuPath class name -> '
                         "mask value) to the dataset's classes.json", path)
    return scheme


def read_mask_values(path: str | Path, shape: tuple[int, int] | None = None,
                     scheme: ClassScheme | None = None) -> np.ndarray:
    """Raw label values of a mask file (read-only), checked against the image ``shape``.

    A GeoJSON mask needs ``shape`` and ``scheme`` (its class names) to be rasterised.
    """
    path = Path(path)
    if is_geojson(path):
        return read_geojson_values(path, shape, _geojson_scheme(scheme, path))
    img = open_decoded(path)
    if shape is not None and tuple(shape[:2]) != (img.height, img.width):
        raise InputError(
            f"mask size {img.width}×{img.height} (W×H) differs from its image's "
            f"{shape[1]}×{shape[0]}",
            path,
        )
    return _mask_values(img, path)


def read_mask_value_set(path: str | Path, shape: tuple[int, int] | None = None,
                        scheme: ClassScheme | None = None) -> np.ndarray:
    """The distinct raw label values of a mask file (sorted), with :func:`read_mask_values`' checks.

    Grey and palette masks use Pillow's histogram (several times faster than numpy on a 5120² map);
    other modes go through :func:`read_mask_values`. A GeoJSON mask needs ``scheme``; without
    ``shape`` it is parsed and checked but not rasterised (:func:`~trainer.data.geojson.geojson_value_set`).
    """
    path = Path(path)
    if is_geojson(path):
        return geojson_value_set(path, shape, _geojson_scheme(scheme, path))
    img = open_decoded(path)
    if shape is not None and tuple(shape[:2]) != (img.height, img.width):
        raise InputError(
            f"mask size {img.width}×{img.height} (W×H) differs from its image's {shape[1]}×{shape[0]}", path)
    if img.mode in ("L", "P"):
        return np.flatnonzero(np.asarray(img.histogram()[:256])).astype(np.uint8)
    values = _mask_values(img, path)
    if values.dtype.kind == "u" and values.size:
        return np.flatnonzero(np.bincount(values.ravel())).astype(values.dtype)
    return np.unique(values)


def mask_classes(path: Path, scheme, shape: tuple[int, int] | None = None) -> set[int]:
    """Class indices present in a mask file; its size, mode and values checked as :func:`read_mask` does.

    Only the distinct values are mapped (a histogram of the mask, not a lookup of every pixel).
    """
    return set(values_to_classes(read_mask_value_set(path, shape, scheme), scheme, path).tolist())


def read_mask(path: str | Path, scheme: ClassScheme, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask as ``uint8 H×W`` class indices via ``scheme`` (read-only).

    ``shape`` is the ``(H, W)`` of the image the mask belongs to; a different mask size is an
    error naming both sizes. Values not in ``scheme`` raise, listing the values found. A GeoJSON
    mask is rasterised at ``shape`` (required for it).
    """
    return values_to_classes(read_mask_values(path, shape, scheme), scheme, path)


def classes_to_values(class_map: np.ndarray, scheme: ClassScheme, ignore_value: int | None = None) -> np.ndarray:
    """Map class indices back to the scheme's export values (benign -> 1 for Gleason)."""
    class_map = np.asarray(class_map)
    if class_map.ndim != 2:
        raise ValueError(f"class map must be H×W, got shape {class_map.shape}")
    export = [scheme.export_value(c) for c in range(scheme.num_classes)]
    if ignore_value is None and scheme.ignore:
        ignore_value = scheme.ignore[0]
    lut = np.full(256, -1, dtype=np.int64)
    lut[: len(export)] = export
    if ignore_value is not None:
        lut[IGNORE_INDEX] = ignore_value
    if class_map.dtype.kind not in "iu" or (class_map.size and (class_map.min() < 0 or class_map.max() > 255)):
        raise ValueError(f"class map must hold integers 0..255, got {class_map.dtype}")
    out = lut[class_map]
    if out.size and out.min() < 0:
        bad = sorted(set(np.unique(class_map[out < 0]).tolist()))
        hint = " (pass ignore_value for IGNORE_INDEX pixels)" if IGNORE_INDEX in bad else ""
        raise ValueError(f"class map has indices {bad} with no export value{hint}")
    return out.astype(np.uint8 if out.size == 0 or out.max() <= 255 else np.uint16)


def write_mask_png(
    path: str | Path,
    class_map: np.ndarray,
    scheme: ClassScheme,
    overwrite: bool = False,
    ignore_value: int | None = None,
) -> Path:
    """Write ``class_map`` (class indices) as a PNG of export values, atomically.

    The PNG is written with :func:`trainer.atomic.atomic_write` (a temporary file in the same
    folder, fsynced and moved into place), so readers never see half a file. An existing ``path`` raises
    :class:`MaskExistsError` unless ``overwrite=True``. ``IGNORE_INDEX`` pixels are written as
    ``ignore_value`` (default: the scheme's first ignore value; an error if it has none).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise MaskExistsError("file exists; refusing to overwrite it (overwrite=True replaces it)", path)
    if not path.parent.is_dir():
        raise InputError("folder does not exist", path.parent)
    values = classes_to_values(class_map, scheme, ignore_value)
    with atomic_write(path, "wb", what="the mask") as f:  # a full disk: InputError, nothing left behind
        Image.fromarray(values).save(f, format="PNG")
        if path.exists() and not overwrite:  # created while we were writing
            raise MaskExistsError("file appeared while writing; refusing to overwrite it", path)
    return path
