"""The noisy panel (trainer.synthetic.panel): its biases are what its flags say, its experts disagree
as much as Gleason 2019's pathologists, two-expert cores have ties, and the default generator is
untouched by the panel's extra patterns."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from trainer.errors import InputError
from trainer.synthetic import make_core
from trainer.synthetic.panel import (
    PAIRS,
    PANEL_BIASES,
    PANEL_EXPERTS,
    PANEL_NAMES,
    PanelStats,
    bias_area,
    count_confusion,
    make_panel_core,
    panel_assignment,
    panel_core_rng,
    panel_error_kinds,
    row_normalise,
    simulate_panel,
    tie_mask,
    write_panel_dataset,
)
from trainer.synthetic.tissue import FLAG_FOAMY_G3, FLAG_POORLY_FORMED_G4, FLAG_TEXTURED_G3, PANEL_FLAGS

from tests.paths import SAMPLES

BENIGN, G3, G4, G5 = 0, 1, 2, 3
SIZE = 128


@pytest.fixture(scope="module")
def panel():
    """24 panel cores with all three experts each (about 2 s)."""
    out = []
    for i in range(24):
        rng = panel_core_rng(7, i)
        core = make_panel_core(rng, SIZE)
        out.append((core, simulate_panel(core, rng)))
    return out


def _pool(panel, fn):
    return np.concatenate([fn(c, labels)[c.core_mask] for c, labels in panel])


def test_default_cores_are_untouched_by_the_panel_patterns():
    """Core 0 of sample_data/ (seed 2019, 512²) drawn again: same truth, flags and JPEG bytes."""
    from trainer.synthetic.writer import core_rng

    core = make_core(core_rng(2019, 0), 512)
    name = "slide001_core001"
    truth = np.asarray(Image.open(SAMPLES / "truth" / f"{name}_classimg_nonconvex.png"))
    assert ((truth > 0) == core.core_mask).all()
    flags = np.asarray(Image.open(SAMPLES / "appearance" / f"{name}_flags.png"))
    np.testing.assert_array_equal(flags, core.flags)
    assert not (core.flags & sum(PANEL_FLAGS)).any()
    buf = io.BytesIO()
    Image.fromarray(core.image).save(buf, format="JPEG", quality=90)
    assert buf.getvalue() == (SAMPLES / "Train Imgs" / f"{name}.jpg").read_bytes()


def test_patterns_cover_whole_regions_of_their_class(panel):
    from scipy import ndimage as ndi

    seen = {f: 0 for f in PANEL_FLAGS}
    for core, _ in panel:
        for flag, cls in ((FLAG_TEXTURED_G3, G3), (FLAG_FOAMY_G3, G3), (FLAG_POORLY_FORMED_G4, G4)):
            marked = (core.flags & flag) > 0
            assert (core.truth[marked] == cls).all()
            labels, n = ndi.label(core.truth == cls)
            for i in range(1, n + 1):  # a region is all in the pattern or not at all
                assert len(np.unique(marked[labels == i])) == 1
            seen[flag] += int(marked.sum())
        assert not ((core.flags & FLAG_TEXTURED_G3) & (core.flags & FLAG_FOAMY_G3)).any()
    assert all(v > 0 for v in seen.values()), seen


def test_pattern_looks_different_from_the_ordinary_class(panel):
    """The patterns are visible: mean darkness differs from ordinary tissue of the same class."""
    def grey(c, _):
        return c.image.astype(np.float32).mean(axis=2)

    g = _pool(panel, grey)
    truth = _pool(panel, lambda c, _: c.truth)
    flags = _pool(panel, lambda c, _: c.flags)
    plain_g3 = g[(truth == G3) & ((flags & (FLAG_TEXTURED_G3 | FLAG_FOAMY_G3)) == 0)].mean()
    assert g[(flags & FLAG_TEXTURED_G3) > 0].mean() < plain_g3 - 5  # darker, crowded
    assert g[(flags & FLAG_FOAMY_G3) > 0].mean() > plain_g3 + 10  # pale, foamy


def test_expert_a_upgrades_textured_g3_and_is_right_elsewhere(panel):
    truth = _pool(panel, lambda c, _: c.truth)
    flags = _pool(panel, lambda c, _: c.flags)
    a = _pool(panel, lambda c, lab: lab["A"])
    textured = (flags & FLAG_TEXTURED_G3) > 0
    assert (a[textured] == G4).mean() > 0.9
    plain_g3 = (truth == G3) & ~textured
    assert (a[plain_g3] == G3).mean() > 0.9
    poorly = (flags & FLAG_POORLY_FORMED_G4) > 0
    assert (a[poorly] == G4).mean() > 0.9, "A is right where B and C share a bias"


def test_expert_c_misses_foamy_g3(panel):
    flags = _pool(panel, lambda c, _: c.flags)
    c = _pool(panel, lambda c, lab: lab["C"])
    assert (c[(flags & FLAG_FOAMY_G3) > 0] == BENIGN).mean() > 0.9


def test_shared_bias_experts_agree_with_each_other_on_the_flagged_area(panel):
    flags = _pool(panel, lambda c, _: c.flags)
    b, c = _pool(panel, lambda c, lab: lab["B"]), _pool(panel, lambda c, lab: lab["C"])
    poorly = (flags & FLAG_POORLY_FORMED_G4) > 0
    assert PANEL_BIASES["poorly_formed_g4_called_g3"]["experts"] == ["B", "C"]
    assert (b[poorly] == G3).mean() > 0.75 and (c[poorly] == G3).mean() > 0.9
    assert (b[poorly] == c[poorly]).mean() > 0.75
    # so the vote of three is wrong there: two say G3, the truth is G4
    a = _pool(panel, lambda c, lab: lab["A"])
    from trainer.data.vote import majority_vote

    vote = majority_vote(np.stack([a, b, c])[:, None, :], 4)[0]
    assert (vote[poorly] == G3).mean() > 0.75


def test_expert_b_errs_at_random_places(panel):
    """B's errors outside its shared bias are as frequent on every pattern as on plain tissue."""
    truth = _pool(panel, lambda c, _: c.truth)
    flags = _pool(panel, lambda c, _: c.flags)
    wrong = _pool(panel, lambda c, lab: lab["B"] != c.truth)
    low, high = PANEL_EXPERTS["B"]["random_fraction"]
    elsewhere = (flags & FLAG_POORLY_FORMED_G4) == 0
    assert low - 0.03 < wrong[elsewhere].mean() < high + 0.05
    rate_textured = wrong[(flags & FLAG_TEXTURED_G3) > 0].mean()
    rate_plain = wrong[elsewhere & (truth == G3) & ((flags & FLAG_TEXTURED_G3) == 0)].mean()
    assert 0.4 < rate_textured / rate_plain < 2.5, (rate_textured, rate_plain)


