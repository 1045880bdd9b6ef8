"""The reader inside napari: cores, dataset folders, stores, and every bad input."""


import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import (
    A,
    B,
    blocks,
    textured_image,
    write_gleason,
    write_generic,
)
from PIL import Image

from napari_gleason._layers import find_layer, role_of
from napari_gleason._qt import BrowserWidget

PLUGIN = "napari-gleason"
CORE1, CORE2 = "slide001_core001", "slide001_core002"  # Gleason 2019 names: npe2 offers these to the plugin


def roles(viewer):
    return [role_of(lyr) for lyr in viewer.layers]


@pytest.fixture
def gleason_named(tmp_path):
    """The two-expert dataset (helpers_plugin) with Gleason 2019 core names: CORE1 (experts 1, 2 =
    A, B as 4×4 blocks) and CORE2 (experts 1, 3 = B)."""
    a, b = blocks(A, 4), blocks(B, 4)
    return write_gleason(tmp_path / "gleason data", {CORE1: {"1": a, "2": b}, CORE2: {"1": b, "3": b}}, shape=a.shape)


def test_core_image_opens_with_its_experts(make_napari_viewer, gleason_named):
    viewer = make_napari_viewer()
    viewer.open(gleason_named / "Train Imgs" / f"{CORE1}.png", plugin=PLUGIN)
    assert roles(viewer) == ["image", "expert:1", "expert:2"]
    assert viewer.layers[0].rgb
    np.testing.assert_array_equal(find_layer(viewer, "expert:2").data, np.array([1, 3, 4, 5])[blocks(B, 4)])


def _review(viewer):
    from napari_gleason._qt import ReviewWidget, dock

    return dock(viewer, ReviewWidget)


def test_opening_another_core_replaces_the_previous_cores_layers(make_napari_viewer, gleason_named, wait_idle,
                                                                 qtbot):
    """The reader only adds layers; the review widget drops the previous core's (the user's look of a
    role carries over). Without the widget docked napari keeps both cores, as for any reader."""
    viewer = make_napari_viewer()
    review = _review(viewer)
    viewer.open(gleason_named / "Train Imgs" / f"{CORE1}.png", plugin=PLUGIN)
    wait_idle(review)
    assert find_layer(viewer, "consensus:vote") is not None
    find_layer(viewer, "expert:1").opacity = 0.2
    viewer.open(gleason_named / "Train Imgs" / f"{CORE2}.png", plugin=PLUGIN)
    qtbot.waitUntil(lambda: len([r for r in roles(viewer) if r == "image"]) == 1, timeout=5000)
    wait_idle(review)
    assert [r for r in roles(viewer) if r.split(":")[0] in ("image", "expert")] == ["image", "expert:1", "expert:3"]
    assert viewer.layers[0].name == CORE2 and find_layer(viewer, "expert:1").opacity == 0.2
    assert find_layer(viewer, "consensus:vote").metadata["napari_gleason"]["core"] == CORE2  # recomputed


def test_gleason_folder_opens_the_browser_on_its_first_core(make_napari_viewer, two_expert_dataset, wait_idle):
    viewer = make_napari_viewer()
    review = _review(viewer)
    viewer.open(two_expert_dataset, plugin=PLUGIN)
    wait_idle(review)
    browser = viewer.window.dock_widgets["Dataset browser (napari-gleason)"]  # docked by the review widget
    assert isinstance(browser, BrowserWidget)
    wait_idle(browser)
    assert browser.ordered_names() == ["c1", "c2"] and browser.current == "c1"
    assert [r for r in roles(viewer) if r.split(":")[0] in ("image", "expert")] == ["image", "expert:1", "expert:2"]
    assert viewer.layers[0].name == "c1"
    assert find_layer(viewer, "consensus:vote") is not None
    browser._on_step(+1)  # the browser swaps the next core in place
    wait_idle(browser)
    wait_idle(review)
    assert viewer.layers[0].name == "c2" and roles(viewer).count("image") == 1


