"""A training run's validation Dice (trainer.evaluation.validation_dice) against scikit-learn's
per-class F1 (= Dice) over the whole validation set, ignored pixels left out."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from trainer.data.classes import IGNORE_INDEX
from trainer.evaluation import validation_dice

NAMES = ("benign", "G3", "G4", "G5")


class _ValSet:
    """What the engine's validation set yields: items indexed by (core, seed=0)."""

    def __init__(self, n, size, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            vote = torch.randint(0, 4, (size, size), generator=g)
            vote[:2, :3] = IGNORE_INDEX
            self.items.append({"image": torch.randn(3, size, size, generator=g), "vote": vote})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, key):
        index, seed = key
        assert seed == 0  # validation never augments
        return self.items[index]


def test_validation_dice_is_sklearn_f1_over_the_set():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    model.train()
    val = _ValSet(3, 16, seed=1)
    dice, mean = validation_dice(model, val, NAMES, torch.device("cpu"))
    assert model.training  # back in train mode for the next iteration
    model.eval()
    with torch.no_grad():
        preds = [model(it["image"][None]).argmax(1)[0].numpy() for it in val.items]
    ref = np.concatenate([it["vote"].numpy().ravel() for it in val.items])
    pred = np.concatenate([p.ravel() for p in preds])
    keep = ref != IGNORE_INDEX
    expected = f1_score(ref[keep], pred[keep], labels=[0, 1, 2, 3], average=None)
    assert [dice[n] for n in NAMES] == pytest.approx(list(expected), abs=1e-9)
    assert mean == pytest.approx(float(np.mean(expected)))
    assert validation_dice(model, None, NAMES, torch.device("cpu")) is None
