"""Class names on labels layers, the grade table's rows, the browser's grade-group spread, and a table as CSV
(no viewer needed)."""

import csv
import io
import math

import numpy as np
import pytest

from napari_gleason._grades import fit_mask, grade_cells, grade_group_spread, grade_headers, grade_steps, rater_name
from napari_gleason._layers import ROLE_STYLES, LabelCoding, label_features, layer_tuple
from napari_gleason._scores import CoreScore, expert_grade_groups
from napari_gleason._table_csv import save_csv, table_csv
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX, ClassScheme
from trainer.errors import InputError

NAMES = GLEASON_SCHEME.names
CODING = LabelCoding.from_scheme(GLEASON_SCHEME)
LABEL_ROLES = ["expert:1", "consensus:vote", "consensus:staple", "consensus:learned", "corrected", "truth",
               "prediction"]


def hand_core() -> np.ndarray:
    """10×10 class map: rows 0-5 G4 (60 %), rows 6-8 G3 (30 %), row 9 benign (10 %): 4+3=7, grade group 3."""
    m = np.zeros((10, 10), np.uint8)
    m[:6], m[6:9] = 2, 1
    return m


def test_every_labels_role_names_its_label_values():
    assert {r.split(":")[0] for r in LABEL_ROLES} == {p for p, s in ROLE_STYLES.items() if s["type"] == "labels"}
    for role in LABEL_ROLES:
        _, kw, kind = layer_tuple(role, hand_core(), core="c", scheme=GLEASON_SCHEME)
        assert kind == "labels"
        table = dict(zip(kw["features"]["index"], kw["features"]["class"]))
        # Gleason label values are the Gleason values: 1 benign, 3, 4, 5; 0 is "no label"
        assert table == {0: "unlabelled", 1: "benign", 3: "G3", 4: "G4", 5: "G5"}


def test_a_generic_scheme_names_index_plus_one():
    scheme = ClassScheme(("bg", "tumour"), {0: 0, 1: 1}, (255,), (0, 1))
    assert label_features(LabelCoding.from_scheme(scheme)) == {"index": [0, 1, 2], "class": ["unlabelled", "bg", "tumour"]}


def test_grade_steps_grade_a_hand_made_core():
    image = np.full((10, 10, 3), (150, 80, 160), np.uint8)  # dark everywhere: all tissue
    labels = {"expert:1": CODING.to_labels(hand_core()), "prediction": CODING.to_labels(np.full((10, 10), 3, np.uint8))}
    out = dict(grade_steps(image, labels, CODING))
    assert out["tissue"].all()
    g = out["expert:1"]
    assert (g.primary, g.secondary, g.score, g.grade_group, g.label) == (4, 3, 7, 3, "4+3=7")
    assert grade_cells(g, NAMES) == ["10.0", "30.0", "60.0", "0.0", "4", "3", "4+3=7", "3"]
    assert grade_cells(out["prediction"], NAMES)[-4:] == ["5", "5", "5+5=10", "5"]
    assert len(grade_headers(NAMES)) == 1 + len(grade_cells(None, NAMES))
    # a prediction coarser than the image (the model's input size) is graded against the mask sampled to its size
    image[:5] = 255  # glass on the top half
    half = dict(grade_steps(image, {"p": CODING.to_labels(np.array([[1, 0], [2, 0]], np.uint8))}, CODING))
    np.testing.assert_array_equal(fit_mask(half["tissue"], (2, 2)), [[False, False], [True, True]])
    # G3 on glass still counts (a tumour label is tissue); the benign pixel on glass does not: 1/3 each
    assert grade_cells(half["p"], NAMES)[:4] == ["33.3", "33.3", "33.3", "0.0"]
    # given the tissue mask, it is not computed again
    again = list(grade_steps(image, {"expert:1": labels["expert:1"]}, CODING, tissue=out["tissue"]))
    assert [k for k, _ in again] == ["expert:1"]


def test_unlabelled_and_benign_cores_read_as_such():
    cells = dict(grade_steps(np.zeros((4, 4, 3), np.uint8), {"a": np.zeros((4, 4), np.uint8),
                                                             "b": np.ones((4, 4), np.uint8)}, CODING))
    assert grade_cells(cells["a"], NAMES)[-4:] == ["—", "—", "unlabelled", "—"]
    assert grade_cells(cells["b"], NAMES)[-4:] == ["—", "—", "benign", "0"]


def test_rater_names():
    assert [rater_name(r) for r in ("expert:3", "consensus:vote", "consensus:staple", "prediction", "truth")] == [
        "expert 3", "vote", "STAPLE", "prediction", None]


def test_grade_group_spread_and_the_browser_score():
    assert grade_group_spread([2, None, 5, 3]) == 3
    assert math.isnan(grade_group_spread([4, None]))
    masks = {"a": hand_core(), "b": np.zeros((10, 10), np.uint8), "c": np.full((10, 10), IGNORE_INDEX, np.uint8)}
    groups = expert_grade_groups(masks, NAMES)
    assert groups == {"a": 3, "b": 0, "c": None}
    score = CoreScore("c1", tuple(masks), grades=groups)
    assert score.grade_spread == 3
    back = CoreScore.from_entry("c1", score.to_entry())  # the score cache keeps them
    assert back.grades == groups and back.grade_spread == 3
    assert expert_grade_groups(masks, ("bg", "x", "y", "z")) == {}  # no Gleason pattern: nothing to grade


def test_csv_round_trips_awkward_cells():
    headers = ["Rater", "G3 %", 'say "hi"']
    rows = [["expert, 1", "30.0", "a\nb"], ["vote", "—", ""]]
    text = table_csv(headers, rows)
    assert list(csv.reader(io.StringIO(text))) == [headers, *rows]
    with_labels = table_csv(["benign", "G3"], [["90", "10"], ["5", "95"]], row_headers=["benign 40%", "G3 60%"])
    assert list(csv.reader(io.StringIO(with_labels))) == [["", "benign", "G3"], ["benign 40%", "90", "10"],
                                                          ["G3 60%", "5", "95"]]
    with pytest.raises(ValueError):
        table_csv(["a"], [["1"]], row_headers=["x", "y"])


def test_save_csv_writes_the_text_and_names_a_bad_folder(tmp_path):
    text = table_csv(["a", "b"], [["1", "2"]])
    path = save_csv(tmp_path / "t.csv", text)
    assert path.read_text(encoding="utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary file left
    with pytest.raises(InputError) as e:
        save_csv(tmp_path / "missing" / "t.csv", text)
    assert "missing" in str(e.value)
