"""python -m trainer export: masks to QuPath GeoJSON and back, maps to pyramidal OME-TIFF, a dataset's
consensus; experts' folders refused (the catalogue has the other bad inputs)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tifffile
from tests.napari_gleason.helpers_plugin import GLEASON_VALUES, blocks, make_two_expert_dataset, tree_digest
from PIL import Image
from skimage.draw import disk

from trainer.cli import main
from trainer.data.classes import CLASS_COLORS, GLEASON_SCHEME
from trainer.data.geojson import read_geojson_mask
from trainer.data.io import read_mask
from trainer.data.vote import majority_vote
from trainer.ome_tiff import pixel_size_um

#: QuPath's class names back to the Gleason values the masks hold (what a classes.json "names" says)
READ_BACK = dataclasses.replace(GLEASON_SCHEME, annotation_names={"benign": 1, "G3": 3, "G4": 4, "G5": 5})


def _tumour_core(h: int = 300, w: int = 340) -> np.ndarray:
    """Class indices: benign background, a G3 gland with a G4 island and a hole of benign, a G5 ring."""
    classes = np.zeros((h, w), np.uint8)
    classes[disk((120, 130), 90, shape=(h, w))] = 1
    classes[disk((120, 130), 40, shape=(h, w))] = 2
    classes[disk((120, 130), 15, shape=(h, w))] = 0  # a hole in the island: kept as a hole
    classes[disk((230, 260), 50, shape=(h, w))] = 3
    classes[disk((230, 260), 25, shape=(h, w))] = 0
    classes[5:9, 300:330] = 3  # a thin strip
    return classes


def test_mask_to_geojson_and_back_is_the_same_mask(tmp_path, capsys):
    classes = _tumour_core()
    mask = tmp_path / "pred" / "core7_classimg_nonconvex.png"
    mask.parent.mkdir()
    Image.fromarray(GLEASON_VALUES[classes]).save(mask)
    assert main(["export", str(mask), "--out", str(tmp_path / "qupath")]) == 0
    out = tmp_path / "qupath" / "core7.geojson"
    assert f"wrote {out}" in capsys.readouterr().out
    back = read_geojson_mask(out, classes.shape, READ_BACK)
    assert (back == classes).mean() >= 0.995
    doc = json.loads(out.read_text())
    found = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
             for f in doc["features"]}
    assert found == {n: list(c) for n, c in zip(GLEASON_SCHEME.names, CLASS_COLORS)}  # the viewer's colours
    assert {f["properties"]["objectType"] for f in doc["features"]} == {"annotation"}
    # the island's hole is a hole of the G4 polygon (a second ring), not a filled disk
    g4 = next(f for f in doc["features"] if f["properties"]["classification"]["name"] == "G4")
    assert [len(poly) for poly in g4["geometry"]["coordinates"]] == [2]

    # an existing export is refused without --overwrite, then benign left out with --skip-classes
    assert main(["export", str(mask), "--out", str(tmp_path / "qupath")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["export", str(mask), "--out", str(tmp_path / "qupath"), "--overwrite",
                 "--skip-classes", "benign"]) == 0
    names = [f["properties"]["classification"]["name"] for f in json.loads(out.read_text())["features"]]
    assert names == ["G3", "G4", "G5"]


def test_maps_become_named_pyramidal_ome_tiffs_with_the_images_pixel_size(tmp_path, capsys):
    rng = np.random.default_rng(3)
    pred = tmp_path / "pred"
    pred.mkdir()
    probabilities = rng.random((4, 1200, 1100), dtype=np.float32)
    errors = rng.random((2, 1200, 1100), dtype=np.float32)
    errors[:, :100] = np.nan
    np.save(pred / "c1_probabilities.npy", probabilities)
    np.save(pred / "c1_errors.npy", errors)
    (pred / "c1_prediction.json").write_text(json.dumps({"classes": list(GLEASON_SCHEME.names),
                                                         "experts": ["1", "3"]}))
    image = tmp_path / "c1.ome.tif"  # the core's image states 0.2462 µm per pixel
    tifffile.imwrite(image, np.zeros((32, 32, 3), np.uint8), ome=True, photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 0.2462, "PhysicalSizeY": 0.2462})
    assert main(["export", str(pred / "c1_probabilities.npy"), str(pred / "c1_errors.npy"),
                 "--out", str(tmp_path / "fiji"), "--pixel-size", str(image)]) == 0
    for stem, data, names in [("c1_probabilities", probabilities, [f"probability:{n}" for n in GLEASON_SCHEME.names]),
                              ("c1_errors", errors, ["error:1", "error:3"])]:
        path = tmp_path / "fiji" / f"{stem}.ome.tif"
        with tifffile.TiffFile(path) as tif:
            levels = [lv.asarray() for lv in tif.series[0].levels]
            pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        np.testing.assert_array_equal(levels[0].view(np.uint32), data.view(np.uint32))  # bit-exact, NaN too
        assert [lv.shape for lv in levels] == [data.shape, (len(names), 600, 550), (len(names), 300, 275)]
        assert [c["Name"] for c in pixels["Channel"]] == names
        assert pixel_size_um(path) == (0.2462, 0.2462)


def test_dataset_consensus_as_geojson_and_png_beside_the_experts(tmp_path, capsys):
    root = make_two_expert_dataset(tmp_path / "data")
    before = tree_digest(root)
    assert main(["export", "--data", str(root)]) == 0
    assert "vote consensus of 2 cores (geojson)" in capsys.readouterr().out
    masks = {c: [read_mask(p, GLEASON_SCHEME) for p in sorted(root.glob(f"Maps*_T/{c}_*.png"))] for c in ("c1", "c2")}
    for core, experts in masks.items():
        vote = majority_vote(experts, 4)
        back = read_geojson_mask(root / "Maps_vote" / f"{core}.geojson", vote.shape, READ_BACK)
        np.testing.assert_array_equal(back, vote)
    assert main(["export", "--data", str(root), "--consensus", "staple", "--to", "png",
                 "--out", str(tmp_path / "staple")]) == 0
    written = np.asarray(Image.open(tmp_path / "staple" / "c2_classimg_nonconvex.png"))
    np.testing.assert_array_equal(written, GLEASON_VALUES[masks["c2"][0]])  # two identical experts
    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith("Maps_vote")} == before


def test_an_experts_folder_is_never_a_destination(tmp_path, capsys):
    root = make_two_expert_dataset(tmp_path / "data")
    mask = tmp_path / "c1_classimg_nonconvex.png"
    Image.fromarray(GLEASON_VALUES[blocks(np.array([[0, 1], [2, 3]], np.uint8), 8)]).save(mask)
    before = tree_digest(tmp_path)
    for argv in (["--data", str(root), "--out", str(root / "Maps2_T")],
                 ["--data", str(root), "--out", str(root / "Maps_vote" / ".." / "Maps1_T" / "sub")],
                 [str(mask), "--out", str(root / "Maps1_T")]):  # no --data: the dataset above is found
        assert main(["export", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "expert's folder" in err[0] and "Maps" in err[0], err
    assert tree_digest(tmp_path) == before


def test_geojson_uses_the_qupath_names_of_classes_json_and_reads_back_through_it(tmp_path, capsys):
    from trainer.data.generic import load_class_scheme

    classes = _tumour_core()
    spec = {"classes": ["benign", "G3", "G4", "G5"], "values": {"0": 0, "1": 0, "3": 1, "4": 2, "5": 3},
            "export_values": [1, 3, 4, 5], "names": {"Benign": 1, "Gleason 3": 3, "Gleason 4": 4, "Gleason 5": 5}}
    (tmp_path / "classes.json").write_text(json.dumps(spec))
    Image.fromarray(GLEASON_VALUES[classes]).save(tmp_path / "core9.png")
    assert main(["export", str(tmp_path / "core9.png"), "--classes", str(tmp_path / "classes.json"),
                 "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / "core9.geojson"
    names = [f["properties"]["classification"]["name"] for f in json.loads(out.read_text())["features"]]
    assert names == ["Benign", "Gleason 3", "Gleason 4", "Gleason 5"]
    back = read_geojson_mask(out, classes.shape, load_class_scheme(tmp_path / "classes.json"))
    np.testing.assert_array_equal(back, classes)
