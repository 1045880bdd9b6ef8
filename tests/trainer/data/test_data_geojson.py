"""QuPath GeoJSON experts: rasterising QuPath's exports, writing class maps back, and a GeoJSON expert
used like a PNG expert (opening, the data check, one training iteration).

The fixtures are written in QuPath's published format (``File › Export objects as GeoJSON``): a
FeatureCollection (QuPath 0.4+), a single Feature, a bare list of features (older QuPath), polygons
with holes, MultiPolygons, ``classification`` with ``color`` or ``colorRGB``. Rasterisation is
checked against ``skimage.draw.polygon`` on the same rings (pixel (r, c) is inside when its centre
(c + ½, r + ½) is), not against the rasterio call the reader makes.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import shapely
from skimage.draw import polygon as sk_polygon

from trainer.cli import main
from trainer.data import load_core, open_dataset
from trainer.data.check import check_dataset
from trainer.data.classes import CLASS_COLORS, GLEASON_CLASSES, IGNORE_INDEX, ClassScheme
from trainer.data.generic import load_class_scheme
from trainer.data.geojson import class_map_to_geojson, read_geojson_mask, read_geojson_values, write_geojson
from trainer.errors import InputError

from tests.fakes_qupath import (CLASSES, H, W, collection, expert_maps, feature, make_mixed_dataset, multi, poly,
                          qupath_classes, save, square)

SCHEME = ClassScheme(("benign", "G3", "G4", "G5"), {0: 0, 1: 0, 3: 1, 4: 2, 5: 3}, (255,),
                     annotation_names={"Benign": 1, "Gleason 3": 3, "Gleason 4": 4, "Gleason 5": 5, "Ignore*": 255})
TRAIN = ["--model", "pspnet", "--encoder", "resnet18", "--size", "32", "--iters", "1", "--device", "cpu",
         "--no-reweight", "--loss", "focal"]


def reference(rings_with_values, shape=(H, W), fill=0) -> np.ndarray:
    """Independent rasteriser: skimage's point-in-polygon on pixel centres, holes subtracted, in order."""
    out = np.full(shape, fill, np.int64)
    for rings, value in rings_with_values:
        inside = np.zeros(shape, bool)
        for k, ring in enumerate(rings):
            xy = np.asarray(ring, float)
            rr, cc = sk_polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)  # skimage: pixel centres at integers
            inside[rr, cc] = k == 0  # the outline fills, every further ring (a hole) clears
        out[inside] = value
    return out


def min_centre_distance(rings) -> float:
    """How close any pixel centre comes to a ring: the reference is unambiguous when this is not 0."""
    ys, xs = np.mgrid[:H, :W] + 0.5
    pts = shapely.points(xs.ravel(), ys.ravel())
    return min(float(shapely.distance(pts, shapely.LinearRing(r)).min()) for r in rings)


# --- reading --------------------------------------------------------------------------------------
PENTAGON = [(2.31, 1.73), (27.62, 3.21), (29.13, 19.44), (14.27, 22.61), (1.42, 12.93), (2.31, 1.73)]
TRIANGLE_HOLE = [(8.23, 6.31), (20.71, 9.13), (11.42, 17.27), (8.23, 6.31)]
SLIVER = [(22.2, 20.3), (31.6, 22.8), (30.9, 23.4), (22.2, 20.3)]  # a thin diagonal, far from the pentagon


def test_polygon_with_a_hole_and_a_multipolygon_match_the_reference(tmp_path):
    assert min(min_centre_distance([PENTAGON, TRIANGLE_HOLE]), min_centre_distance([SLIVER])) > 1e-6
    path = save(tmp_path / "c.geojson", collection(
        feature("Gleason 3", poly(PENTAGON, TRIANGLE_HOLE)),
        feature("Gleason 5", multi(poly(SLIVER), poly(square(0, 0, 2, 1)))),
    ))
    got = read_geojson_values(path, (H, W), SCHEME)
    want = reference([([PENTAGON, TRIANGLE_HOLE], 3), ([SLIVER], 5), ([square(0, 0, 2, 1)], 5)])
    assert got.dtype == np.uint8 and got.shape == (H, W)
    np.testing.assert_array_equal(got, want)
    assert {0, 3, 5} == set(np.unique(got).tolist())  # background, G3 and G5 all present
    assert (got[10, 13] == 0) and (got[3, 10] == 3)  # inside the hole / inside the outline (by hand)


