"""``predict --data``: a dataset through the one pipeline (trainer.prediction.dataset), each core once —
skipping what is done, refusing what is not ours, sharded over ranks (in process and under torchrun) —
and ``evaluate`` scoring exactly the masks that ``predict`` writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.cli import default_predict_out, main
from trainer.data import load_core, open_dataset
from trainer.data.io import read_mask
from trainer.errors import InputError
from trainer.prediction.predictor import load_predictor
from trainer.prediction import ArraySink, WholeCore, predict
from trainer.resample import resize_nearest
from trainer.prediction.dataset import predict_dataset, split_cores


def _mask(out: Path, name: str) -> Path:
    return out / f"{name}_classimg_nonconvex.png"  # the Gleason 2019 convention of the synthetic set


@pytest.fixture(scope="module")
def confusion_predictor(tiny_confusion_run):
    return load_predictor(Path(tiny_confusion_run) / "last.pt", "cpu")


def test_every_core_once_with_its_experts_labels_then_skipped(confusion_predictor, synthetic_data, tmp_path):
    ds = open_dataset(synthetic_data)
    out = tmp_path / "pred"
    first = predict_dataset(confusion_predictor, ds, ds.cores, out, progress=False)
    assert first.predicted == ds.names and first.skipped == []
    assert sorted(p.name for p in out.glob("*.png")) == sorted(_mask(out, n).name for n in ds.names)

    # the error maps are given each expert's label: what predict() says with the core's masks as labels
    record = next(c for c in ds.cores if set(c.experts) > {"1", "3"})
    core = load_core(record, ds.scheme)
    ref = predict(confusion_predictor, core.image, WholeCore(), ArraySink(), core=record.name,
                  experts=list(core.masks), labels=core.masks, scheme=ds.scheme)
    meta = json.loads((out / f"{record.name}_prediction.json").read_text())
    known = [e for e in record.experts if e in confusion_predictor.experts]
    assert meta["experts"] == known
    saved = np.load(out / f"{record.name}_errors.npy")
    for i, e in enumerate(known):
        expected = resize_nearest(ref.errors[e], core.image.shape[:2])
        np.testing.assert_allclose(saved[i], expected, atol=1e-6)
        assert not np.allclose(ref.errors[e], ref.errors_prior[e])  # not the image-only map
    assert (read_mask(_mask(out, record.name), ds.scheme) == ref.classes_full()).all()

    again = predict_dataset(confusion_predictor, ds, ds.cores, out, progress=False)
    assert again.predicted == [] and again.skipped == ds.names
    before = _mask(out, record.name).stat().st_mtime_ns
    redo = predict_dataset(confusion_predictor, ds, ds.cores[:2], out, overwrite=True, progress=False)
    assert redo.predicted == ds.names[:2]
    assert _mask(out, ds.names[0]).stat().st_mtime_ns >= before


def test_ranks_share_the_cores_each_exactly_once(confusion_predictor, synthetic_data, tmp_path):
    ds = open_dataset(synthetic_data)
    shares = [predict_dataset(confusion_predictor, ds, ds.cores, tmp_path / "p", rank=r, world=3, progress=False)
              for r in range(3)]
    done = [n for s in shares for n in s.predicted]
    assert sorted(done) == sorted(ds.names) and len(done) == len(set(done))
    assert [s.cores for s in shares] == [len(ds.names[r::3]) for r in range(3)]


def test_refuses_expert_folders_strangers_files_and_other_checkpoints(confusion_predictor, tiny_run,
                                                                      synthetic_data, tmp_path):
    ds = open_dataset(synthetic_data)
    before = sorted(p.name for p in (Path(synthetic_data) / "Maps3_T").iterdir())
    with pytest.raises(InputError, match="expert's folder"):
        predict_dataset(confusion_predictor, ds, ds.cores, Path(synthetic_data) / "Maps1_T" / ".." / "Maps3_T",
                        progress=False)
    assert sorted(p.name for p in (Path(synthetic_data) / "Maps3_T").iterdir()) == before

    out = tmp_path / "pred"
    out.mkdir()
    _mask(out, ds.names[0]).write_bytes(b"someone's mask")  # no _prediction.json beside it: not ours
    with pytest.raises(InputError, match="not a finished prediction"):
        predict_dataset(confusion_predictor, ds, ds.cores[:1], out, progress=False)
    assert _mask(out, ds.names[0]).read_bytes() == b"someone's mask"

    predict_dataset(confusion_predictor, ds, ds.cores[1:2], out, progress=False)
    other = load_predictor(Path(tiny_run) / "last.pt", "cpu")
    with pytest.raises(InputError, match="another checkpoint"):
        predict_dataset(other, ds, ds.cores[1:2], out, progress=False)
    assert predict_dataset(other, ds, ds.cores[1:2], out, overwrite=True, progress=False).predicted == ds.names[1:2]


def test_cli_predicts_a_split_says_what_it_skipped_and_writes_a_summary(tiny_confusion_run, synthetic_data,
                                                                        tmp_path, capsys):
    ck = Path(tiny_confusion_run) / "last.pt"
    ds = open_dataset(synthetic_data)
    test, _ = split_cores(ds, "test", None, ("1", "3", "4"))
    args = ["predict", "--checkpoint", str(ck), "--data", str(synthetic_data), "--split", "test", "--device", "cpu",
            "--out", str(tmp_path / "pred"), "--json", str(tmp_path / "summary.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"predicted {len(test)} cores, skipped 0" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ranks"][0]["predicted"] == [c.name for c in test]
    assert sorted(p.name for p in (tmp_path / "pred").glob("*.png")) == sorted(
        _mask(tmp_path / "pred", c.name).name for c in test)
    assert main(args) == 0
    assert f"predicted 0 cores, skipped {len(test)} already predicted" in capsys.readouterr().out
    # the default folder: beside the checkpoint, named after the dataset and the checkpoint, never in the data
    assert default_predict_out(ck, synthetic_data) == ck.parent / "predictions" / f"{Path(synthetic_data).name}-last"
    assert main(["predict", "--checkpoint", str(ck), "--image", str(test[0].image_path), "--split", "test",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--split goes with --data" in capsys.readouterr().err


def test_evaluate_scores_the_masks_predict_writes(tiny_run, synthetic_data, tmp_path):
    """One path: evaluate's per-core Dice equals Dice of the PNG that ``predict --data`` wrote."""
    from trainer.data.vote import majority_vote
    from trainer.metrics import DiceAccumulator

    ck = Path(tiny_run) / "best.pt"
    assert main(["evaluate", "--checkpoint", str(ck), "--data", str(synthetic_data), "--split", "all",
                 "--device", "cpu", "--json", str(tmp_path / "eval.json")]) == 0
    assert main(["predict", "--checkpoint", str(ck), "--data", str(synthetic_data), "--device", "cpu",
                 "--out", str(tmp_path / "pred")]) == 0
    ds = open_dataset(synthetic_data)
    for row in json.loads((tmp_path / "eval.json").read_text())["per_core"]:
        core = load_core(ds.core(row["core"]), ds.scheme)
        vote = majority_vote(np.stack([core.masks[e] for e in sorted(core.masks)]), ds.scheme.num_classes)
        acc = DiceAccumulator(ds.scheme.num_classes)
        acc.update(vote, read_mask(_mask(tmp_path / "pred", row["core"]), ds.scheme))
        assert acc.mean_dice() == pytest.approx(row["mean_dice"], nan_ok=True)


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_predict_each_core_exactly_once(tiny_confusion_run, synthetic_data, tmp_path):
    """The user's path: ``torchrun --standalone --nproc_per_node 2 -m trainer predict --data …`` (gloo, CPU)."""
    out, summary = tmp_path / "pred", tmp_path / "summary.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "trainer",
           "predict", "--checkpoint", str(Path(tiny_confusion_run) / "last.pt"), "--data", str(synthetic_data),
           "--device", "cpu", "--out", str(out), "--json", str(summary)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    names = open_dataset(synthetic_data).names
    assert p.stdout.count("predicted ") == 1 and f"predicted {len(names)} cores" in p.stdout  # rank 0 reports
    ranks = json.loads(summary.read_text())["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["predicted"] for r in ranks)
    done = [n for r in ranks for n in r["predicted"]]
    assert sorted(done) == sorted(names) and len(done) == len(set(done))  # every core, none twice
    for n in names:
        assert len(list(out.glob(f"{n}_classimg_nonconvex.png"))) == 1
        assert np.asarray(Image.open(_mask(out, n))).shape == load_core(
            open_dataset(synthetic_data).core(n), open_dataset(synthetic_data).scheme).image.shape[:2]


def test_a_dataset_into_a_review_store_each_core_once_then_skipped(confusion_predictor, synthetic_data, tmp_path,
                                                                    capsys):
    """``predict --data DIR --store STORE --mode full``: every core of the split written into the store
    (image and experts) and predicted there at full resolution with its experts' error maps; a rerun
    skips them all; the experts' files are untouched; the paper setting is refused with one line."""
    from trainer.review_store import ReviewStore
    from trainer.prediction import Tiled

    ds = open_dataset(synthetic_data)
    experts_before = {p: p.read_bytes() for p in Path(synthetic_data).glob("Maps*/*.png")}
    store_path = tmp_path / "review.zarr"
    ck = str(Path(confusion_predictor.path))
    code = main(["predict", "--checkpoint", ck, "--data", str(synthetic_data), "--store", str(store_path),
                 "--mode", "full", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    store = ReviewStore.open(store_path)
    assert sorted(store.names) == sorted(ds.names)
    for name in ds.names:
        stored = store.load(name)
        assert "prediction" in stored.labels
        core = load_core(ds.core(name), ds.scheme)
        assert sorted(store.experts_of(name)) == sorted(core.masks)
        known = [e for e in confusion_predictor.experts if e in core.masks]
        assert sorted(r for r in stored.maps if r.startswith("error:")) == sorted(f"error:{e}" for e in known)
    # the stored class map is the tiled prediction of the same image
    name = ds.names[0]
    want = predict(confusion_predictor, load_core(ds.core(name), ds.scheme).image, Tiled(), core=name)
    got = ReviewStore.open(store_path).load(name).class_maps()["prediction"]
    assert (got == want.classes).mean() > 0.999
    assert main(["predict", "--checkpoint", ck, "--data", str(synthetic_data), "--store", str(store_path),
                 "--mode", "full", "--device", "cpu"]) == 0
    assert f"skipped {len(ds.names)} already predicted" in capsys.readouterr().out
    assert all(p.read_bytes() == b for p, b in experts_before.items())
    assert main(["predict", "--checkpoint", ck, "--data", str(synthetic_data), "--store", str(tmp_path / "s2"),
                 "--device", "cpu"]) == 2
    assert "use --mode full" in capsys.readouterr().err
