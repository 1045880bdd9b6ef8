"""Class names in the status bar, the class legend, the grade table, the browser's grade-group spread, and
every widget table copied and saved as CSV."""

import csv
import io
import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import blocks, write_generic
from qtpy.QtCore import Qt
from qtpy.QtGui import QGuiApplication
from qtpy.QtWidgets import QTableWidgetSelectionRange

from napari_gleason._layers import Core, LabelCoding, find_layer, level0, set_layer, show_core
from napari_gleason._qt import BrowserWidget, ReviewWidget
from napari_gleason._qt.browser import COLUMNS
from napari_gleason._qt.tables import copy_csv, save_table, table_cells
from napari_gleason._session import session_of
from trainer.data.classes import CLASS_COLORS, GLEASON_SCHEME
from trainer.grading import grade_core
from trainer.prediction.confusion import CoreConfusion
from trainer.prediction.tissue import tissue_mask

NAMES = GLEASON_SCHEME.names
CODING = LabelCoding.from_scheme(GLEASON_SCHEME)
K = 2  # each pattern pixel a 2×2 block: a 20×20 core


def pattern(rows: dict[tuple[int, int], int]) -> np.ndarray:
    """A 10×10 class map, benign (0) outside the given row ranges."""
    m = np.zeros((10, 10), np.uint8)
    for (a, b), c in rows.items():
        m[a:b] = c
    return blocks(m, K)


# Grades worked out by hand (ISUP rule): 60 % G4 + 30 % G3 + 10 % benign -> 4+3=7, grade group 3;
# 40 % G4 + 60 % G3 -> 3+4=7, grade group 2 (a higher pattern is secondary); all benign -> grade group 0.
# Vote per row: rows 0-3 G4 (2 of 3), rows 4-5 a G4/G3/benign tie -> the higher, G4; rows 6-8 G3; row 9
# benign: 60 % G4, 30 % G3, 10 % benign, 4+3=7 again.
E1 = pattern({(0, 6): 2, (6, 9): 1})
E2 = pattern({(0, 4): 2, (4, 10): 1})
E3 = pattern({})
IMAGE = np.full((10 * K, 10 * K, 3), (150, 80, 160), np.uint8)  # stain everywhere: all of it is tissue
HAND = {  # rater -> shares of the tissue (benign, G3, G4, G5 %), primary, secondary, score, grade group
    "expert 1": ["10.0", "30.0", "60.0", "0.0", "4", "3", "4+3=7", "3"],
    "expert 2": ["0.0", "60.0", "40.0", "0.0", "3", "4", "3+4=7", "2"],
    "expert 3": ["100.0", "0.0", "0.0", "0.0", "—", "—", "benign", "0"],
    "vote": ["10.0", "30.0", "60.0", "0.0", "4", "3", "4+3=7", "3"],
}


@pytest.fixture
def review(make_napari_viewer, wait_idle):
    viewer = make_napari_viewer()
    show_core(viewer, Core("c1", IMAGE, {"1": E1, "2": E2, "3": E3}, GLEASON_SCHEME, scale=(0.5, 2.0)))
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget)
    wait_idle(widget)
    return viewer, widget


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def shown(table) -> list[list[str]]:
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    return [headers, *([table.item(i, j).text() for j in range(table.columnCount())] for i in range(table.rowCount()))]


