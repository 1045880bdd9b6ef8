"""The review widget's handlers: experts, consensus, disagreement table, roughness, in-place updates."""

import numpy as np
import pytest
from tests.napari_gleason.helpers_plugin import A, B, blocks, textured_image

from napari_gleason._layers import Core, LabelCoding, find_layer, layers_with_prefix, show_core
from napari_gleason._qt.consensus import fmt
from napari_gleason._session import session_of
from trainer.resample import resize_image
from trainer.data.classes import GLEASON_SCHEME
from trainer.losses import roughness_map_numpy

CODING = LabelCoding.from_scheme(GLEASON_SCHEME)
DICE_AB = [2 / 3, 4 / 5, 2 / 3, 4 / 5]  # hand computation: see tests/napari_gleason/test_plugin_analysis.py
KAPPA_AB = [3 / 5, 5 / 7, 3 / 5, 5 / 7]


def core_ab(k=4, extra=None, name="c1"):
    masks = {"1": blocks(A, k), "2": blocks(B, k), **(extra or {})}
    return Core(name, textured_image(masks["1"].shape), masks, GLEASON_SCHEME)


def test_toggle_solo_step_and_all(review):
    viewer, w = review(core_ab(extra={"3": blocks(A, 4)}))
    layer = {n: find_layer(viewer, f"expert:{n}") for n in "123"}
    w.experts._on_toggle("2", False)
    assert not layer["2"].visible and not w.experts._checks["2"].isChecked()
    layer["2"].visible = True  # from napari's layer list: the box follows
    assert w.experts._checks["2"].isChecked()
    w.experts.show_alone("3")
    assert w.experts.visible_experts() == ["3"]
    assert w.experts._on_step(+1) == "1" and w.experts.visible_experts() == ["1"]
    assert w.experts._on_step(-1) == "3" and w.experts.visible_experts() == ["3"]
    w.experts._on_show_all()
    assert w.experts.visible_experts() == ["1", "2", "3"]
    w.experts._checks["1"].setChecked(False)  # clicking the box is the same handler
    assert not layer["1"].visible


def test_consensus_disagreement_and_table_values(review):
    viewer, w = review(core_ab(), scale=(0.5, 2.0))
    image = find_layer(viewer, "image")
    vote = find_layer(viewer, "consensus:vote")
    np.testing.assert_array_equal(vote.data, CODING.to_labels(blocks(B, 4)))  # ties -> higher grade
    staple = find_layer(viewer, "consensus:staple")
    assert staple is not None and staple.data.shape == vote.data.shape
    dis = find_layer(viewer, "disagreement")
    np.testing.assert_allclose(dis.data, (blocks(A, 4) != blocks(B, 4)) * 0.5)
    for layer in (vote, staple, dis):  # derived layers stay registered to the image
        np.testing.assert_array_equal(layer.scale, image.scale)
        np.testing.assert_array_equal(layer.translate, image.translate)
    assert vote.colormap.color_dict[3][0] > 0.8  # labels keep the paper's colours (G3 red)

    pair = w.consensus.rows[0]
    assert (pair.a, pair.b) == ("1", "2")
    np.testing.assert_allclose(pair.dice, DICE_AB)
    np.testing.assert_allclose(pair.kappa, KAPPA_AB)
    assert pair.kappa_overall == pytest.approx(2 / 3)
    table = w.consensus.table
    headers = [table.horizontalHeaderItem(j).text() for j in range(table.columnCount())]
    assert headers == ["A", "B", "Dice benign", "Dice G3", "Dice G4", "Dice G5", "Dice mean",
                       "κ benign", "κ G3", "κ G4", "κ G5", "κ"]
    cells = [table.item(0, j).text() for j in range(table.columnCount())]
    assert cells == ["1", "2", *map(fmt, DICE_AB), fmt(11 / 15), *map(fmt, KAPPA_AB), fmt(2 / 3)]
    assert [table.item(r, 1).text() for r in range(table.rowCount())] == ["2", "vote", "vote"]


