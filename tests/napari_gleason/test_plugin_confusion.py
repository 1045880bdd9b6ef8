"""Error maps and per-core confusion matrices of a confusion-model checkpoint, headless (no viewer)."""

import numpy as np
import pytest

from napari_gleason._core_sources import FolderSource
from napari_gleason._predict import prediction_job
from napari_gleason._session import Session
from trainer.data.classes import GLEASON_SCHEME, LabelCoding
from trainer.prediction.predictor import load_predictor, predict_core
from trainer.prediction import PRIOR_NOTE, StoreSink, Tiled, predict
from trainer.resample import resize_image, resize_nearest
from trainer.prediction.confusion import CoreConfusion, main_confusion, percent_cells, summary_line, summary_lines
from trainer.review_store import ReviewStore
from trainer.prediction.tissue import tissue_mask

CODING = LabelCoding.from_scheme(GLEASON_SCHEME)
CORE = "slide001_core004"  # experts 1, 2, 4; the tiny runs know 1, 3, 4
CLASSES = GLEASON_SCHEME.names


@pytest.fixture(scope="module")
def predictor(tiny_confusion_run):
    return load_predictor(tiny_confusion_run, "cpu")


@pytest.fixture(scope="module")
def core(synthetic_data):
    return FolderSource.open(synthetic_data).load(CORE)