def test_status_bar_names_the_class_under_the_cursor_on_every_labels_layer(review, wait_idle):
    viewer, w = review
    set_layer(viewer, "prediction", pattern({(0, 10): 3}), core="c1", scheme=GLEASON_SCHEME,
              like=find_layer(viewer, "image"))
    wait_idle(w)
    w.consensus._on_consensus_choice("both")  # a hidden layer is not sliced: napari reads no value from it
    # world position of pattern row 1 (G4 for expert 1, the vote and STAPLE; G5 predicted), row 9 (benign)
    g4, benign = (np.array([r * K + 0.5, 3.0]) * (0.5, 2.0) for r in (1, 9))
    expect = {"expert:1": "G4", "expert:2": "G4", "expert:3": "benign", "consensus:vote": "G4",
              "consensus:staple": "G4", "prediction": "G5"}
    for role, name in expect.items():
        layer = find_layer(viewer, role)
        assert f"class: {name}" in layer.get_status(g4, world=True)["coordinates"], role
    assert "class: benign" in find_layer(viewer, "expert:1").get_status(benign, world=True)["value"]
    # what napari's status bar shows for the selected layer under the cursor
    viewer.layers.selection.active = find_layer(viewer, "expert:1")
    viewer.mouse_over_canvas = True
    viewer.cursor.position = tuple(g4)
    viewer.update_status_from_cursor()
    assert "class: G4" in str(viewer.status)


def test_legend_names_each_class_in_the_layers_colours(review):
    viewer, w = review
    assert [name for name, _ in w.legend.entries] == list(NAMES)
    for (name, color), rgb in zip(w.legend.entries, CLASS_COLORS):
        assert (color.red(), color.green(), color.blue()) == rgb, name
    cmap = find_layer(viewer, "expert:1").colormap  # the same colours as the layer draws
    for (name, color), value in zip(w.legend.entries, CODING.values):
        np.testing.assert_allclose(cmap.map(value)[:3], np.array(color.getRgbF()[:3]), atol=1 / 255)


def test_grade_table_matches_hand_grades_and_trainer_grading(review, wait_idle):
    viewer, w = review
    rows = {r[0]: r[1:] for r in w.grades.rows()}
    assert list(rows) == ["expert 1", "expert 2", "expert 3", "vote", "STAPLE"]
    for rater, cells in HAND.items():
        assert rows[rater] == cells, rater
    # STAPLE (no hand value): the same as trainer.grading on the layer's class map, with the CLI's tissue mask
    staple = CODING.to_classes(level0(find_layer(viewer, "consensus:staple")))
    g = grade_core(staple, NAMES, tissue_mask(IMAGE))
    assert rows["STAPLE"][-4:] == [str(g.primary), str(g.secondary), g.label, str(g.grade_group)]
    assert rows["STAPLE"][2] == f"{100 * g.tissue_share['G4']:.1f}"
    assert "grade groups 3, 2, 0 (spread 3)" in w.grades.status.text()
    # a prediction arrives: one more row, the others are not graded again
    before = dict(w.grades.grades)
    set_layer(viewer, "prediction", pattern({(0, 10): 3}), core="c1", scheme=GLEASON_SCHEME,
              like=find_layer(viewer, "image"))
    wait_idle(w)
    rows = {r[0]: r[1:] for r in w.grades.rows()}
    assert rows["prediction"] == ["0.0", "0.0", "0.0", "100.0", "5", "5", "5+5=10", "5"]
    assert all(w.grades.grades[r] is g for r, g in before.items())
    # the prediction changes in place: its row follows
    set_layer(viewer, "prediction", E2, core="c1", scheme=GLEASON_SCHEME, like=find_layer(viewer, "image"))
    wait_idle(w)
    assert {r[0]: r[1:] for r in w.grades.rows()}["prediction"] == HAND["expert 2"]