def test_pairwise_kappa_as_gleason_2019(panel):
    """Pairwise Cohen's κ on tissue within 0.45-0.65 (measured 0.47-0.60 over 60 cores at 160²)."""
    stats = PanelStats()
    for core, labels in panel:
        stats.add(core, labels)
    kappas = stats.kappas()
    assert set(kappas) == {"A-B", "A-C", "B-C"}
    for pair, k in kappas.items():
        assert 0.45 <= k <= 0.65, (pair, k)
    result = stats.result()
    true_cm = result["true_confusion_on_biased_areas"]
    assert true_cm["textured_g3_called_g4"]["A"][G3][G4] > 0.9
    assert true_cm["foamy_g3_missed"]["C"][G3][BENIGN] > 0.9
    assert set(true_cm["poorly_formed_g4_called_g3"]) == {"B", "C"}
    assert true_cm["textured_g3_called_g4"]["A"][BENIGN][0] is None  # no benign on a G3 pattern


def test_error_kinds_partition_the_wrong_pixels(panel):
    for core, labels in panel[:6]:
        for e in PANEL_NAMES:
            kinds = panel_error_kinds(e, labels[e], core.truth, core.flags)
            parts = [m for k, m in kinds.items() if k != "all"]
            assert set(kinds) == {"all", *PANEL_EXPERTS[e]["biases"], PANEL_EXPERTS[e]["other_errors"]}
            np.testing.assert_array_equal(np.sum(parts, axis=0), kinds["all"].astype(int))
    truth = np.array([[G3, G3, G4, BENIGN]], np.uint8)
    flags = np.array([[FLAG_TEXTURED_G3, 0, FLAG_POORLY_FORMED_G4, 0]], np.uint8)
    k = panel_error_kinds("A", np.array([[G4, G4, G4, BENIGN]], np.uint8), truth, flags)
    assert k["textured_g3_called_g4"].tolist() == [[True, False, False, False]]
    assert k["outline"].tolist() == [[False, True, False, False]]
    k = panel_error_kinds("C", np.array([[G3, G3, G3, G5]], np.uint8), truth, flags)
    assert k["poorly_formed_g4_called_g3"].tolist() == [[False, False, True, False]]
    assert k["outline"].tolist() == [[False, False, False, True]]