def test_consensus_choice_shows_vote_staple_or_both(review):
    viewer, w = review(core_ab())
    vote, staple = find_layer(viewer, "consensus:vote"), find_layer(viewer, "consensus:staple")
    w.consensus._on_consensus_choice("staple")
    assert (vote.visible, staple.visible) == (False, True)
    w.consensus._on_consensus_choice("both")
    assert (vote.visible, staple.visible) == (True, True)
    w.consensus._on_consensus_choice("none")
    assert (vote.visible, staple.visible) == (False, False)
    w.consensus._on_show_disagreement(False)
    assert not find_layer(viewer, "disagreement").visible
    assert not w.consensus._learned.isEnabled()
    session_of(viewer).set_learned_available(True)  # what the predict widget does with a weighting CNN
    assert w.consensus._learned.isEnabled()
    w.consensus._on_consensus_choice("both")
    assert session_of(viewer).shows("consensus:staple") and not session_of(viewer).shows("consensus:learned")


def test_roughness_follows_its_parameters(review, wait_idle):
    viewer, w = review(core_ab(k=8), scale=(2.0, 2.0))
    image = find_layer(viewer, "image").data
    panel = w.roughness
    panel.lambda_a.setValue(20.0)
    panel.lambda_b.setValue(0.5)
    panel.ksize.setValue(7)
    panel.sigma.setValue(1.5)
    panel._on_params_changed()
    wait_idle(w)
    layer = find_layer(viewer, "roughness")
    expected = roughness_map_numpy(resize_image(image, 1024), lambda_a=20.0, lambda_b=0.5, ksize=7, sigma=1.5)
    np.testing.assert_allclose(layer.data, expected, rtol=1e-6)
    h, w_ = image.shape[:2]
    np.testing.assert_allclose(layer.scale, [2.0 * h / 1024, 2.0 * w_ / 1024])  # model-input map over the core
    panel.resolution.setCurrentIndex(1)  # full resolution
    panel._on_params_changed()
    wait_idle(w)
    full = roughness_map_numpy(image, lambda_a=20.0, lambda_b=0.5, ksize=7, sigma=1.5)
    np.testing.assert_allclose(layer.data, full, rtol=1e-6)
    np.testing.assert_allclose(layer.scale, [2.0, 2.0])
    assert find_layer(viewer, "roughness") is layer  # updated in place


def test_another_core_updates_layers_in_place(review, wait_idle):
    viewer, w = review(core_ab(extra={"3": blocks(B, 4)}))
    n_layers = len(viewer.layers)
    image, expert1, vote = (find_layer(viewer, r) for r in ("image", "expert:1", "consensus:vote"))
    show_core(viewer, core_ab(name="c2"))  # expert 3 absent on this core
    wait_idle(w)
    assert find_layer(viewer, "image") is image and find_layer(viewer, "expert:1") is expert1
    assert find_layer(viewer, "expert:3") is None
    assert [lyr.name for lyr in layers_with_prefix(viewer, "expert")] == ["expert:1", "expert:2"]
    assert len(viewer.layers) == n_layers - 1
    assert image.name == "c2" and w.consensus.info.name == "c2"
    assert find_layer(viewer, "consensus:vote").data.shape == vote.data.shape
    assert len(w.consensus.rows) == 3  # 1 pair + 2 experts vs vote, for the new core


def test_derived_layers_arrive_without_taking_the_selection(review):
    """A pathologist on expert 2's layer stays on it while the workers add consensus, disagreement
    and roughness; a layer to paint on ("corrected") is made the active one, its brush controls shown."""
    from napari_gleason._layers import set_layer

    viewer, w = review(core_ab())
    derived = [lyr for lyr in viewer.layers if lyr.metadata["napari_gleason"]["role"].startswith(("consensus", "disagreement"))]
    assert derived, "the consensus panel added its layers"
    expert2 = find_layer(viewer, "expert:2")
    viewer.layers.selection.active = expert2
    info = {"core": "c1", "scheme": GLEASON_SCHEME, "like": find_layer(viewer, "image")}
    vote = find_layer(viewer, "consensus:vote")
    viewer.layers.remove(vote)  # arrives anew, as for the next core
    added = set_layer(viewer, "consensus:vote", np.asarray(vote.data), in_label_values=True, **info)
    assert added in viewer.layers and viewer.layers.selection.active is expert2
    assert viewer.layers.selection == {expert2}
    # the layer list and the controls panel heard of no selection change either
    assert viewer.window._qt_viewer.controls.currentWidget() is viewer.window._qt_viewer.controls.widgets[expert2]
    corrected = set_layer(viewer, "corrected", np.zeros(expert2.data.shape, np.uint8), **info)
    assert viewer.layers.selection.active is corrected
    assert viewer.window._qt_viewer.controls.currentWidget() is viewer.window._qt_viewer.controls.widgets[corrected]