def test_tables_copy_and_save_as_csv(review, wait_idle, tmp_path, qtbot):
    viewer, w = review
    for table in (w.grades.table, w.consensus.table):
        text = copy_csv(table)
        assert QGuiApplication.clipboard().text() == text
        assert parse(text) == shown(table)
        path = save_table(table, tmp_path / "t.csv")
        assert parse(path.read_text(encoding="utf-8")) == shown(table)
    # Ctrl+C copies the selected cells, with their headers
    table = w.grades.table
    table.setFocus()
    table.setRangeSelected(QTableWidgetSelectionRange(0, 0, 1, 1), True)
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert parse(QGuiApplication.clipboard().text()) == [["Rater", "benign"], ["expert 1", "10.0"],
                                                         ["expert 2", "0.0"]]
    # a confusion table keeps its row labels (true class and share) as the first column
    m = np.eye(4) * 0.9 + 0.025
    session_of(viewer).set_confusion(CoreConfusion("c1", NAMES, {"3": m}, np.array([0.5, 0.3, 0.2, 0.0])))
    conf = w.confusion.tables["3"]
    got = parse(copy_csv(conf))
    assert got[0] == ["", *NAMES]
    assert [r[0] for r in got[1:]] == ["benign 50%", "G3 30%", "G4 20%", "G5 0%"]
    assert [r[1:] for r in got[1:]] == w.confusion.values("3")
    # a folder that is not there: one notification, nothing raised
    assert save_table(conf, tmp_path / "missing" / "t.csv") is None


@pytest.fixture
def graded_dataset(tmp_path):
    g3, g4, g5, z = (np.full((4, 4), c, np.uint8) for c in (1, 2, 3, 0))
    mixed = g3.copy()
    mixed[0] = 2  # 25 % G4 on G3: 3+4, grade group 2
    cores = {"s0": {"a": z, "b": z}, "s1": {"a": g3, "b": mixed}, "s3": {"a": g3, "b": g4},
             "s5": {"a": z, "b": g5}, "sn": {"a": g4}}
    return write_generic(tmp_path / "gen", {n: {e: blocks(m, 4) for e, m in c.items()} for n, c in cores.items()},
                         shape=(16, 16))


def test_browser_grade_spread_sorts_by_number_and_copies(make_napari_viewer, graded_dataset, wait_idle):
    viewer = make_napari_viewer()
    w = BrowserWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.open(graded_dataset)
    wait_idle(w)
    c = COLUMNS.index("Grade spread")
    assert "highest minus the lowest ISUP grade group" in w.table.horizontalHeaderItem(c).toolTip()
    spread = {w.table.item(r, 0).text(): w.table.item(r, c).text() for r in range(w.table.rowCount())}
    assert spread == {"s0": "0", "s1": "1", "s3": "3", "s5": "5", "sn": "—"}
    assert "b: 2" in w.table.item(w._row_of("s1"), c).toolTip()
    w.sort_by("Grade spread")
    assert w.ordered_names() == ["sn", "s0", "s1", "s3", "s5"]  # no score lowest (a text sort puts "—" last)
    w.sort_by("Grade spread", descending=True)
    assert w.ordered_names()[:2] == ["s5", "s3"]
    got = parse(copy_csv(w.table))
    assert got[0] == list(COLUMNS)
    assert [r[0] for r in got[1:]] == ["s5", "s3", "s1", "s0", "sn"]  # in the order shown
    assert got == shown(w.table)
    assert table_cells(w.table)[2] is None  # Qt's row numbers are not copied


def test_a_core_without_raters_has_an_empty_grade_table(make_napari_viewer, wait_idle):
    viewer = make_napari_viewer()
    show_core(viewer, Core("bare", IMAGE, {}, GLEASON_SCHEME))
    w = ReviewWidget(viewer)
    viewer.window.add_dock_widget(w)
    wait_idle(w)
    assert w.grades.rows() == [] and w.grades.table.columnCount() == 0
    assert [name for name, _ in w.legend.entries] == list(NAMES)


def test_a_grade_arriving_after_the_panel_closed_is_dropped(review, qtbot):
    """A worker's late result (the dock closed mid-grading) must not touch the deleted table."""
    from qtpy.QtWidgets import QApplication

    from napari_gleason._qt import workers

    viewer, w = review
    panel, gen = w.grades, w.grades._generation
    viewer.window.remove_dock_widget(w)
    w.deleteLater()
    QApplication.processEvents()
    qtbot.waitUntil(lambda: not workers.alive(panel.table), timeout=5000)
    panel._on_result(gen, ("1", panel.grades.get("1")), {"1": None}, "c1")  # what the worker's slot would call
    panel._on_finished(gen)
