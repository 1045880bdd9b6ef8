"""QuPath GeoJSON annotations as expert masks, and class maps written back as GeoJSON.

Pathologists annotate in QuPath, which exports objects as GeoJSON (*File › Export objects as
GeoJSON*): a ``FeatureCollection``, a single ``Feature``, or (QuPath before 0.4) a bare list of
features. Each feature's ``geometry`` is a ``Polygon`` or ``MultiPolygon`` (first ring the
outline, further rings holes; a ``GeometryCollection`` of those is accepted too), its
coordinates are ``(x, y)`` in pixels of the full-resolution image, and its
``properties.classification.name`` is the QuPath class (``color`` or the older ``colorRGB``
beside it is not used here). Features whose ``properties.objectType`` is ``"annotation"`` or
``"detection"`` (or that have none, as plain GeoJSON) are labels; other object types (a TMA
core's ``"tma_core"``, ``"cell"``, ``"tile"``, ``"root"``) describe structure and are skipped.

Reading (:func:`read_geojson_values`, :func:`read_geojson_mask`) follows these rules:

- **Class names** map to raw mask values through ``classes.json``'s ``"names"``
  (``ClassScheme.annotation_names``), e.g. ``{"Benign": 0, "Gleason 3": 3}``; the raw value then
  goes through ``"values"``/``"ignore"`` exactly as a PNG mask's pixel does. An unknown name is
  an error that lists the known ones.
- **Unannotated pixels** are raw value 0, so a QuPath expert behaves like a PNG expert whose
  background is 0: whatever ``classes.json`` maps 0 to (list 0 under ``"ignore"`` when an
  expert annotated only part of the core). If 0 is undefined, uncovered pixels are an error.
- **Overlaps**: classes are painted one after the other in class order (the order of
  ``"classes"``), regions of an ignored value last, so where two annotations overlap the class
  later in ``"classes"`` wins and an "ignore" region wins over every class. For Gleason this
  is "the higher grade wins", which is what grading counts; it does not depend on the order
  of the features in the file (QuPath writes them in hierarchy order, not drawing order), and
  it is how QuPath's own labelled-image export paints (label by label, in a fixed order).
- **Pixel semantics**: pixel ``(row r, column c)`` covers ``[c, c+1) × [r, r+1)`` and belongs
  to a polygon when its centre ``(c + ½, r + ½)`` lies inside (GDAL's rule). The writer's
  polygons follow pixel edges, so no centre lies on a boundary and a round trip is exact.
- **Coordinates outside the image**: up to :data:`COORDINATE_TOLERANCE` pixel beyond an edge
  is accepted (QuPath's brush slips past the border) and the part outside is clipped; further
  out is an error, since the annotation was most likely made on another image or at another
  resolution.
- **Invalid geometry** (a polygon crossing itself, a hole outside its outline, a ring of fewer
  than 3 points) is an error naming the feature and shapely's location of the problem; the
  mask is never guessed from an ambiguous outline.

Libraries: shapely parses the geometries and checks their validity (GEOS, the engine behind
QuPath's own JTS), rasterio's ``features.rasterize`` burns polygons with holes in one scanline
pass (GDAL: cost grows with rows × edges, not with area × vertices as a point-in-polygon
test over the bounding box would, which matters for brush outlines of thousands of vertices on
a 5120² core), and ``features.shapes`` (GDAL's polygonize) traces each class region along
pixel edges for the writer. No Qt here: the trainer and the plugin both use this module.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.atomic import atomic_write
from trainer.data.classes import IGNORE_INDEX, ClassScheme
from trainer.errors import InputError
from trainer.jsonsafe import read_document

#: Mask file suffixes read as QuPath GeoJSON.
GEOJSON_SUFFIXES: tuple[str, ...] = (".geojson",)

#: How far (pixels) a feature may reach past the image's edge before it is an error.
COORDINATE_TOLERANCE = 1.0

#: Object types that carry labels; features of other types are skipped (see module docstring).
LABEL_OBJECT_TYPES = ("annotation", "detection")

_AREA_TYPES = ("Polygon", "MultiPolygon")
_LOCATION = re.compile(r"\[\s*(\S+)\s+(\S+)[^\]]*\]")


def is_geojson(path: str | Path) -> bool:
    """Whether ``path`` names a GeoJSON mask (by its suffix)."""
    return Path(path).suffix.lower() in GEOJSON_SUFFIXES


# --- reading -------------------------------------------------------------------------------------

def _load_document(path: Path) -> object:
    # read-only: experts' files are never modified
    return read_document(path, "the GeoJSON", (dict, list),
                         "not GeoJSON: expected a FeatureCollection, a Feature or a list of features")


def _features(doc: object, path: Path) -> list[dict]:
    """The features of a FeatureCollection, a single Feature or a bare list of features."""
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise InputError("not GeoJSON: a FeatureCollection without a 'features' list", path)
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    elif isinstance(doc, list):
        feats = doc
    else:
        found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(f"not GeoJSON: expected a FeatureCollection, a Feature or a list of features, "
                         f"found {found!r}", path)
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise InputError(f"not GeoJSON: item {i + 1} of {len(feats)} is not a Feature", path)
    return feats


def _describe(feature: dict, i: int, n: int, name: str | None = None) -> str:
    text = f"feature {i + 1} of {n}"
    if feature.get("id") is not None:
        text += f" (id {feature['id']})"
    return f"{text} {name!r}" if name else text


def _object_type(feature: dict) -> str | None:
    props = feature.get("properties")
    kind = props.get("objectType") if isinstance(props, dict) else None
    return kind if isinstance(kind, str) else None


def _class_name(feature: dict, where: str, path: Path) -> str:
    props = feature.get("properties")
    cls = props.get("classification") if isinstance(props, dict) else None
    name = cls.get("name") if isinstance(cls, dict) else cls if isinstance(cls, str) else None
    if not isinstance(name, str) or not name:
        raise InputError(f"{where} has no classification (properties.classification.name); "
                         "classify it in QuPath or delete it", path)
    return name


def _geometry(feature: dict, where: str, path: Path):
    """The feature's area geometry as shapely, checked for type, numbers and validity."""
    import shapely
    from shapely.geometry import shape

    geom = feature.get("geometry")
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind is None:
        raise InputError(f"{where} has no geometry", path)
    parts = geom.get("geometries") if kind == "GeometryCollection" else [geom]
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise InputError(f"{where}: malformed GeometryCollection", path)
    bad = sorted({str(p.get("type")) for p in parts} - set(_AREA_TYPES))
    if bad:
        raise InputError(f"{where}: unsupported geometry type {', '.join(bad)} (a mask needs areas: "
                         f"{' or '.join(_AREA_TYPES)})", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN coordinates: reported below
            shapes = [shape(p) for p in parts]
    except Exception as e:  # noqa: BLE001 - shapely raises ValueError, TypeError, KeyError, GEOSException
        raise InputError(f"{where}: malformed {kind} coordinates ({type(e).__name__}: {e})", path) from None
    geometry = shapely.union_all(shapes) if len(shapes) > 1 else shapes[0]
    for s in shapes:
        coords = shapely.get_coordinates(s)
        if coords.size and not np.isfinite(coords).all():
            raise InputError(f"{where}: coordinates that are not finite numbers", path)
        reason = shapely.is_valid_reason(s)
        if reason != "Valid Geometry":
            raise InputError(f"{where}: invalid polygon, {_explain(reason)}; redraw it in QuPath", path)
    return geometry


def _explain(reason: str) -> str:
    """shapely's validity reason as words, with its location as ``x=…, y=…``."""
    m = _LOCATION.search(reason)
    what = reason[: m.start()] if m else reason
    at = f" at x={m.group(1)}, y={m.group(2)}" if m else ""
    if "Self-intersection" in what:
        return f"its outline crosses itself{at} ({what})"
    return f"{what}{at}"


def _check_bounds(geometry, where: str, shape: tuple[int, int], path: Path) -> None:
    h, w = shape
    minx, miny, maxx, maxy = geometry.bounds
    t = COORDINATE_TOLERANCE
    if minx < -t or miny < -t or maxx > w + t or maxy > h + t:
        raise InputError(
            f"{where} lies outside the image: x {minx:g}..{maxx:g}, y {miny:g}..{maxy:g}, image {w}×{h} (W×H, "
            f"{t:g} px tolerance); was it drawn on another image or at another resolution?", path)


def _no_names_message() -> str:
    return ('a QuPath GeoJSON mask needs the class names: add a "names" map (QuPath class name -> mask '
            'value, e.g. {"Benign": 0, "Gleason 3": 3}) to the dataset\'s classes.json')


def _labelled_regions(path: Path, shape: tuple[int, int] | None, scheme: ClassScheme) -> list[tuple[object, int]]:
    """``(geometry, raw value)`` of every label feature, in painting order (see module docstring)."""
    names = scheme.annotation_names
    if not names:
        raise InputError(_no_names_message(), path)
    feats = _features(_load_document(path), path)
    regions: list[tuple[int, int, object, int]] = []
    for i, feature in enumerate(feats):
        kind = _object_type(feature)
        if kind is not None and kind not in LABEL_OBJECT_TYPES:
            continue
        name = _class_name(feature, _describe(feature, i, len(feats)), path)
        where = _describe(feature, i, len(feats), name)
        if name not in names:
            raise InputError(f"{where}: class name {name!r} is not in classes.json's \"names\" "
                             f"(known: {', '.join(repr(n) for n in names)})", path)
        geometry = _geometry(feature, where, path)
        if geometry.is_empty:
            continue
        if shape is not None:
            _check_bounds(geometry, where, shape, path)
        raw = names[name]
        order = scheme.values[raw] if raw in scheme.values else scheme.num_classes  # ignored last
        regions.append((order, i, geometry, raw))
    regions.sort(key=lambda r: (r[0], r[1]))
    return [(g, raw) for _, _, g, raw in regions]


def _background_defined(scheme: ClassScheme) -> bool:
    return 0 in scheme.values or 0 in scheme.ignore


def _uncovered_message() -> str:
    return ("pixels that no annotation covers are mask value 0, which classes.json does not define; "
            'add "0" to its "values" (or to "ignore" when experts annotate only part of a core)')


def read_geojson_values(path: str | Path, shape: tuple[int, int], scheme: ClassScheme) -> np.ndarray:
    """Rasterise a QuPath GeoJSON export to raw mask values (``uint8``, or ``uint16`` when a name
    maps above 255) at the image's ``shape`` ``(H, W)``; rules in the module docstring."""
    from rasterio import features

    path = Path(path)
    if shape is None:
        raise InputError("a GeoJSON mask needs its image's size to be rasterised", path)
    h, w = int(shape[0]), int(shape[1])
    regions = _labelled_regions(path, (h, w), scheme)
    top = max([0, *scheme.annotation_names.values()])
    dtype = np.uint8 if top <= 255 else np.uint16
    if not _background_defined(scheme):
        covered = (features.rasterize([(g, 1) for g, _ in regions], out_shape=(h, w), fill=0, dtype=np.uint8)
                   if regions else np.zeros((h, w), np.uint8))
        if not covered.all():
            raise InputError(_uncovered_message(), path)
    if not regions:
        return np.zeros((h, w), dtype)
    # shapes later in the list overwrite earlier ones: the painting order of _labelled_regions
    return features.rasterize(regions, out_shape=(h, w), fill=0, dtype=dtype)


def geojson_value_set(path: str | Path, shape: tuple[int, int] | None, scheme: ClassScheme) -> np.ndarray:
    """The distinct raw values a GeoJSON mask holds at ``shape`` (sorted). Without ``shape`` (its
    image is unreadable) the file is still parsed and checked, and the values of its classes are
    returned (0 for the background is then not known and left out)."""
    path = Path(path)
    if shape is not None:
        return np.unique(read_geojson_values(path, shape, scheme))
    values = sorted({raw for _, raw in _labelled_regions(path, None, scheme)})
    return np.asarray(values, dtype=np.uint8 if not values or values[-1] <= 255 else np.uint16)


def read_geojson_mask(path: str | Path, shape: tuple[int, int], scheme: ClassScheme) -> np.ndarray:
    """A QuPath GeoJSON export as ``uint8 H×W`` class indices (``IGNORE_INDEX`` where ignored):
    :func:`read_geojson_values` mapped through ``scheme`` as a PNG mask's values are."""
    raw = read_geojson_values(path, shape, scheme)
    lut = np.full(int(raw.max(initial=0)) + 1, IGNORE_INDEX, np.uint8)
    for value, cls in scheme.values.items():
        if value < lut.size:
            lut[value] = cls
    return lut[raw]  # every value painted is a name's value, checked to be in values or ignore


# --- writing -------------------------------------------------------------------------------------

def _check_class_map(class_map: np.ndarray, n: int) -> np.ndarray:
    class_map = np.asarray(class_map)
    if class_map.ndim != 2:
        raise ValueError(f"class map must be H×W, got shape {class_map.shape}")
    if class_map.dtype.kind not in "iu":
        raise ValueError(f"class map must hold integers, got {class_map.dtype}")
    bad = np.setdiff1d(np.unique(class_map), [*range(n), IGNORE_INDEX])
    if bad.size:
        raise ValueError(f"class map has indices {bad.tolist()} beyond the {n} class names")
    return class_map.astype(np.uint8, copy=False)


def class_map_to_geojson(class_map: np.ndarray, names: Sequence[str], colors: Sequence[tuple[int, int, int]],
                         skip_classes: Sequence[int] = ()) -> dict:
    """A QuPath-importable ``FeatureCollection``: one annotation per class present (not in
    ``skip_classes``), its region a ``MultiPolygon`` traced along pixel edges with holes kept,
    classified ``names[c]`` in colour ``colors[c]`` (RGB 0-255). ``IGNORE_INDEX`` pixels are
    not written. Reading it back with :func:`read_geojson_values` gives the same class map."""
    from rasterio import features

    if len(colors) < len(names):
        raise ValueError(f"{len(names)} class names but {len(colors)} colours")
    class_map = _check_class_map(class_map, len(names))
    write = np.isin(class_map, [c for c in range(len(names)) if c not in set(skip_classes)])
    polygons: dict[int, list] = {}
    # 4-connected regions: two regions of a class meet at most at a corner, so the MultiPolygon is valid
    for geom, value in features.shapes(class_map, mask=write, connectivity=4):
        rings = [[[int(x), int(y)] for x, y in ring] for ring in geom["coordinates"]]
        polygons.setdefault(int(value), []).append(rings)
    out = []
    for c in sorted(polygons):
        out.append({
            "type": "Feature",
            "id": str(uuid.uuid4()),
            "geometry": {"type": "MultiPolygon", "coordinates": polygons[c]},
            "properties": {
                "objectType": "annotation",
                "classification": {"name": str(names[c]), "color": [int(v) for v in colors[c][:3]]},
            },
        })
    return {"type": "FeatureCollection", "features": out}


def write_geojson(path: str | Path, class_map: np.ndarray, names: Sequence[str],
                  colors: Sequence[tuple[int, int, int]], skip_classes: Sequence[int] = ()) -> Path:
    """Write :func:`class_map_to_geojson` to ``path`` atomically (replacing a file there) and return it.

    Colours: pass the ones shown everywhere else, ``LabelCoding.from_scheme(scheme).colors``
    (:data:`~trainer.data.classes.CLASS_COLORS` for the Gleason classes).
    """
    path = Path(path)
    doc = class_map_to_geojson(class_map, names, colors, skip_classes)
    with atomic_write(path, "w", what="the GeoJSON") as f:
        json.dump(doc, f, separators=(",", ":"))
    return path
