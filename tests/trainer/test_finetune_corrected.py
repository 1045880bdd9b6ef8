"""Fine-tuning on a corrected core (the human-in-the-loop cycle) moves the prediction towards it."""

import numpy as np
import pytest

from trainer.data import open_dataset
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX
from trainer.data.corrected import CorrectedRecord, CorrectedCoreSet, MixedDataset, default_repeat
from trainer.data.io import read_image, write_mask_png
from trainer.engine import train
from trainer.prediction.predictor import load_predictor, predict_core

from tests.tiny_runs import tiny_config


def test_corrected_items_train_the_vote_only(synthetic_data, tmp_path):
    ds = open_dataset(synthetic_data)
    rec = ds.cores[0]
    mask = np.full(read_image(rec.image_path).shape[:2], 3, np.uint8)  # all G5
    write_mask_png(tmp_path / "m.png", mask, GLEASON_SCHEME)
    items = CorrectedCoreSet([CorrectedRecord("c", rec.image_path, tmp_path / "m.png")], GLEASON_SCHEME, 3, 64)
    item = items[(0, 5)]
    assert item["image"].shape == (3, 64, 64)
    assert not item["present"].any() and (item["experts"] == IGNORE_INDEX).all()
    assert set(item["vote"].unique().tolist()) <= {3, IGNORE_INDEX}
    mixed = MixedDataset(list(range(6)), items, repeat=4)
    assert len(mixed) == 6 + 4 and default_repeat(9, 1) == 3


@pytest.mark.slow
def test_fine_tune_on_corrected_core_changes_prediction(synthetic_data, tmp_path):
    base = tiny_config(synthetic_data, tmp_path / "base", iters=4)
    list(train(base))
    ds = open_dataset(synthetic_data)
    rec = ds.cores[0]
    image = read_image(rec.image_path)
    before = predict_core(load_predictor(tmp_path / "base" / "last.pt", "cpu"), image, size=64)
    corrected = np.full(image.shape[:2], 3, np.uint8)  # the pathologist calls the whole core G5
    write_mask_png(tmp_path / "corrected.png", corrected, GLEASON_SCHEME)
    cfg = tiny_config(synthetic_data, tmp_path / "ft", iters=25, val_every=100, checkpoint_every=100,
                      train__init=str(tmp_path / "base" / "last.pt"), data__corrected_repeat=30,
                      data__corrected=[{"name": "edited", "image": str(rec.image_path),
                                        "mask": str(tmp_path / "corrected.png")}])
    events = list(train(cfg))
    assert events[0].counts["train"] >= 1
    after = predict_core(load_predictor(tmp_path / "ft" / "last.pt", "cpu"), image, size=64)
    g5_before = (before.classes == 3).mean()
    g5_after = (after.classes == 3).mean()
    assert g5_after > g5_before + 0.3
