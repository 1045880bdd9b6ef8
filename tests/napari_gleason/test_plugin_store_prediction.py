"""Full-resolution prediction read from and written into the review store, band by band."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.fakes import make_fake_gleason
from tests.napari_gleason.helpers_plugin import textured_image, tree_digest

from napari_gleason._core_sources import FolderSource
from napari_gleason._layers import Core, core_layer_tuples
from napari_gleason._predict import STORE_NAME, STREAM_ABOVE, prediction_job, streaming_store
from trainer.data.classes import GLEASON_SCHEME, LabelCoding
from trainer.prediction.predictor import load_predictor
from trainer.losses import heatmap_options, roughness_map_numpy
from trainer.prediction import StoreSink, Tiled, WholeCore, learned_consensus, predict
from trainer.review_store import ReviewStore, load_maps, roughness_into
from trainer.review_store import outputs as _store_outputs

CODING = LabelCoding.from_scheme(GLEASON_SCHEME)
NAME = "slide 3 core 9"
SHAPE = (601, 530)  # two pyramid levels, odd halving, neither side a multiple of the tile stride
MODE = Tiled(overlap=16, tile_batch=8)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return load_predictor(tiny_run, "cpu")


def make_store(path):
    rng = np.random.default_rng(3)
    masks = {e: rng.integers(0, 4, SHAPE).astype(np.uint8) for e in ("1", "3", "alice")}
    masks["3"][:40] = 255  # an unlabelled strip
    store = ReviewStore.create(path, GLEASON_SCHEME)
    store.write_core(Core(NAME, textured_image(SHAPE), masks, GLEASON_SCHEME))
    return store


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "review.zarr")


@pytest.fixture(scope="module")
def predicted(predictor, tmp_path_factory):
    """A store with one prediction written (shared: tests that change it work on a copy)."""
    store = make_store(tmp_path_factory.mktemp("predicted") / "review.zarr")
    out = into_store(predictor, store, MODE)
    return store, out


@pytest.fixture
def predicted_copy(predicted, tmp_path):
    shutil.copytree(predicted[0].path, tmp_path / "copy.zarr")
    return ReviewStore.open(tmp_path / "copy.zarr")


def into_store(predictor, store, mode):
    labels = expert_labels(store)
    return predict(predictor, None, mode, StoreSink(store.path), core=NAME, experts=list(labels), labels=labels,
                   coding=CODING, scheme=GLEASON_SCHEME)


def expert_labels(store):
    data = store.load(NAME)
    return {e: data.labels[f"expert:{e}"][0] for e in data.experts}


def test_store_path_equals_the_in_memory_tiled_prediction(predictor, predicted):
    store, out = predicted
    labels = expert_labels(store)
    image = np.asarray(store.load(NAME).image[0])
    ref = predict(predictor, image, MODE, core=NAME, experts=list(labels))

    assert out.in_label_values and out.store == str(store.path) and out.mode == MODE
    np.testing.assert_array_equal(CODING.to_classes(np.asarray(out.classes[0])), ref.classes)
    for role, m in ref.maps.items():  # probabilities, weights of experts 1 and 3, roughness (float16)
        got = np.asarray(out.maps[role][0], np.float32)
        np.testing.assert_allclose(got, m, rtol=2e-3, atol=1e-3, err_msg=role)
    assert sorted(r for r in out.maps if r.startswith("weight")) == ["weight:1", "weight:3"]  # alice: unknown
    classes = {e: CODING.to_classes(np.asarray(labels[e])) for e in ref.weights}
    want = learned_consensus(classes, ref.weights, 4)
    np.testing.assert_array_equal(CODING.to_classes(np.asarray(out.learned[0])), want)
    # pyramids: labels strided, maps 2×2 means
    np.testing.assert_array_equal(np.asarray(out.classes[1]), np.asarray(out.classes[0])[::2, ::2])
    p0 = np.asarray(out.maps["probability:G4"][0], np.float32)[:600, :530]  # 601 rows: the last has no pair
    mean = (p0[::2, ::2] + p0[1::2, ::2] + p0[::2, 1::2] + p0[1::2, 1::2]) / 4
    np.testing.assert_allclose(np.asarray(out.maps["probability:G4"][1], np.float32), mean, atol=1e-3)


def test_reopened_core_shows_the_stored_prediction(predicted):
    store = predicted[0]
    again = ReviewStore.open(store.path).load(NAME)
    assert {"prediction", "consensus:learned"} <= set(again.labels)
    assert sorted(again.maps) == ["probability:G3", "probability:G4", "probability:G5", "probability:benign",
                                  "roughness", "weight:1", "weight:3"]
    kinds = {kw["name"]: kind for _, kw, kind in core_layer_tuples(again)}
    assert kinds["prediction"] == "labels" and kinds["probability:G5"] == "image"
    # the store stays valid OME-Zarr for other viewers: the labels list names the new images
    labels_meta = json.loads((store.path / store.core_dir(NAME).name / "labels" / "zarr.json").read_text())
    assert {"prediction", "consensus_learned"} <= set(labels_meta["attributes"]["ome"]["labels"])


def test_a_failing_prediction_leaves_the_store_as_it_was(predictor, predicted_copy, monkeypatch):
    store = predicted_copy
    before = tree_digest(store.path)
    calls = {"n": 0}
    real = _store_outputs.PredictionWriter.write_map

    def disk_full_on_third_band(self, kind, y0, y1, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(self, kind, y0, y1, rows)

    monkeypatch.setattr(_store_outputs.PredictionWriter, "write_map", disk_full_on_third_band)
    with pytest.raises(OSError, match="No space left"):
        into_store(predictor, store, Tiled(overlap=8, tile_batch=8))
    assert tree_digest(store.path) == before  # old prediction intact, no staging left behind
    assert not (store.path / ".staging").exists()


def test_maps_of_another_prediction_are_not_paired_with_the_class_map(predicted_copy):
    store = predicted_copy
    assert load_maps(store, NAME)
    maps_json = store.core_dir(NAME) / "maps" / "zarr.json"
    meta = json.loads(maps_json.read_text())
    meta["attributes"]["napari_gleason"]["prediction"] = "an older prediction"
    maps_json.write_text(json.dumps(meta))
    assert load_maps(store, NAME) == {}


def test_job_writes_into_the_store_when_asked(tiny_run, store):
    labels = expert_labels(store)
    steps = list(prediction_job(None, tiny_run, "cpu", None, NAME, GLEASON_SCHEME, CODING, labels, MODE,
                                str(store.path)))
    assert [k for k, _ in steps] == ["loaded", "prediction", "learned"]
    out, learned = steps[1][1], steps[2][1]
    assert out.store == str(store.path) and isinstance(out.classes, list)
    assert np.shape(learned[0]) == SHAPE


class RowsWriter:
    def __init__(self, shape):
        self.out = np.full(shape, np.nan, np.float32)

    def write_map(self, kind, y0, y1, rows):
        assert kind == "roughness" and np.isnan(self.out[y0:y1]).all()  # every row written once
        self.out[y0:y1] = rows[0]


@pytest.mark.parametrize("rows", [7, 64, 1000])
def test_banded_roughness_equals_the_whole_image_map(rows):
    image = textured_image((150, 97))
    writer = RowsWriter((150, 97))
    roughness_into(writer, image, heatmap_options({}), rows=rows)
    expected = roughness_map_numpy(image, lambda_a=50.0, lambda_b=1.0, ksize=5, sigma=3.0)
    np.testing.assert_allclose(writer.out, expected, rtol=1e-5, atol=1e-5)


# --- big cores opened from files stream through their dataset's store ------------------------------
def test_which_store_a_full_resolution_prediction_streams_through(tmp_path):
    full, paper = Tiled(), WholeCore()
    from_store = {"store": "/s/review.zarr", "dataset": "/d"}
    from_files = {"dataset": "/d", "layout": "gleason2019"}
    assert streaming_store(from_store, (100, 100), full) == "/s/review.zarr"
    assert streaming_store(from_files, (5120, 5120), full) == str(Path("/d") / STORE_NAME)
    assert streaming_store(from_files, (STREAM_ABOVE, STREAM_ABOVE), full) is None  # small: in memory
    assert streaming_store({}, (5120, 5120), full) is None  # a sample: no dataset folder to cache into
    assert streaming_store(from_files, (5120, 5120), paper) is None


@pytest.fixture
def file_core(tmp_path):
    root = make_fake_gleason(tmp_path / "data set", size=(150, 130)).root
    core = FolderSource.open(root).load("slide001_core001")  # experts 1-6, opened from files
    labels = {e: CODING.to_labels(m) for e, m in core.masks.items()}
    cache = Core(core.name, core.image, {}, core.scheme, origin=core.origin,
                     labels={f"expert:{e}": m for e, m in labels.items()})
    return root, core, labels, cache


def test_a_core_from_files_is_cached_in_its_dataset_store_then_predicted_into_it(tiny_run, file_core):
    root, core, labels, cache = file_core
    before = tree_digest(root)
    target = str(root / STORE_NAME)
    steps = list(prediction_job(None, tiny_run, "cpu", core.image, core.name, core.scheme, CODING, labels,
                                MODE, target, cache_core=cache))
    out = steps[1][1]
    assert out.store == str(root / STORE_NAME) and any("cached in" in n for n in out.notes)
    store = ReviewStore.open(root / STORE_NAME)
    stored = store.load(core.name)
    np.testing.assert_array_equal(np.asarray(stored.image[0]), core.image)
    for e, m in core.masks.items():
        np.testing.assert_array_equal(stored.class_maps()[f"expert:{e}"], m)
    assert "prediction" in stored.labels
    # the experts' files are untouched; only the store was added to the dataset folder
    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith(STORE_NAME)} == before
    # a second prediction uses the cached core as it is
    again = list(prediction_job(None, tiny_run, "cpu", core.image, core.name, core.scheme, CODING, labels,
                                MODE, target, cache_core=cache))[1][1]
    assert again.store and not any("cached in" in n for n in again.notes)


def test_an_unwritable_dataset_folder_means_an_in_memory_prediction_with_a_note(tiny_run, file_core, monkeypatch):
    root, core, labels, cache = file_core

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(ReviewStore, "write_core", read_only)
    target = str(root / STORE_NAME)
    out = list(prediction_job(None, tiny_run, "cpu", core.image, core.name, core.scheme, CODING, labels,
                              MODE, target, cache_core=cache))[1][1]
    assert out.store is None and isinstance(out.classes, np.ndarray) and out.classes.shape == (150, 130)
    assert any("Read-only file system" in n and "in memory" in n for n in out.notes)
    assert not (root / STORE_NAME).exists()  # the store it had begun is gone


def test_a_store_holding_the_core_at_another_shape_is_left_alone(tiny_run, file_core, tmp_path):
    root, core, labels, cache = file_core
    other = Core(core.name, core.image[:100], {e: m[:100] for e, m in core.masks.items()}, core.scheme)
    ReviewStore.create(root / STORE_NAME, core.scheme).write_core(other)
    before = tree_digest(root / STORE_NAME)
    target = str(root / STORE_NAME)
    out = list(prediction_job(None, tiny_run, "cpu", core.image, core.name, core.scheme, CODING, labels,
                              MODE, target, cache_core=cache))[1][1]
    assert out.store is None and any("100×130" in n for n in out.notes)
    assert tree_digest(root / STORE_NAME) == before
