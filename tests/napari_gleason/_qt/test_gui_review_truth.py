"""The review widget says what is so: solo shows one expert alone, experts in one natural order
in every panel, κ of a class nobody used is "—" as Dice is."""

import numpy as np
from tests.napari_gleason.helpers_plugin import A, B, blocks, textured_image

from napari_gleason._layers import Core, expert_name, find_layer, layers_with_prefix
from trainer.data.classes import GLEASON_SCHEME

NAMES = ["NP3", "expert", "NP1", "NP10", "NP2"]
NATURAL = ["expert", "NP1", "NP2", "NP3", "NP10"]


def test_solo_hides_every_other_labels_layer_and_leaving_it_restores_them(review):
    masks = {"1": blocks(A, 4), "2": blocks(B, 4), "3": blocks(A, 4)}
    extras = {"corrected": blocks(B, 4), "prediction": blocks(A, 4)}
    viewer, w = review(Core("c1", textured_image(masks["1"].shape), masks, GLEASON_SCHEME, extras=extras))
    vote = find_layer(viewer, "consensus:vote")
    assert vote is not None and vote.visible  # the review widget's vote, shown by default
    before = {lyr.name: lyr.visible for lyr in viewer.layers}
    others = [find_layer(viewer, r) for r in ("consensus:vote", "corrected", "prediction")]
    assert all(lyr.visible for lyr in others)
    w.experts._on_solo_clicked("2")
    labels_shown = [lyr.name for lyr in viewer.layers if lyr._type_string == "labels" and lyr.visible]
    assert labels_shown == [find_layer(viewer, "expert:2").name]
    assert w.experts._on_step(+1) == "3"  # stepping stays solo
    assert [lyr.visible for lyr in others] == [False, False, False]
    w.experts._on_solo_clicked("3")  # solo again on the expert alone: leave solo
    assert {lyr.name: lyr.visible for lyr in viewer.layers} == before
    w.experts.show_alone("1")
    w.experts._on_show_all()  # "all" leaves solo too: every expert, the rest as before
    assert {lyr.name: lyr.visible for lyr in viewer.layers} == before


def test_one_natural_expert_order_in_panel_layers_and_tables(review):
    masks = {n: blocks(A if k % 2 else B, 4) for k, n in enumerate(NAMES)}
    viewer, w = review(Core("c1", textured_image(masks["NP1"].shape), masks, GLEASON_SCHEME))
    assert [expert_name(lyr) for lyr in layers_with_prefix(viewer, "expert")] == NATURAL
    assert list(w.experts._checks) == NATURAL
    assert [w.experts._rows.itemAtPosition(r, 0).widget().text() for r in range(5)] == [f"expert {n}" for n in
                                                                                        NATURAL]
    rows = w.consensus.rows  # pairs first, then each expert against the vote
    pairs = [(r.a, r.b) for r in rows if r.b != "vote"]
    assert pairs == [(a, b) for i, a in enumerate(NATURAL) for b in NATURAL[i + 1:]]
    assert [r.a for r in rows if r.b == "vote"] == NATURAL
    assert [r[0] for r in w.grades.rows()][:5] == [f"expert {n}" for n in NATURAL]


def test_kappa_of_a_class_neither_expert_used_is_a_dash(review):
    a = blocks(np.array([[0, 1], [1, 0]], np.uint8), 4)  # benign and G3 only: nobody used G4 or G5
    b = blocks(np.array([[0, 1], [1, 1]], np.uint8), 4)
    viewer, w = review(Core("c1", textured_image(a.shape), {"1": a, "2": b}, GLEASON_SCHEME))
    table = w.consensus.table
    row = [table.item(0, j).text() for j in range(table.columnCount())]  # expert 1 vs expert 2
    assert row[:2] == ["1", "2"]
    classes = GLEASON_SCHEME.names
    dice, kappa = row[2:2 + len(classes)], row[3 + len(classes):3 + 2 * len(classes)]
    assert dice[2:] == ["—", "—"] and kappa[2:] == ["—", "—"]
    assert kappa[0] != "—" and kappa[1] != "—"


def test_confusion_panel_of_a_model_that_never_trained_says_not_learned(review):
    from napari_gleason._session import session_of
    from trainer.prediction.confusion import CoreConfusion

    masks = {"1": blocks(A, 4), "2": blocks(B, 4)}
    viewer, w = review(Core("c1", textured_image(masks["1"].shape), masks, GLEASON_SCHEME))
    start = np.full((4, 4), 0.1 / 3) + np.eye(4) * (0.9 - 0.1 / 3)  # the heads' starting point
    why = "the confusion model never trained: the run gives its term no weight (λ2 = 0) for its first 6 of 60"
    conf = CoreConfusion("c1", GLEASON_SCHEME.names, {"2": start, "1": start}, np.array([0.4, 0.3, 0.3, 0.0]), why)
    session_of(viewer).set_confusion(conf)
    panel = w.confusion
    assert list(panel.tables) == ["1", "2"]
    assert panel.lines["1"] == "expert 1: not learned — the confusion model never trained"
    assert "Not learned" in panel.summary.text() and "λ2 = 0" in panel.summary.text()
    assert not any("no confusion" in line for line in panel.lines.values())
