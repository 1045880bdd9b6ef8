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
