"""The dataset browser: scores in a worker, ordering, previous/next, loading in place."""

import os
import time

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import GLEASON_VALUES, blocks, errors_of, write_generic
from PIL import Image

from napari_gleason._core_sources import open_source
from napari_gleason._layers import find_layer, role_of
from napari_gleason._qt import BrowserWidget
from napari_gleason._qt.browser import COLUMNS

Z = np.zeros((4, 4), np.uint8)


def with_disagreement(n_pixels: int) -> np.ndarray:
    """A 4×4 pattern that differs from Z on ``n_pixels`` pixels (values G4)."""
    m = Z.copy()
    m.flat[:n_pixels] = 2
    return m


@pytest.fixture
def dataset(tmp_path):
    # with two experts a differing pixel has disagreement 1/2; scores are on the 4-px grid, exact here
    cores = {
        "a_some": {"alice": blocks(Z, 4), "bob": blocks(with_disagreement(4), 4)},    # 4/16 · 1/2 = 0.125
        "b_much": {"alice": blocks(Z, 4), "bob": blocks(with_disagreement(12), 4)},   # 12/16 · 1/2 = 0.375
        "c_agree": {"alice": blocks(Z, 4), "bob": blocks(Z, 4)},                      # 0
        "d_single": {"alice": blocks(Z, 4)},                                          # no score (NaN)
    }
    return write_generic(tmp_path / "gen", cores, shape=(16, 16))


@pytest.fixture
def browser(make_napari_viewer, dataset, wait_idle):
    viewer = make_napari_viewer()
    widget = BrowserWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.open(dataset)
    wait_idle(widget)
    return viewer, widget


def scores(widget):
    return {widget.table.item(r, 0).text(): widget.table.item(r, 2).text() for r in range(widget.table.rowCount())}


def column(widget, name: str) -> dict[str, str]:
    c = COLUMNS.index(name)
    return {widget.table.item(r, 0).text(): widget.table.item(r, c).text() for r in range(widget.table.rowCount())}


def age(root, seconds: float = 60) -> None:
    """Files older than the score cache's 2-second racy window, as a real dataset's are."""
    old = time.time() - seconds
    for p in root.rglob("*.png"):
        os.utime(p, (old, old))


def test_scores_and_orderings(browser):
    _, w = browser
    assert w.progress.value() == w.progress.maximum() == 4
    assert scores(w) == {"a_some": "0.125", "b_much": "0.375", "c_agree": "0.000", "d_single": "—"}
    assert w.ordered_names() == ["a_some", "b_much", "c_agree", "d_single"]
    w.sort_by("Disagreement", descending=True)
    assert w.ordered_names() == ["b_much", "a_some", "c_agree", "d_single"]  # most disputed first, NaN last
    w.sort_by("Disagreement")
    assert w.ordered_names() == ["d_single", "c_agree", "a_some", "b_much"]
    w.sort_by("Experts", descending=True)
    assert w.ordered_names()[-1] == "d_single"
    w.sort_by("Core", descending=True)
    assert w.ordered_names() == ["d_single", "c_agree", "b_much", "a_some"]
    row = w.table.item(0, 1).text()
    assert row == "1: alice"
    # agreement: κ against an expert who marked everything benign is chance (0); identical maps: 1
    assert column(w, "Agreement κ") == {"a_some": "0.000", "b_much": "0.000", "c_agree": "1.000", "d_single": "—"}
    assert column(w, "Problems") == {"a_some": "", "b_much": "", "c_agree": "", "d_single": ""}


def test_previous_next_follow_the_sort_order_and_load_in_place(browser, wait_idle):
    viewer, w = browser
    assert find_layer(viewer, "image").name == "a_some"  # first core shown on open
    n_layers = len(viewer.layers)
    w.sort_by("Disagreement", descending=True)
    w.current = "b_much"
    assert w._on_step(+1) == "a_some"
    wait_idle(w)
    assert find_layer(viewer, "image").name == "a_some"
    assert w._on_step(+1) == "c_agree"
    wait_idle(w)
    assert w._on_step(+1) == "d_single"
    wait_idle(w)
    assert w._on_step(+1) == "d_single"  # stays at the end
    assert [role_of(lyr) for lyr in viewer.layers] == ["image", "expert:alice"]
    assert len(viewer.layers) <= n_layers
    w._on_row_activated(0)  # click on the top row
    wait_idle(w)
    assert find_layer(viewer, "image").name == "b_much"
    assert [role_of(lyr) for lyr in viewer.layers] == ["image", "expert:alice", "expert:bob"]


