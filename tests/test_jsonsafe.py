"""Results files are strict JSON: undefined numbers are null, never NaN or Infinity."""

import json
import math

import numpy as np
import pytest

from trainer import jsonsafe


def test_undefined_numbers_become_null_and_numpy_becomes_python():
    value = {"dice": {"G5": float("nan"), "G4": np.float32(0.5)}, "inf": -math.inf, 3: np.int64(7),
             "m": np.array([[1.0, np.nan]]), "flag": np.bool_(True), "t": (1, 2)}
    text = jsonsafe.dumps(value)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"dice": {"G5": None, "G4": 0.5}, "inf": None, "3": 7, "m": [[1.0, None]],
                                "flag": True, "t": [1, 2]}
    with pytest.raises(ValueError):
        json.dumps(float("nan"), allow_nan=False)  # what dumps guards against


def test_the_event_log_round_trip_keeps_undefined_dice_undefined():
    """The engine's events.jsonl is strict JSON; what the GUI rebuilds from it has NaN again where the
    engine had NaN (a class absent from prediction and vote), not None."""
    from trainer import events as ev

    done = ev.ValidationDone(4, {"benign": 0.9, "G5": float("nan")}, float("nan"), True)
    line = jsonsafe.dumps(done.to_dict())
    assert "NaN" not in line
    back = ev.event_from_dict(json.loads(line))
    assert back.dice["benign"] == 0.9 and math.isnan(back.dice["G5"]) and math.isnan(back.mean_dice)
    it = ev.event_from_dict(json.loads(jsonsafe.dumps(ev.IterationDone(1, 2, {"total": float("inf")}, 1, 0, 0.01, 0.1)
                                                      .to_dict())))
    assert math.isnan(it.losses["total"])