def test_a_small_mask_by_hand(tmp_path):
    # a 3×3 square at x 1..4, y 1..4 with its middle pixel cut out as a hole, and a triangle whose
    # long side passes just beside pixel centres: (0.5, 4.5) is inside, (1.5, 4.5) and (0.5, 3.5) not
    path = save(tmp_path / "c.geojson", collection(
        feature("Gleason 4", poly(square(1, 1, 4, 4), square(2, 2, 3, 3))),
        feature("Gleason 5", poly([(0, 4), (1.9, 5), (0, 5), (0, 4)]))))
    want = np.zeros((5, 5), np.uint8)
    want[1:4, 1:4] = 4
    want[2, 2] = 0
    want[4, 0] = 5
    np.testing.assert_array_equal(read_geojson_values(path, (5, 5), SCHEME), want)
    np.testing.assert_array_equal(read_geojson_mask(path, (5, 5), SCHEME), np.select([want == 4, want == 5], [2, 3], 0))


def test_single_feature_bare_list_and_collection_read_alike(tmp_path):
    f = feature("Gleason 4", poly(PENTAGON, TRIANGLE_HOLE), color=False)  # the older colorRGB form
    a = read_geojson_values(save(tmp_path / "a.geojson", collection(f)), (H, W), SCHEME)
    b = read_geojson_values(save(tmp_path / "b.geojson", f), (H, W), SCHEME)
    c = read_geojson_values(save(tmp_path / "c.geojson", [f]), (H, W), SCHEME)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert (a == 4).sum() == (reference([([PENTAGON, TRIANGLE_HOLE], 1)]) == 1).sum() > 100


def test_overlaps_the_later_class_wins_whatever_the_feature_order(tmp_path):
    g4 = feature("Gleason 4", poly(square(0, 0, 20, 20)))
    g3 = feature("Gleason 3", poly(square(10, 10, 30, 24)))
    benign = feature("Benign", poly(square(0, 0, 32, 24)))
    ignored = feature("Ignore*", poly(square(15, 15, 17, 17)))
    for order in ([g4, g3, benign, ignored], [ignored, benign, g3, g4]):
        got = read_geojson_mask(save(tmp_path / "c.geojson", collection(*order)), (H, W), SCHEME)
        want = np.zeros((H, W), np.uint8)
        want[10:24, 10:30] = 1
        want[0:20, 0:20] = 2  # G4 over G3 where they overlap, both over benign
        want[15:17, 15:17] = IGNORE_INDEX  # an ignore region wins over every class
        np.testing.assert_array_equal(got, want)


def test_unannotated_pixels_are_value_0(tmp_path):
    path = save(tmp_path / "c.geojson", collection(feature("Gleason 5", poly(square(0, 0, 4, 4)))))
    as_benign = read_geojson_mask(path, (8, 8), SCHEME)  # 0 -> benign
    assert (as_benign[:4, :4] == 3).all() and (as_benign[4:] == 0).all()
    ignore0 = ClassScheme(SCHEME.names, {1: 0, 3: 1, 4: 2, 5: 3}, (0,), annotation_names=SCHEME.annotation_names)
    assert (read_geojson_mask(path, (8, 8), ignore0)[4:] == IGNORE_INDEX).all()
    undefined = ClassScheme(SCHEME.names, {1: 0, 3: 1, 4: 2, 5: 3}, (), annotation_names=SCHEME.annotation_names)
    with pytest.raises(InputError, match="no annotation covers.*add \"0\""):
        read_geojson_mask(path, (8, 8), undefined)
    assert (read_geojson_mask(path, (4, 4), undefined) == 3).all()  # fully covered: 0 never needed


def test_structure_objects_are_skipped_detections_are_labels(tmp_path):
    path = save(tmp_path / "c.geojson", collection(
        feature(None, poly(square(0, 0, 32, 24)), object_type="tma_core"),  # a TMA core: no class, skipped
        feature("Gleason 4", poly(square(0, 0, 2, 2)), object_type="detection"),
    ))
    got = read_geojson_values(path, (H, W), SCHEME)
    assert (got[:2, :2] == 4).all() and (got == 4).sum() == 4


def test_coordinates_within_one_pixel_of_the_edge_are_clipped(tmp_path):
    path = save(tmp_path / "c.geojson", collection(feature("Gleason 3", poly(square(-0.9, -0.9, 32.9, 24.9)))))
    assert (read_geojson_values(path, (H, W), SCHEME) == 3).all()


