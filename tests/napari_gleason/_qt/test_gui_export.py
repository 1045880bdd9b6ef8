"""Export from the widget: editable copy, mask file, store; experts' files stay byte-identical."""

import numpy as np
from tests.napari_gleason.helpers_plugin import GLEASON_VALUES, B, blocks, open_core, tree_digest
from PIL import Image

from napari_gleason._layers import find_layer, role_of
from napari_gleason._qt import ReviewWidget
from trainer.review_store import ReviewStore

PLUGIN = "napari-gleason"


def test_export_consensus_and_corrected_labels(make_napari_viewer, two_expert_dataset, wait_idle, tmp_path):
    root = two_expert_dataset
    before = tree_digest(root)
    viewer = make_napari_viewer()
    open_core(viewer, root / "Train Imgs" / "c1.png")
    w = ReviewWidget(viewer)
    viewer.window.add_dock_widget(w)
    wait_idle(w)
    assert w.export.folder.text() == str(root / "Maps_consensus")

    # an editable copy of the vote, then a correction painted by the pathologist
    w.export._on_make_editable("consensus:vote")
    corrected = find_layer(viewer, "corrected")
    np.testing.assert_array_equal(corrected.data, find_layer(viewer, "consensus:vote").data)
    corrected.data[0, 0] = 5  # G5
    answers = []
    w.export.ask_overwrite = lambda path: answers.pop(0)

    path = w.export._on_export_file("corrected")
    expected = GLEASON_VALUES[blocks(B, 4)]
    expected[0, 0] = 5
    np.testing.assert_array_equal(np.asarray(Image.open(path)), expected)
    assert path == root / "Maps_consensus" / "c1_classimg_nonconvex.png"

    answers.append(False)  # asked, declined: nothing changes
    content = path.read_bytes()
    assert w.export._on_export_file("consensus:vote") is None and path.read_bytes() == content
    answers.append(True)  # asked, accepted: replaced
    w.export._on_export_file("consensus:vote")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), GLEASON_VALUES[blocks(B, 4)])
    assert answers == []

    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith("Maps_consensus")} == before

    # cache the core with its consensus and correction, and reopen it from the store
    store = tmp_path / "review.zarr"
    w.export._on_cache_core(str(store))
    wait_idle(w)
    assert ReviewStore.open(store).names == ["c1"]
    viewer.layers.clear()
    viewer.open(store, plugin=PLUGIN)
    wait_idle(w)  # the widget recomputes for the reopened core
    reopened = {role_of(lyr): lyr for lyr in viewer.layers}
    assert {"image", "expert:1", "expert:2", "corrected", "consensus:vote"} <= set(reopened)
    assert reopened["corrected"].data[0, 0] == 5
    assert tree_digest(root) == after
