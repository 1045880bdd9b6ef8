"""A damaged review store in the viewer: the browser marks the core that did not load and keeps the
last one on screen and highlighted; an older store without checksums opens with one note."""

import numpy as np
import pytest
from tests.broken_inputs import damage_chunk
from tests.napari_gleason.helpers_plugin import errors_of, make_two_expert_dataset

from napari_gleason._core_sources import FolderSource
from napari_gleason._layers import find_layer, level0
from napari_gleason._qt import BrowserWidget
from napari_gleason._qt.browser import COLUMNS
from trainer.review_store import ReviewStore
from trainer.review_store import store as _store
from trainer.review_store.integrity import UNCHECKED_NOTE

pytestmark = pytest.mark.gui


def make_store(path, dataset):
    source = FolderSource.open(dataset)
    store = ReviewStore.create(path, source.scheme)
    for name in source.names:
        store.write_core(source.load(name))
    return store


@pytest.fixture
def dataset(tmp_path):
    return make_two_expert_dataset(tmp_path / "gleason data")


def selected(w) -> list[str]:
    return [w.table.item(i.row(), 0).text() for i in w.table.selectedIndexes() if i.column() == 0]


def layers(viewer) -> list[tuple]:
    return [(lyr.name, np.asarray(level0(lyr)).tobytes()) for lyr in viewer.layers]


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_the_browser_marks_a_damaged_core_and_keeps_the_last_one(make_napari_viewer, dataset, tmp_path, wait_idle,
                                                                  notes, how):
    store = make_store(tmp_path / "review.zarr", dataset)
    damage_chunk("c2/0", how)(store.path)  # c2's image
    viewer = make_napari_viewer()
    w = BrowserWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.open(store.path)
    wait_idle(w)
    assert find_layer(viewer, "image").name == "c1" and selected(w) == ["c1"]
    before = layers(viewer)

    w._on_row_activated(w._row_of("c2"))  # a click on c2's row
    wait_idle(w)
    errors = errors_of(notes)
    assert len(errors) == 1 and "core 'c2'" in errors[0] and "(array 0)" in errors[0], errors
    assert layers(viewer) == before  # nothing of c2 on screen, nothing of c1 gone
    assert w.current == "c1" and selected(w) == ["c1"]  # the highlighted row is the core on screen
    problems = w.table.item(w._row_of("c2"), COLUMNS.index("Problems"))
    assert problems.text() == "⚠ damaged" and "(array 0)" in problems.toolTip()

    w._on_row_activated(w._row_of("c2"))  # selectable again: the reason again, nothing read
    assert not w.busy
    assert len(errors_of(notes)) == 2 and errors_of(notes)[1].endswith(errors[0].split(": ", 1)[1])
    assert layers(viewer) == before and selected(w) == ["c1"]

    assert w._on_step(+1) == "c2"  # next from c1
    assert w._on_step(-1) == "c1"  # and back: c1 loads
    wait_idle(w)
    assert find_layer(viewer, "image").name == "c1" and selected(w) == ["c1"]


def test_an_old_store_opens_with_one_note(make_napari_viewer, dataset, tmp_path, monkeypatch, notes):
    from napari.utils.notifications import NotificationSeverity

    with monkeypatch.context() as m:  # arrays as older versions wrote them: no checksum
        m.setattr(_store, "array_options", lambda: {})
        store = make_store(tmp_path / "old.zarr", dataset)
    viewer = make_napari_viewer()
    viewer.open(str(store.path), plugin="napari-gleason")
    assert find_layer(viewer, "image").name == "c1"
    assert errors_of(notes) == []
    said = [n.message for n in notes if n.severity == NotificationSeverity.INFO and UNCHECKED_NOTE in n.message]
    assert len(said) == 1 and said[0].startswith(str(store.path))
    viewer.layers.clear()
    viewer.open(str(store.path), plugin="napari-gleason")  # the same store again: no second note
    assert len([n for n in notes if UNCHECKED_NOTE in n.message]) == 1
    assert find_layer(viewer, "image").name == "c1"


def test_a_store_whose_first_core_is_damaged_opens_its_next(make_napari_viewer, dataset, tmp_path, notes):
    store = make_store(tmp_path / "review.zarr", dataset)
    damage_chunk("c1/labels/expert_2/0", "deleted")(store.path)
    viewer = make_napari_viewer()
    viewer.open(str(store.path), plugin="napari-gleason")
    errors = errors_of(notes)
    assert len(errors) == 1 and "core 'c1'" in errors[0] and "labels/expert_2/0" in errors[0], errors
    assert "c2 is open instead" in errors[0]
    assert find_layer(viewer, "image").name == "c2"