def test_paper_setting_gives_error_maps_given_the_labels_blank_off_the_tissue(predictor, core):
    labels = dict(core.masks)  # class indices at the core's shape
    out = predict(predictor, core.image, core=CORE, experts=list(labels), labels=labels)
    assert sorted(r for r in out.maps if r.startswith(("error", "weight"))) == ["error:1", "error:4"]
    assert out.weights == {} and "2 of this core get no error map" in out.notes[0]
    # what predict_core says for the same resized core and resized labels, at the model's resolution
    small = resize_image(core.image, predictor.size)
    tissue = tissue_mask(small)
    stack = resize_nearest(np.stack([labels["1"], labels["4"]]), predictor.size)
    p = predict_core(predictor, small, experts=("1", "4"), labels={"1": stack[0], "4": stack[1]}, tissue=tissue)
    on = tissue
    assert 0.3 < on.mean() < 0.95  # the synthetic core has glass around it
    for e in ("1", "4"):
        shown = np.asarray(out.maps[f"error:{e}"])
        assert shown.shape == (predictor.size, predictor.size)
        np.testing.assert_array_equal(np.isnan(shown), ~on)
        np.testing.assert_allclose(shown[on], p.errors[e][on])
        assert 0 <= np.nanmin(shown) and np.nanmax(shown) <= 1
    # the labels matter: without them the map is the prior expectation
    prior = predict(predictor, core.image, core=CORE, experts=list(labels))
    assert not np.allclose(np.asarray(prior.maps["error:1"])[on], np.asarray(out.maps["error:1"])[on])
    # the per-core matrices: rows sum to 1 (NaN: a class the model does not see), shares sum to 1
    conf = out.confusion
    assert isinstance(conf, CoreConfusion) and conf.core == CORE and conf.classes == CLASSES
    assert sorted(conf.matrices) == ["1", "4"]
    for e, m in conf.matrices.items():
        np.testing.assert_allclose(m, p.confusion[e])
        seen = np.isfinite(m).all(axis=1)
        np.testing.assert_allclose(m[seen].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(conf.share.sum(), 1.0, atol=1e-6)


def test_job_passes_the_expert_layers_and_yields_no_learned_consensus(tiny_confusion_run, core):
    experts = {e: CODING.to_labels(m) for e, m in core.masks.items()}  # display values, as the layers hold
    steps = list(prediction_job(None, tiny_confusion_run, "cpu", core.image, CORE, GLEASON_SCHEME, CODING, experts))
    # the segmentation first (no error maps yet), then the complete output, then no learned consensus
    assert [k for k, _ in steps] == ["loaded", "prediction", "prediction", "learned"] and steps[3][1] is None
    first, out = steps[1][1], steps[2][1]
    assert not first.complete and not first.errors and not any(r.startswith("error:") for r in first.maps)
    assert out.complete and sorted(out.errors) == ["1", "4"]  # the experts of this core the model knows
    np.testing.assert_array_equal(first.classes, out.classes)
    given = predict(steps[0][1], core.image, core=CORE, experts=list(experts), labels=dict(core.masks))
    np.testing.assert_allclose(np.asarray(out.maps["error:4"]), np.asarray(given.maps["error:4"]))


def test_full_resolution_gives_prior_error_maps_and_the_whole_core_matrices(predictor, core):
    out = predict(predictor, core.image, Tiled(overlap=16), core=CORE, experts=["1", "2", "4"])
    assert PRIOR_NOTE in out.notes
    on = tissue_mask(core.image)
    for e in ("1", "4"):
        m = out.maps[f"error:{e}"]
        assert isinstance(m, np.ndarray) and m.shape == core.image.shape[:2]
        np.testing.assert_array_equal(np.isnan(m), ~on)
    assert sorted(out.confusion.matrices) == ["1", "4"]
    paper = predict(predictor, core.image, core=CORE, experts=["1", "2", "4"])
    for e in ("1", "4"):  # the same model's matrices: summed from the tiles at full resolution (no second
        # pass; tests/trainer/prediction/test_tiling.py checks the sums exactly), in the paper setting at the
        # model's size
        np.testing.assert_allclose(out.confusion.matrices[e], paper.confusion.matrices[e], atol=2e-3)


def test_store_path_writes_the_error_maps(predictor, synthetic_data, core, tmp_path):
    store = ReviewStore.create(tmp_path / "review.zarr", GLEASON_SCHEME)
    store.write_core(core)
    experts = store.load(CORE).labels
    expert_labels = {r.split(":", 1)[1]: v[0] if isinstance(v, list) else v
                     for r, v in experts.items() if r.startswith("expert:")}
    out = predict(predictor, None, Tiled(), StoreSink(store.path), core=CORE, experts=list(expert_labels),
                  labels=expert_labels, coding=CODING)
    stored = ReviewStore.open(store.path).load(CORE)
    assert sorted(r for r in stored.maps if r.startswith(("error", "weight"))) == ["error:1", "error:4"]
    assert "consensus:learned" not in stored.labels and out.learned is None
    on = tissue_mask(core.image)
    tiled = predict(predictor, core.image, Tiled(), core=CORE, experts=["1", "2", "4"])
    for e in ("1", "4"):
        m = np.asarray(stored.maps[f"error:{e}"][0], np.float32)
        np.testing.assert_array_equal(np.isnan(m), ~on)
        np.testing.assert_allclose(m[on], tiled.maps[f"error:{e}"][on], atol=2e-3)  # float16 in the store
    assert sorted(out.confusion.matrices) == ["1", "4"] and PRIOR_NOTE in out.notes


def test_shipped_demo_model_finds_each_experts_wrong_pixels_on_the_demo_core():
    from sklearn.metrics import roc_auc_score

    from napari_gleason._sample_data import synthetic_core
    from napari_gleason.demo import DEMO_MODEL

    assert DEMO_MODEL.stat().st_size < 8e6  # a few MB in the repository
    predictor = load_predictor(DEMO_MODEL, "cpu")
    assert predictor.confusion is not None and predictor.weighting is None
    assert predictor.experts == ("1", "3", "4") and predictor.size == 128
    core = synthetic_core(with_truth=True)  # the demo's core: not among the model's training cores
    truth = core.extras["truth"]
    out = predict(predictor, core.image, core=core.name, experts=list(core.masks), labels=dict(core.masks))
    p = np.stack([resize_nearest(out.maps[f"probability:{c}"], truth.shape) for c in predictor.classes])
    for e in ("1", "3", "4"):
        m = resize_nearest(out.maps[f"error:{e}"], truth.shape)  # model resolution -> the core's, as shown
        on = ~np.isnan(m)
        wrong = (core.masks[e] != truth)[on]
        ours = roc_auc_score(wrong, m[on])
        # the network alone: 1 − p(label written). Measured on all tissue (benchmarks/demo_error_maps.py):
        # 0.712 / 0.689 / 0.709 against 0.712 / 0.679 / 0.733 — the demo model does not beat this
        # baseline (README); the test keeps it within reach of it and far from chance
        baseline = roc_auc_score(wrong, 1 - np.take_along_axis(p, core.masks[e][None].astype(np.int64), 0)[0][on])
        assert ours > 0.65 and ours > baseline - 0.05, (e, ours, baseline)
    assert out.confusion.matrices["3"][1, 2] > 0.1  # expert 3 up-grades borderline G3 to G4


# --- wording of the matrices -----------------------------------------------------------------------
SHARE = np.array([0.5, 0.3, 0.195, 0.005])


def test_summary_names_the_main_confusion():
    m = np.array([[0.9, 0.05, 0.05, 0.0],
                  [0.02, 0.6, 0.38, 0.0],
                  [0.0, 0.1, 0.9, 0.0],
                  [0.0, 0.0, 0.7, 0.3]])  # G5 → G4 is larger, but G5 covers 0.5 % of the tissue only
    assert main_confusion(m, SHARE) == (1, 2, pytest.approx(0.38))
    assert summary_line("3", m, CLASSES, SHARE) == "expert 3: G3 → G4 on 38 % of G3"
    assert summary_line("3", m, CLASSES, np.array([0.5, 0.3, 0.19, 0.2])) == "expert 3: G5 → G4 on 70 % of G5"
    careful = np.eye(4) * 0.97 + 0.01
    assert summary_line("6", careful, CLASSES, SHARE) == "expert 6: no confusion above 5 %"
    nan_rows = np.full((4, 4), np.nan)
    nan_rows[0] = [1, 0, 0, 0]
    assert "no class covers" in summary_line("alice", nan_rows, CLASSES, np.array([0.005, 0, 0, 0]))
    assert percent_cells(nan_rows)[0] == ["100", "0", "0", "0"] and percent_cells(nan_rows)[1] == ["—"] * 4
    conf = CoreConfusion("c", CLASSES, {"3": m, "6": careful}, SHARE)
    assert summary_lines(conf)[0] == "expert 3: G3 → G4 on 38 % of G3" and len(summary_lines(conf)) == 2


def test_share_over_the_tissue_only():
    probs = np.zeros((4, 2, 2), np.float32)
    probs[0] = 1.0
    probs[:, 0, 0] = [0, 0, 1, 0]  # the one tissue pixel says G4
    tissue = np.array([[True, False], [False, False]])
    conf = CoreConfusion.from_prediction("c", CLASSES, {"1": np.eye(4)}, probs, tissue)
    np.testing.assert_allclose(conf.share, [0, 0, 1, 0])
    conf = CoreConfusion.from_prediction("c", CLASSES, {"1": np.eye(4)}, probs, None)
    np.testing.assert_allclose(conf.share, [0.75, 0, 0.25, 0])


def test_session_emits_on_change_only():
    s = Session()
    got = []
    s.learned_available_changed.connect(got.append)
    s.confusion_changed.connect(got.append)
    s.set_learned_available(False)  # no change: no signal
    s.set_learned_available(True)
    conf = CoreConfusion("c", CLASSES, {}, SHARE)
    s.set_confusion(conf)
    assert got == [True, conf] and s.confusion is conf
    assert s.shows("consensus:vote") and not s.shows("consensus:learned")