def test_generic_folder_without_the_review_widget(make_napari_viewer, tmp_path, wait_idle):
    """No widget docked: the first core's layers only; the browser docked later lists the folder."""
    from napari_gleason._qt import dock

    root = write_generic(tmp_path / "generic data", {"x": {"ann": A}, "y": {"ann": B, "bob": A}}, shape=A.shape)
    viewer = make_napari_viewer()
    viewer.open(root, plugin=PLUGIN)
    assert roles(viewer) == ["image", "expert:ann"]
    browser = dock(viewer, BrowserWidget)
    wait_idle(browser)
    assert browser.ordered_names() == ["x", "y"] and browser.current == "x"


def test_store_with_one_core_opens_everything_it_holds(make_napari_viewer, two_expert_dataset, tmp_path):
    from napari_gleason._core_sources import load_core_file
    from trainer.review_store import ReviewStore

    core = load_core_file(two_expert_dataset / "Train Imgs" / "c1.png")
    core.extras["consensus:vote"] = core.masks["2"]
    store = ReviewStore.create(tmp_path / "c1.zarr", core.scheme)
    store.write_core(core)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "c1.zarr", plugin=PLUGIN)
    assert roles(viewer) == ["image", "expert:1", "expert:2", "consensus:vote"]
    assert not viewer.layers[0].multiscale or viewer.layers[0].data[0].shape[:2] == core.shape


def test_store_with_several_cores_opens_in_the_browser(make_napari_viewer, two_expert_dataset, tmp_path, wait_idle):
    from napari_gleason._core_sources import FolderSource
    from napari_gleason._qt import ReviewWidget
    from trainer.review_store import ReviewStore

    source = FolderSource.open(two_expert_dataset)
    store = ReviewStore.create(tmp_path / "all.zarr", source.scheme)
    for name in source.names:
        store.write_core(source.load(name))
    viewer = make_napari_viewer()
    review = _review(viewer)
    assert isinstance(review, ReviewWidget)
    viewer.open(tmp_path / "all.zarr", plugin=PLUGIN)
    wait_idle(review)
    browser = viewer.window.dock_widgets["Dataset browser (napari-gleason)"]
    wait_idle(browser)
    assert browser.ordered_names() == ["c1", "c2"]
    assert browser.table.item(0, 2).text() == "0.125"  # 2 of 8 blocks, 1 of 2 experts differ
    assert roles(viewer)[0] == "image" and viewer.layers[0].name == "c1"


def test_large_jpeg_core_shows_its_draft_first_and_full_resolution_arrives(make_napari_viewer, tmp_path,
                                                                          monkeypatch, wait_idle):
    """Coarse first in a viewer: napari gets the draft pyramid; the roughness worker reads level 0
    (off the GUI thread), which is then the full decode. Thresholds lowered: 128×96 counts as large."""
    from tests.napari_gleason.helpers_plugin import jpeg_core

    from napari_gleason import _core_sources
    from napari_gleason._core_sources import Deferred
    from trainer.data.io import read_image

    monkeypatch.setattr(_core_sources, "COARSE_ABOVE", 32)
    monkeypatch.setattr(_core_sources, "SMALLEST_LEVEL", 16)
    path, _ = jpeg_core(tmp_path / "big", name=CORE1)
    viewer = make_napari_viewer()
    review = _review(viewer)
    viewer.open(path, plugin=PLUGIN)
    image = viewer.layers[0]
    assert image.multiscale and isinstance(image.data[0], Deferred) and image.data[-1].shape[:2] == (16, 12)
    wait_idle(review)
    assert image.data[0].done and find_layer(viewer, "roughness") is not None
    np.testing.assert_array_equal(np.asarray(image.data[0]), read_image(path))


# --- which paths napari offers the plugin (napari.yaml) -------------------------------------------
def _store_of(dataset, path):
    from napari_gleason._core_sources import FolderSource
    from trainer.review_store import ReviewStore

    source = FolderSource.open(dataset)
    store = ReviewStore.create(path, source.scheme)
    store.write_core(source.load(source.names[0]))
    return path