@pytest.mark.parametrize("doc, needles", [
    ("{not json", ("invalid JSON", "line 1")),
    ({"type": "Point", "coordinates": [1, 2]}, ("not GeoJSON", "'Point'")),
    (collection({"type": "Polygon"}), ("not GeoJSON", "item 1 of 1 is not a Feature")),
    (collection(feature("Gleason 3", {"type": "LineString", "coordinates": [[0, 0], [3, 3]]})),
     ("feature 1 of 1", "unsupported geometry type LineString")),
    (collection(feature("Gleason 3", poly(square(0, 0, 4, 4))), feature("Gleason 6", poly(square(0, 0, 4, 4)))),
     ("feature 2 of 2", "'Gleason 6'", "known: 'Benign', 'Gleason 3'")),
    (collection(feature(None, poly(square(0, 0, 4, 4)))), ("feature 1 of 1", "has no classification")),
    (collection(feature("Gleason 3", poly(square(0, 0, 40, 4)))),
     ("'Gleason 3'", "outside the image", "x 0..40", "image 32×24")),
    (collection(feature("Gleason 3", poly([(0, 0), (4, 4), (4, 0), (0, 4), (0, 0)]))),
     ("'Gleason 3'", "crosses itself at x=2, y=2")),
    (collection(feature("Gleason 3", poly(square(0, 0, 4, 4), square(10, 10, 12, 12)))),
     ("'Gleason 3'", "Hole lies outside shell")),
    (collection(feature("Gleason 3", {"type": "Polygon", "coordinates": [[[0, 0], ["a", 1], [1, 1], [0, 0]]]})),
     ("'Gleason 3'", "malformed Polygon coordinates")),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, doc, needles):
    path = tmp_path / "expert.geojson"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(InputError) as info:
        read_geojson_values(path, (H, W), SCHEME)
    assert str(info.value).startswith(f"{path}: ")
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    assert path.read_bytes() == before  # read-only


def test_a_scheme_without_names_says_to_add_them(tmp_path):
    path = save(tmp_path / "c.geojson", collection(feature("Gleason 3", poly(square(0, 0, 4, 4)))))
    plain = ClassScheme(SCHEME.names, SCHEME.values, SCHEME.ignore)
    with pytest.raises(InputError, match='add a "names" map'):
        read_geojson_values(path, (H, W), plain)


# --- classes.json "names" ---------------------------------------------------------------------------
def test_classes_json_names(tmp_path):
    path = save(tmp_path / "classes.json", CLASSES)
    scheme = load_class_scheme(path)
    assert scheme.annotation_names == SCHEME.annotation_names
    assert scheme == ClassScheme(scheme.names, scheme.values, scheme.ignore, scheme.export_values)  # reading only
    assert ClassScheme.from_dict(scheme.to_dict()).annotation_names == scheme.annotation_names
    assert "annotation_names" not in ClassScheme(("a",), {0: 0}).to_dict()  # older dicts unchanged
    for names, needle in [({"Gleason 6": 6}, "'Gleason 6' maps to mask value 6"), (["G3"], "'names' must map"),
                          ({"G3": "x"}, "not an integer"), ({"": 3}, "empty class name")]:
        save(path, {**CLASSES, "names": names})
        with pytest.raises(InputError, match=needle) as info:
            load_class_scheme(path)
        assert str(path) in str(info.value)


# --- writing ----------------------------------------------------------------------------------------
def hard_map() -> np.ndarray:
    """Holes, a hole inside a hole, diagonals, one-pixel lines and classes touching, some pixels ignored."""
    m = np.zeros((H, W), np.uint8)
    m[2:20, 2:20] = 1
    m[5:15, 5:15] = 2  # a G4 island inside G3 (G3 gets a hole)
    m[8:12, 8:12] = 1  # G3 inside the G4 island (a hole in the hole)
    m[9:11, 9:11] = 0  # benign inside that
    for i in range(12):  # a one-pixel diagonal staircase of G5 (regions meeting only at corners)
        m[i, 20 + i % 12] = 3
    m[22, :] = 3  # a one-pixel line
    m[:, 31] = 2  # a one-pixel column touching the line
    m[16:18, 16:18] = IGNORE_INDEX
    return m


def test_round_trip_is_exact_on_hard_shapes_and_random_maps(tmp_path):
    rng = np.random.default_rng(0)
    maps = [hard_map(), rng.integers(0, 4, (H, W)).astype(np.uint8)]
    scheme = ClassScheme(GLEASON_CLASSES, {0: 0, 1: 1, 2: 2, 3: 3}, (255,),
                         annotation_names={n: i for i, n in enumerate(GLEASON_CLASSES)})
    for k, m in enumerate(maps):
        path = write_geojson(tmp_path / f"{k}.geojson", m, GLEASON_CLASSES, CLASS_COLORS)
        back = read_geojson_mask(path, m.shape, scheme)
        keep = m != IGNORE_INDEX
        np.testing.assert_array_equal(back[keep], m[keep])
        assert (back[~keep] == 0).all()  # ignored pixels are not written: they read as background


def test_written_file_is_a_qupath_feature_collection(tmp_path):
    m = hard_map()
    path = write_geojson(tmp_path / "out.geojson", m, GLEASON_CLASSES, CLASS_COLORS, skip_classes=(0,))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.geojson"]  # nothing temporary left
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    names = [f["properties"]["classification"]["name"] for f in doc["features"]]
    assert names == ["G3", "G4", "G5"]  # one feature per class present; benign skipped
    for f in doc["features"]:
        assert f["type"] == "Feature" and uuid.UUID(f["id"])
        assert f["properties"]["objectType"] == "annotation"
        c = GLEASON_CLASSES.index(f["properties"]["classification"]["name"])
        assert f["properties"]["classification"]["color"] == list(CLASS_COLORS[c])
        geom = shapely.geometry.shape(f["geometry"])
        assert f["geometry"]["type"] == "MultiPolygon" and geom.is_valid
        assert geom.area == (m == c).sum()  # pixel-edge polygons: area in pixels
    g3 = shapely.geometry.shape(doc["features"][0]["geometry"])
    assert any(len(p.interiors) for p in g3.geoms)  # the hole kept
    assert len({f["id"] for f in doc["features"]}) == 3


def test_writer_refuses_indices_beyond_the_names():
    with pytest.raises(ValueError, match=r"indices \[7\]"):
        class_map_to_geojson(np.array([[0, 7]], np.uint8), GLEASON_CLASSES, CLASS_COLORS)


# --- a dataset with a PNG expert and a GeoJSON expert --------------------------------------------------
def test_mixed_dataset_opens_checks_and_trains(tmp_path, capsys):
    root = make_mixed_dataset(tmp_path / "data")
    ds = open_dataset(root)
    assert ds.experts == ("ann", "qupath") and ds.names == ["a", "b"]
    loaded = load_core(ds.core("a"), ds.scheme)
    np.testing.assert_array_equal(loaded.masks["qupath"], qupath_classes())
    np.testing.assert_array_equal(loaded.masks["ann"], np.select([expert_maps()[0] == 3, expert_maps()[0] == 4],
                                                                 [1, 2], 0))
    report = check_dataset(ds, cache=False)
    assert report.ok and report.classes["a"] == frozenset({0, 1, 2})
    experts = {p: p.read_bytes() for p in (root / "masks").rglob("*.*")}
    assert main(["check", "--data", str(root)]) == 0
    assert "no problems" in capsys.readouterr().out
    assert main(["train", "--data", str(root), *TRAIN, "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "last.pt").is_file()
    assert {p: p.read_bytes() for p in (root / "masks").rglob("*.*")} == experts  # experts' files untouched


def test_check_lists_a_broken_geojson_among_good_files(tmp_path):
    root = make_mixed_dataset(tmp_path / "data")
    save(root / "masks" / "qupath" / "b.geojson", collection(feature("Gleason 7", poly(square(0, 0, 4, 4)))))
    report = check_dataset(open_dataset(root), cache=False)
    assert [(p.path.name, p.core) for p in report.problems] == [("b.geojson", "b")]
    assert "'Gleason 7'" in report.problems[0].problem


@pytest.mark.parametrize("classes", [None, {k: v for k, v in CLASSES.items() if k != "names"}],
                         ids=["no classes.json", "no names"])
def test_without_names_the_dataset_opens_and_the_geojson_says_what_to_add(tmp_path, classes):
    root = make_mixed_dataset(tmp_path / "data", classes)
    ds = open_dataset(root)  # the value scan without classes.json skips the GeoJSON files
    assert ds.experts == ("ann", "qupath")
    if classes is None:
        assert ds.scheme.num_classes == 5  # the PNG's values 0..4
        assert any("GeoJSON" in n for n in ds.notes)
    with pytest.raises(InputError, match='add a "names" map') as info:
        load_core(ds.core("a"), ds.scheme)
    assert "a.geojson" in str(info.value)
    problems = check_dataset(ds, cache=False).problems
    assert {p.path.name for p in problems} == {"a.geojson", "b.geojson"}


def test_only_geojson_experts_without_classes_json(tmp_path):
    root = make_mixed_dataset(tmp_path / "data", classes=None)
    for png in (root / "masks" / "ann").iterdir():
        png.unlink()
    with pytest.raises(InputError, match="every mask is a QuPath GeoJSON export; add a classes.json"):
        open_dataset(root)
