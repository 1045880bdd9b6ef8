"""The plugin's docks at 1600×1000: every button of the review, browser and train docks reachable
(in view, or scrolled into view, never cut off), the train dock's Start/Stop row in view, the
browser several rows tall and scrolled to the core on screen."""

import pytest
from tests.napari_gleason.helpers_plugin import A, B, blocks, write_generic
from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import QApplication, QPushButton, QScrollArea

from napari_gleason._qt import BrowserWidget, ReviewWidget, TrainWidget, dock
from napari_gleason._qt.docking import dock_of

CORES = [f"core{k:02d}" for k in range(30)]


def settle(qtbot, ms: int = 50) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


def in_view(widget, dock) -> bool:
    """``widget`` is drawn whole: nothing of it clipped by a scroll area or the dock's edge."""
    shown = widget.visibleRegion().boundingRect()
    box = QRect(widget.mapTo(dock, QPoint(0, 0)), widget.size())
    return shown == widget.rect() and dock.rect().contains(box)


def reachable(button, dock, qtbot) -> bool:
    """In view, or in view once its scroll area scrolled to it (as a user would)."""
    if in_view(button, dock):
        return True
    parent = button.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is None:
        return False
    parent.ensureWidgetVisible(button, 0, 0)
    settle(qtbot)
    return in_view(button, dock)


@pytest.fixture
def docked(make_napari_viewer, tmp_path, qtbot, wait_idle):
    root = write_generic(tmp_path / "data", {name: {"ann": blocks(A, 4), "bob": blocks(B, 4)} for name in CORES},
                         shape=blocks(A, 4).shape)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    review = dock(viewer, ReviewWidget)
    browser = dock(viewer, BrowserWidget)
    assert browser.open(root)
    wait_idle(browser)
    train = dock(viewer, TrainWidget)
    settle(qtbot, 200)
    wait_idle(review)
    return viewer, {"review": review, "browser": browser, "train": train}


def test_every_button_of_every_dock_is_reachable_at_1600_by_1000(docked, qtbot):
    viewer, widgets = docked
    assert viewer.window._qt_window.size().width() == 1600
    train_dock = dock_of(widgets["train"])
    assert in_view(widgets["train"]._start, train_dock) and in_view(widgets["train"]._stop, train_dock)
    for name, widget in widgets.items():
        d = dock_of(widget)
        d.raise_()  # a dock that shares a tab is one click away
        settle(qtbot)
        buttons = [b for b in widget.findChildren(QPushButton) if b.isVisibleTo(widget)]
        assert buttons
        unreachable = [b.text() for b in buttons if not reachable(b, d, qtbot)]
        assert unreachable == [], (name, unreachable)


def test_browser_shows_several_rows_and_scrolls_to_the_core_on_screen(docked, qtbot, wait_idle):
    viewer, widgets = docked
    browser = widgets["browser"]
    table = browser.table
    dock_of(browser).raise_()
    settle(qtbot)
    assert table.viewport().height() >= 4 * table.rowHeight(0)
    last = CORES[-1]
    browser.load(last)
    wait_idle(browser)
    qtbot.waitUntil(lambda: browser.current == last, timeout=10_000)
    settle(qtbot)
    row = browser._row_of(last)
    assert row > 10
    assert table.viewport().rect().contains(table.visualItemRect(table.item(row, 0)))
    assert viewer.layers[0].name == last


def test_a_browser_docked_on_a_core_far_down_shows_it(make_napari_viewer, tmp_path, qtbot, wait_idle):
    """As the review widget docks it for a core opened from a dataset: docked, then at once told the core."""
    root = write_generic(tmp_path / "data", {name: {"ann": blocks(A, 4)} for name in CORES}, shape=blocks(A, 4).shape)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    dock(viewer, ReviewWidget)
    dock(viewer, TrainWidget)
    last = CORES[-1]
    browser = dock(viewer, BrowserWidget)
    browser.browse(root, current=last)
    wait_idle(browser)
    settle(qtbot, 200)
    table = browser.table
    row = browser._row_of(last)
    assert browser.current == last and row == len(CORES) - 1
    assert table.viewport().height() >= 4 * table.rowHeight(0)
    assert table.viewport().rect().contains(table.visualItemRect(table.item(row, 0)))