def test_a_broken_core_scores_as_error_and_the_others_still_score(make_napari_viewer, dataset, wait_idle):
    """(Loading it: a notification, the last good core stays — the bad-input catalogue.)"""
    Image.fromarray(np.full((3, 3), 9, np.uint8)).save(dataset / "masks" / "bob" / "b_much.png")
    viewer = make_napari_viewer()
    w = BrowserWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open(dataset)
    wait_idle(w)
    assert scores(w) == {"a_some": "0.125", "b_much": "error", "c_agree": "0.000", "d_single": "—"}
    assert "b_much.png" in w.table.item(w._row_of("b_much"), 2).toolTip()


def test_format_faithful_gleason_fake_in_the_browser(make_napari_viewer, tmp_path, wait_idle):
    fakes = pytest.importorskip("tests.fakes")
    fake = fakes.make_fake_gleason(tmp_path / "Gleason 2019")
    viewer = make_napari_viewer()
    w = BrowserWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open(fake.root)
    wait_idle(w)
    annotated = sorted(c for c, e in fake.cores.items() if e)  # the core nobody annotated is skipped
    assert w.ordered_names() == annotated
    assert w.progress.value() == len(annotated)
    w.load("slide_é_ü_core005")
    wait_idle(w)
    assert find_layer(viewer, "image").name == "slide_é_ü_core005"
    assert [role_of(lyr) for lyr in viewer.layers] == ["image", "expert:1", "expert:3", "expert:4"]
    single = w.table.item(w._row_of("slide004_core002"), 2).text()
    assert single == "—"  # one expert: nothing to disagree about


def test_a_reopened_dataset_lists_its_scores_at_once_and_rescores_only_a_changed_core(
        make_napari_viewer, dataset, wait_idle):
    age(dataset)
    viewer = make_napari_viewer()
    first = BrowserWidget(viewer)
    viewer.window.add_dock_widget(first)
    first.open(dataset)
    wait_idle(first)
    assert scores(first)["b_much"] == "0.375"

    second = BrowserWidget(make_napari_viewer())
    assert second.set_source(open_source(dataset), load_first=False) is None
    assert second._score_worker is None  # no worker: every score came from the cache
    assert scores(second) == {"a_some": "0.125", "b_much": "0.375", "c_agree": "0.000", "d_single": "—"}
    assert second.progress.value() == second.progress.maximum() == 4

    # bob's map of a_some changes (now agrees with alice): that core alone is scored again
    path = dataset / "masks" / "bob" / "a_some.png"
    Image.fromarray(GLEASON_VALUES[blocks(Z, 4)]).save(path)
    old = time.time() - 30
    os.utime(path, (old, old))
    third = BrowserWidget(make_napari_viewer())
    third.set_source(open_source(dataset), load_first=False)
    assert scores(third) == {"a_some": "…", "b_much": "0.375", "c_agree": "0.000", "d_single": "—"}
    assert third.progress.value() == 3
    wait_idle(third)
    assert scores(third)["a_some"] == "0.000"
    assert third.progress.value() == 4


def test_a_core_with_problems_is_marked_and_opening_it_notifies(make_napari_viewer, dataset, wait_idle, notes):
    Image.fromarray(np.full((16, 16), 9, np.uint8)).save(dataset / "masks" / "alice" / "c_agree.png")
    Image.fromarray(np.full((8, 8), 3, np.uint8)).save(dataset / "masks" / "bob" / "c_agree.png")
    viewer = make_napari_viewer()
    w = BrowserWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open(dataset)
    wait_idle(w)
    assert column(w, "Problems") == {"a_some": "", "b_much": "", "c_agree": "⚠ 2", "d_single": ""}
    tip = w.table.item(w._row_of("c_agree"), COLUMNS.index("Problems")).toolTip()
    assert "alice" not in tip and "c_agree.png: mask has values [9]" in tip and "differs from its image's" in tip
    assert "c_agree.png" in w.table.item(w._row_of("c_agree"), 0).toolTip()
    w.sort_by("Problems", descending=True)
    assert w.ordered_names()[0] == "c_agree"  # cores with problems sort together
    assert find_layer(viewer, "image").name == "a_some"
    w.load("c_agree")
    wait_idle(w)
    assert any("c_agree.png" in m for m in errors_of(notes))  # a notification naming the file
    assert find_layer(viewer, "image").name == "a_some"  # the last good core stays on screen
    w._on_step(+1)  # and the browser still works
    wait_idle(w)
    assert find_layer(viewer, "image").name in {"a_some", "b_much", "d_single"}
