"""Layer roles, the label coding and the paper's class colours (no viewer needed)."""

import numpy as np
import pytest

from napari_gleason._layers import ROLE_STYLES, Core, LabelCoding, core_layer_tuples, layer_tuple, role_style
from trainer.data.classes import GLEASON_SCHEME, IGNORE_INDEX, ClassScheme

ALL_ROLES = ["image", "expert:1", "consensus:vote", "consensus:staple", "consensus:learned", "corrected",
             "truth", "disagreement", "roughness", "prediction", "probability:G4", "weight:3"]


def test_gleason_labels_show_gleason_values_and_zero_is_no_label():
    coding = LabelCoding.from_scheme(GLEASON_SCHEME)
    assert coding.values == (1, 3, 4, 5)
    classes = np.array([[0, 1, 2, 3, IGNORE_INDEX]], np.uint8)
    labels = coding.to_labels(classes)
    np.testing.assert_array_equal(labels, [[1, 3, 4, 5, 0]])
    np.testing.assert_array_equal(coding.to_classes(labels), classes)
    assert coding.unknown_values(np.array([0, 1, 7, 3])) == [7]
    np.testing.assert_array_equal(coding.to_classes(np.array([7, 2, 300], np.int32)), [IGNORE_INDEX] * 3)


def test_generic_scheme_with_class_zero_exports_shows_index_plus_one():
    scheme = ClassScheme(("bg", "tumour", "stroma"), {0: 0, 1: 1, 2: 2}, (255,), (0, 1, 2))
    coding = LabelCoding.from_scheme(scheme)
    assert coding.values == (1, 2, 3)
    np.testing.assert_array_equal(coding.to_labels(np.array([0, 2, 255], np.uint8)), [1, 3, 0])


def _dominant(rgba):
    return int(np.argmax(rgba[:3]))


def test_paper_colours_g3_red_g4_green_g5_blue_benign_grey_background_clear():
    cmap = LabelCoding.from_scheme(GLEASON_SCHEME).colormap()
    assert _dominant(cmap[3]) == 0 and cmap[3][3] == 1.0  # Gleason 3 red
    assert _dominant(cmap[4]) == 1 and cmap[4][3] == 1.0  # Gleason 4 green
    assert _dominant(cmap[5]) == 2 and cmap[5][3] == 1.0  # Gleason 5 blue
    r, g, b, a = cmap[1]  # benign: neutral grey, see-through
    assert max(r, g, b) - min(r, g, b) < 0.05 and 0 < a < 1
    assert cmap[0][3] == 0 and cmap[None][3] == 0  # no label / unknown values: transparent


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_has_a_layer_type_metadata_and_geometry(role):
    data = np.zeros((8, 8, 3), np.uint8) if role == "image" else np.zeros((8, 8), np.uint8)
    out, kw, kind = layer_tuple(role, data, core="c", scheme=GLEASON_SCHEME, scale=(2.0, 2.0), translate=(1.0, 0.0))
    assert kind == ROLE_STYLES[role.split(":")[0]]["type"]
    assert kw["metadata"]["napari_gleason"]["role"] == role
    assert kw["metadata"]["napari_gleason"]["core"] == "c"
    assert kw["scale"] == (2.0, 2.0) and kw["translate"] == (1.0, 0.0)
    if kind == "labels":
        assert out.dtype == np.uint8 and kw["colormap"][3] is not None


def test_unknown_role_lists_the_valid_prefixes():
    with pytest.raises(KeyError, match="expert"):
        role_style("nonsense:1")


def test_core_layer_tuples_one_labels_layer_per_expert_plus_extras():
    masks = {"2": np.zeros((4, 4), np.uint8), "5": np.ones((4, 4), np.uint8)}
    core = Core("c", np.zeros((4, 4, 3), np.uint8), masks, GLEASON_SCHEME, extras={"truth": masks["5"]})
    tuples = core_layer_tuples(core)
    assert [kw["name"] for _, kw, _ in tuples] == ["c", "expert:2", "expert:5", "truth"]
    assert [t for *_, t in tuples] == ["image", "labels", "labels", "labels"]
    np.testing.assert_array_equal(tuples[2][0], 3)  # class 1 (G3) shows as Gleason 3
    assert tuples[0][1]["rgb"] is True
