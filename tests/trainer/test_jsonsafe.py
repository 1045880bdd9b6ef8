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


def test_read_document_names_the_file_and_the_fault(tmp_path):
    """The one reader of a user's JSON file (classes.json, split files, QuPath GeoJSON)."""
    import pytest

    from trainer.errors import InputError
    from trainer.jsonsafe import read_document

    good = tmp_path / "a.json"
    good.write_bytes(b"\xef\xbb\xbf" + b'{"x": 1}')  # a BOM, as Windows editors write
    assert read_document(good, "the thing") == {"x": 1}
    cases = {"missing.json": (None, "cannot read the thing: file not found"),
             "cut.json": (b'{"x": [1, 2', "invalid JSON at line 1, column 12"),
             "latin.json": ('{"x": "é"}'.encode("latin-1"), "not UTF-8 text"),
             "list.json": (b"[1, 2]", "expected an object here")}
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(InputError) as info:
            read_document(path, "the thing", dict, "expected an object here")
        assert str(info.value).startswith(str(path)) and needle in str(info.value), str(info.value)
    assert read_document(tmp_path / "list.json", "the thing", (dict, list)) == [1, 2]
