"""Export: Gleason values, file names, experts' files untouched, no overwrite without asking."""

import numpy as np
from tests.napari_gleason.helpers_plugin import GLEASON_VALUES, A, B, blocks, tree_digest
from PIL import Image

from napari_gleason._export import default_folder, export_mask, export_to_store
from napari_gleason._layers import Core
from trainer.review_store import ReviewStore
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX


def test_export_writes_gleason_values_beside_and_never_into_the_experts(two_expert_dataset):
    root = two_expert_dataset
    before = tree_digest(root)
    cmap = blocks(B, 4)
    cmap[0, 0] = IGNORE_INDEX  # unlabelled pixel -> Gleason 0 (background)
    folder = default_folder(root, "gleason2019")
    path = export_mask(cmap, "c1", GLEASON_SCHEME, folder, layout="gleason2019", dataset_root=root)
    assert path == root / "Maps_consensus" / "c1_classimg_nonconvex.png"
    written = np.asarray(Image.open(path))
    expected = GLEASON_VALUES[blocks(B, 4)]
    expected[0, 0] = 0
    np.testing.assert_array_equal(written, expected)
    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith("Maps_consensus")} == before  # byte-identical


def test_existing_export_is_replaced_only_when_the_answer_is_yes(two_expert_dataset):
    root = two_expert_dataset
    folder = root / "Maps_consensus"
    first = export_mask(blocks(A, 4), "c1", GLEASON_SCHEME, folder, dataset_root=root)
    content = first.read_bytes()
    asked = []
    assert export_mask(blocks(B, 4), "c1", GLEASON_SCHEME, folder, dataset_root=root,
                       ask_overwrite=lambda p: asked.append(p) or False) is None
    assert asked == [first] and first.read_bytes() == content
    assert export_mask(blocks(B, 4), "c1", GLEASON_SCHEME, folder, dataset_root=root, ask_overwrite=lambda p: True)
    np.testing.assert_array_equal(np.asarray(Image.open(first)), GLEASON_VALUES[blocks(B, 4)])
    assert sorted(p.name for p in folder.iterdir()) == ["c1_classimg_nonconvex.png"]  # no temp files left


def test_generic_layout_exports_outside_masks(tmp_path):
    assert default_folder(tmp_path, "generic") == tmp_path / "masks_consensus"
    path = export_mask(blocks(A, 2), "img 1", GLEASON_SCHEME, tmp_path / "masks_consensus", layout="generic")
    assert path.name == "img 1.png"


def test_export_to_store_asks_before_replacing(tmp_path):
    store = ReviewStore.create(tmp_path / "r.zarr", GLEASON_SCHEME)
    a, b = blocks(A, 4), blocks(B, 4)
    store.write_core(Core("c1", np.zeros(a.shape + (3,), np.uint8), {"1": a}, GLEASON_SCHEME))
    assert export_to_store(store, "c1", "consensus:vote", a) is not None
    assert export_to_store(store, "c1", "consensus:vote", b, ask_overwrite=lambda p: False) is None
    np.testing.assert_array_equal(store.load("c1").class_maps()["consensus:vote"], a)
    export_to_store(store, "c1", "consensus:vote", b, ask_overwrite=lambda p: True)
    np.testing.assert_array_equal(store.load("c1").class_maps()["consensus:vote"], b)


def test_geojson_and_map_exports_follow_the_same_rules(two_expert_dataset):
    import dataclasses

    import pytest
    import tifffile

    from napari_gleason._export import export_map
    from trainer.data.geojson import read_geojson_mask
    from trainer.errors import InputError

    root = two_expert_dataset
    before = tree_digest(root)
    folder = root / "Maps_consensus"
    cmap = blocks(B, 4)
    path = export_mask(cmap, "c1", GLEASON_SCHEME, folder, dataset_root=root, fmt="geojson")
    assert path == folder / "c1.geojson"
    names = dataclasses.replace(GLEASON_SCHEME, annotation_names={"benign": 1, "G3": 3, "G4": 4, "G5": 5})
    np.testing.assert_array_equal(read_geojson_mask(path, cmap.shape, names), cmap)

    error = np.linspace(0, 1, cmap.size, dtype=np.float32).reshape(cmap.shape)
    written = export_map(error, "c1", "error:2", folder, pixel_size_um=(0.5, 0.5), dataset_root=root)
    assert written == folder / "c1_error_2.ome.tif"
    np.testing.assert_array_equal(tifffile.imread(written), error)
    # asked before replacing; declined: unchanged
    content = written.read_bytes()
    assert export_map(error * 0, "c1", "error:2", folder, dataset_root=root, ask_overwrite=lambda p: False) is None
    assert written.read_bytes() == content
    for fmt_call in (lambda: export_map(error, "c1", "error:2", root / "Maps2_T", dataset_root=root),
                     lambda: export_mask(cmap, "c1", GLEASON_SCHEME, root / "Maps1_T", fmt="geojson")):
        with pytest.raises(InputError, match="expert's folder"):
            fmt_call()
    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith("Maps_consensus")} == before