def test_tie_mask_by_hand():
    a = np.array([[0, 1, 2, 3]], np.uint8)
    b = np.array([[0, 2, 2, 1]], np.uint8)
    c = np.array([[0, 3, 1, 1]], np.uint8)
    assert tie_mask([a, b]).tolist() == [[False, True, False, True]]
    assert tie_mask({"a": a, "b": b, "c": c}).tolist() == [[False, True, False, False]]  # 1-1-1 at x=1


def test_count_confusion_and_row_normalise():
    truth = np.array([1, 1, 1, 2], np.uint8)
    label = np.array([1, 2, 2, 2], np.uint8)
    cm = count_confusion(truth, label)
    assert cm[1, 1] == 1 and cm[1, 2] == 2 and cm[2, 2] == 1 and cm.sum() == 4
    rows = row_normalise(cm)
    np.testing.assert_allclose(rows[1], [0, 1 / 3, 2 / 3, 0])
    assert np.isnan(rows[0]).all() and np.isnan(rows[3]).all()


def test_assignment_has_every_pair_and_triples():
    plan = panel_assignment(30, seed=1, pair_fraction=0.4)
    pairs = [tuple(p) for p in plan if len(p) == 2]
    assert 6 <= len(pairs) <= 20 and set(pairs) == set(PAIRS)
    assert all(p == list(PANEL_NAMES) for p in plan if len(p) == 3)
    assert panel_assignment(30, seed=1, pair_fraction=0.0) == [list(PANEL_NAMES)] * 30
    with pytest.raises(InputError):
        panel_assignment(3, seed=1, pair_fraction=1.5)


def test_an_expert_does_not_depend_on_which_others_were_asked_for():
    core = make_panel_core(3, 96)
    np.testing.assert_array_equal(simulate_panel(core, 5, ("B",))["B"], simulate_panel(core, 5)["B"])
    with pytest.raises(InputError, match="unknown panel expert"):
        simulate_panel(core, 5, ("D",))


def test_written_panel_dataset(tmp_path):
    from trainer.data import open_dataset
    from trainer.data.records import load_core

    plan = [["A", "B", "C"], ["A", "B"], ["A", "C"], ["B", "C"]]
    info = write_panel_dataset(tmp_path / "p", cores=4, size=96, seed=2, assignment=plan)
    again = write_panel_dataset(tmp_path / "q", cores=4, size=96, seed=2, assignment=plan)
    for f in sorted(p.relative_to(tmp_path / "p") for p in (tmp_path / "p").rglob("*") if p.is_file()):
        assert (tmp_path / "p" / f).read_bytes() == (tmp_path / "q" / f).read_bytes(), f
    assert info == again and json.loads((tmp_path / "p" / "synthetic.json").read_text()) == info
    ds = open_dataset(tmp_path / "p")
    assert ds.layout == "generic" and tuple(ds.experts) == PANEL_NAMES
    for record, experts in zip(info["cores"], plan):
        assert record["experts"] == experts
        masks = load_core(ds.core(record["name"]), ds.scheme).masks
        assert sorted(masks) == experts
        if len(experts) == 2 and record["tie_fraction"] > 0:  # two experts: a tie wherever they differ
            a, b = (masks[e] for e in experts)
            truth = np.asarray(Image.open(tmp_path / "p" / "truth" / f"{record['name']}_classimg_nonconvex.png"))
            tissue = truth > 0
            assert record["tie_fraction"] == pytest.approx((a != b)[tissue].mean(), abs=1e-4)
    assert any(r["tie_fraction"] > 0 for r, e in zip(info["cores"], plan) if len(e) == 2)
    assert set(info["biases"]) == set(PANEL_BIASES) and set(info["experts"]) == set(PANEL_NAMES)
    assert set(info["statistics"]["pairwise_kappa"]) == {"A-B", "A-C", "B-C"}
    with pytest.raises(InputError, match="non-empty subset"):
        write_panel_dataset(tmp_path / "bad", cores=1, size=96, seed=2, assignment=[["Z"]])


def test_bias_area_is_the_pattern_on_its_true_class():
    truth = np.array([[G3, G4, G3]], np.uint8)
    flags = np.array([[FLAG_TEXTURED_G3, FLAG_TEXTURED_G3, 0]], np.uint8)
    assert bias_area("textured_g3_called_g4", truth, flags).tolist() == [[True, False, False]]