@pytest.fixture
def file_open(monkeypatch):
    """``file_open(viewer, path)`` opens ``path`` as File ▸ Open and drag-and-drop do (no plugin
    chosen: ``QtViewer._qt_open``) and returns the paths for which napari would have shown its
    reader-choice dialog (recorded instead of shown: a modal dialog would block the test)."""
    from napari._qt import qt_viewer

    asked = []
    monkeypatch.setattr(qt_viewer, "handle_gui_reading", lambda paths, *a, **k: asked.extend(paths))

    def open_(viewer, path):
        asked.clear()
        viewer.window._qt_viewer._qt_open([str(path)], stack=False)
        return list(asked)

    return open_


def test_ordinary_images_open_with_napari_builtin_reader_without_a_question(make_napari_viewer, gleason_named,
                                                                            tmp_path, file_open):
    """File ▸ Open of a photo, of an expert's mask and of a core image of another name: napari's
    builtin reader is the only reader offered, so no dialog, and napari's plain layer appears."""
    from napari.plugins import _npe2

    photo = tmp_path / "photo.png"
    Image.fromarray(textured_image((12, 10))).save(photo)
    renamed = gleason_named / "Train Imgs" / "c1.png"  # a core our reader would read, under a name npe2 does not offer
    (gleason_named / "Train Imgs" / f"{CORE1}.png").rename(renamed)
    mask = gleason_named / "Maps1_T" / f"{CORE2}_classimg_nonconvex.png"
    viewer = make_napari_viewer()
    for path in (photo, mask, renamed):
        assert list(_npe2.get_readers(str(path))) == ["napari"], path
        assert file_open(viewer, path) == [], path
        assert [role_of(lyr) for lyr in viewer.layers[-1:]] == [None], path  # napari's layer, not ours
    assert [lyr.name for lyr in viewer.layers] == ["photo", f"{CORE2}_classimg_nonconvex", "c1"]
    np.testing.assert_array_equal(viewer.layers["photo"].data, textured_image((12, 10)))


def test_cores_dataset_folders_and_stores_are_offered_to_the_plugin(make_napari_viewer, gleason_named, tmp_path,
                                                                    monkeypatch, file_open):
    """A Gleason-named core, a dataset folder and a review store: napari-gleason is among the readers
    and napari's builtin reader is too (it claims every .png and every folder), so File ▸ Open asks;
    with the choice made (``plugin=``, as the dialog's answer opens it) or remembered in napari's
    preference, ours opens it."""
    from napari.errors import MultipleReaderError
    from napari.plugins import _npe2
    from napari import settings as napari_settings
    from napari.settings import NapariSettings, get_settings

    core = gleason_named / "Train Imgs" / f"{CORE1}.png"
    store = _store_of(gleason_named, tmp_path / "review.zarr")
    viewer = make_napari_viewer()
    for path in (core, gleason_named, store):
        assert set(_npe2.get_readers(str(path))) == {"napari", PLUGIN}, path
        assert file_open(viewer, path) == [str(path)] and len(viewer.layers) == 0, path
        with pytest.raises(MultipleReaderError):
            viewer.open(path, plugin=None)
        viewer.open(path, plugin=PLUGIN)
        assert roles(viewer)[:3] == ["image", "expert:1", "expert:2"], path
        assert viewer.layers[0].name == CORE1
        viewer.layers.clear()

    remembered = NapariSettings(config_path=None)  # not the user's napari settings file
    remembered.plugins.extension2reader = {"*/Train Imgs/*": PLUGIN, "*.zarr/": PLUGIN}
    monkeypatch.setattr(napari_settings, "_SETTINGS", remembered)
    assert get_settings() is remembered
    for path in (core, store):
        assert file_open(viewer, path) == [], path  # the remembered choice: no question
        assert roles(viewer)[:3] == ["image", "expert:1", "expert:2"], path
        viewer.layers.clear()
