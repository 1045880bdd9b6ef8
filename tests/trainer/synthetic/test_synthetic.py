"""Synthetic cores and simulated experts: determinism, texture, every expert's bias, the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from trainer.errors import InputError
from trainer.synthetic import (
    EXPERT_BIASES,
    EXPERT_NAMES,
    FLAG_BORDERLINE_G3,
    FLAG_SMALL_G5,
    SMALL_FOCUS_AREA,
    make_core,
    sample_core,
    simulate_experts,
    write_dataset,
)

BENIGN, G3, G4, G5 = 0, 1, 2, 3
SIZE = 192
SEEDS = range(8)


@pytest.fixture(scope="module")
def pool():
    """A few cores with all six experts each: the evidence most tests pool over."""
    cores = [make_core(seed, SIZE) for seed in SEEDS]
    experts = [simulate_experts(core, 1000 + seed) for seed, core in zip(SEEDS, cores)]
    return cores, experts


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    info = write_dataset(out, cores=6, size=128, seed=3)
    return out, info


def _tissue(cores, array_of):
    """Concatenate ``array_of(core)`` over tissue pixels of every core."""
    return np.concatenate([array_of(c)[c.core_mask] for c in cores])


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_core_and_experts():
    a, b = make_core(7, 128), make_core(np.random.default_rng(7), 128)
    for field in ("image", "truth", "flags", "core_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    ea, eb = simulate_experts(a, 11), simulate_experts(b, 11)
    for name in EXPERT_NAMES:
        np.testing.assert_array_equal(ea[name], eb[name])


def test_different_seed_different_core():
    a, b = make_core(1, 128), make_core(2, 128)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.truth, b.truth)


def test_an_expert_does_not_depend_on_which_others_were_asked_for():
    core = make_core(5, 128)
    alone = simulate_experts(core, 9, experts=("4",))
    together = simulate_experts(core, 9)
    np.testing.assert_array_equal(alone["4"], together["4"])
    with pytest.raises(InputError, match="unknown synthetic expert"):
        simulate_experts(core, 9, experts=("7",))


def test_shapes_and_dtypes():
    core = make_core(0, 96)
    assert core.image.shape == (96, 96, 3) and core.image.dtype == np.uint8
    assert core.truth.shape == (96, 96) and core.truth.dtype == np.uint8
    assert core.flags.dtype == np.uint8 and core.core_mask.dtype == bool
    assert set(np.unique(core.truth)) <= {0, 1, 2, 3}
    # Glass around the core is near-white and benign; the core is darker (stained).
    assert not core.core_mask[0, 0] and core.core_mask[48, 48]
    assert core.image[~core.core_mask].mean() > 220 > core.image[core.core_mask].mean()
    assert (core.truth[~core.core_mask] == BENIGN).all()


# --- the tissue --------------------------------------------------------------------------------


def test_class_fractions(pool):
    cores, _ = pool
    counts = np.bincount(_tissue(cores, lambda c: c.truth), minlength=4)
    fractions = counts / counts.sum()
    assert (counts > 0).all(), "all four classes occur across a few cores"
    assert fractions[BENIGN] > 0.35
    assert 0 < fractions[G5] < 0.1, "G5 present but rare, as in the paper's Table 1"
    assert sum((c.truth[c.core_mask] != BENIGN).any() for c in cores) == len(cores)


def test_roughness_rises_with_grade(pool):
    """Mean |I - Gauss(I)| of the grey image per truth class (eq. 5's prior), away from borders."""
    cores, _ = pool
    rough = {k: [] for k in range(4)}
    for core in cores:
        grey = core.image.astype(np.float32).mean(axis=2)
        r = np.abs(grey - ndi.gaussian_filter(grey, 3))
        for k in range(4):
            inner = ndi.binary_erosion((core.truth == k) & core.core_mask, iterations=3)
            rough[k].append(r[inner])
    mean = [float(np.concatenate(rough[k]).mean()) for k in range(4)]
    assert mean[BENIGN] < mean[G3] < mean[G4] < mean[G5], mean
    assert mean[G5] > 2 * mean[BENIGN], mean


def test_flags_mark_small_g5_foci_and_borderline_g3(pool):
    cores, _ = pool
    area_limit = SMALL_FOCUS_AREA * (SIZE / 512) ** 2
    for core in cores:
        small = (core.flags & FLAG_SMALL_G5) > 0
        assert (core.truth[small] == G5).all()
        labels, n = ndi.label(core.truth == G5)
        areas = np.bincount(labels.ravel())[1:]
        flagged = [small[labels == i + 1].all() for i in range(n)]
        assert flagged == [a < area_limit for a in areas]
        assert (core.truth[(core.flags & FLAG_BORDERLINE_G3) > 0] == G3).all()
    assert any(((c.flags & FLAG_SMALL_G5) > 0).any() for c in cores)
    assert any(((c.flags & FLAG_BORDERLINE_G3) > 0).any() for c in cores)


# --- the experts' biases -----------------------------------------------------------------------


def test_every_expert_is_benign_outside_the_core(pool):
    cores, experts = pool
    for core, maps in zip(cores, experts):
        assert sorted(maps) == list(EXPERT_NAMES)
        for m in maps.values():
            assert m.dtype == np.uint8 and m.shape == core.truth.shape
            assert (m[~core.core_mask] == BENIGN).all()


def test_expert1_overextends_tumour_into_adjacent_benign(pool):
    cores, experts = pool
    reach = EXPERT_BIASES["1"]["params"]["shift_px_at_512"][1] * SIZE / 512 + 1
    for core, maps in zip(cores, experts):
        label, truth = maps["1"], core.truth
        changed = label != truth
        assert (truth[changed] == BENIGN).all() and (label[changed] != BENIGN).all()
        distance = ndi.distance_transform_edt(truth == BENIGN)
        assert (distance[changed] <= reach).all(), "extra tumour only next to true tumour"
        assert (label != BENIGN).sum() > (truth != BENIGN).sum()


def test_expert2_errs_only_along_outlines(pool):
    cores, experts = pool
    grid = EXPERT_BIASES["2"]["params"]["grid_px_at_512"] * SIZE / 512
    agreement = []
    for core, maps in zip(cores, experts):
        wrong = maps["2"] != core.truth
        edges = ndi.morphological_gradient(core.truth, size=3) > 0
        assert (ndi.distance_transform_edt(~edges)[wrong] <= grid).all()
        agreement.append((~wrong)[core.core_mask].mean())
    assert 0.9 < np.mean(agreement) < 0.995


def test_expert3_calls_borderline_g3_g4(pool):
    cores, experts = pool
    g3 = _tissue(cores, lambda c: c.truth == G3)
    flagged = _tissue(cores, lambda c: (c.flags & FLAG_BORDERLINE_G3) > 0)[g3]
    label = np.concatenate([m["3"][c.core_mask] for c, m in zip(cores, experts)])[g3]
    assert (label[flagged] == G4).mean() > 0.6
    assert (label[~flagged] == G4).mean() < 0.02
    g4 = _tissue(cores, lambda c: c.truth == G4)
    swapped = (np.concatenate([m["3"][c.core_mask] for c, m in zip(cores, experts)])[g4] == G3).mean()
    assert 0.005 < swapped < 0.15, "slight random G4 -> G3 swaps"


def test_expert4_errs_everywhere_alike(pool):
    """Unreliable expert: ~15-25 % of tumour wrong, as often on flagged as on unflagged tissue."""
    cores, experts = pool
    low, high = EXPERT_BIASES["4"]["params"]["tumour_fraction"]
    for core, maps in zip(cores, experts):
        tumour = (core.truth != BENIGN) & core.core_mask
        rate = (maps["4"] != core.truth)[tumour].mean()
        assert low - 0.02 <= rate <= high + 0.02
    g3 = _tissue(cores, lambda c: c.truth == G3)
    flagged = _tissue(cores, lambda c: (c.flags & FLAG_BORDERLINE_G3) > 0)[g3]
    wrong = np.concatenate([(m["4"] != c.truth)[c.core_mask] for c, m in zip(cores, experts)])[g3]
    on, off = wrong[flagged].mean(), wrong[~flagged].mean()
    assert on > 0.05 and off > 0.05 and 0.5 < on / off < 2.0, (on, off)
    assert not EXPERT_BIASES["4"]["appearance_dependent"] and EXPERT_BIASES["3"]["appearance_dependent"]


def test_expert5_labels_small_g5_foci_g4():
    # Find cores with small foci and one with a large G5 region (which expert 5 does see).
    seen_small = seen_large = False
    for seed in range(60):
        core = make_core(seed, 128)
        small = (core.flags & FLAG_SMALL_G5) > 0
        large = (core.truth == G5) & ~small
        if not (small.any() or large.any()):
            continue
        label = simulate_experts(core, seed, experts=("5",))["5"]
        assert (label[small] == G4).all()
        np.testing.assert_array_equal(label[~small], core.truth[~small])
        seen_small |= bool(small.any())
        seen_large |= bool(large.any())
        if seen_small and seen_large:
            break
    assert seen_small and seen_large


def test_expert6_is_careful(pool):
    cores, experts = pool
    for core, maps in zip(cores, experts):
        agree = (maps["6"] == core.truth)[core.core_mask].mean()
        assert 0.95 < agree < 1.0


def test_sample_core_is_core_zero_of_the_dataset(written):
    out, info = written
    image, truth, experts = sample_core(seed=3, size=128)
    assert image.shape == (128, 128, 3) and truth.shape == (128, 128)
    assert sorted(experts) == list(EXPERT_NAMES)
    name = info["cores"][0]["name"]
    values = np.asarray(Image.open(out / "truth" / f"{name}_classimg_nonconvex.png"))
    classes = np.select([values == 3, values == 4, values == 5], [G3, G4, G5], BENIGN)
    np.testing.assert_array_equal(classes, truth)


# --- the written dataset -----------------------------------------------------------------------


def test_layout_and_mask_values(written):
    out, info = written
    assert (out / "Train Imgs").is_dir()
    names = [c["name"] for c in info["cores"]]
    assert names[0] == "slide001_core001" and len(names) == 6
    values_seen: set[int] = set()
    for record in info["cores"]:
        name = record["name"]
        with Image.open(out / "Train Imgs" / f"{name}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (128, 128)
        for expert in EXPERT_NAMES:
            path = out / f"Maps{expert}_T" / f"{name}_classimg_nonconvex.png"
            assert path.exists() == (expert in record["experts"]), path
            if path.exists():
                with Image.open(path) as im:
                    assert im.mode == "L"
                    mask = np.asarray(im)
                assert mask.dtype == np.uint8 and mask.shape == (128, 128)
                assert set(np.unique(mask)) <= {0, 1, 3, 4, 5, 6}
                assert mask[0, 0] == 0, "background outside the core"
                benign = set(np.unique(mask)) & {1, 6}
                assert benign <= {record["benign_value"][expert]}
                values_seen |= set(np.unique(mask).tolist())
        with Image.open(out / "appearance" / f"{name}_flags.png") as im:
            assert set(np.unique(np.asarray(im))) <= {0, 1, 2, 3}
    assert 6 in values_seen and 1 in values_seen


def test_who_annotates_what(written):
    _, info = written
    experts = [c["experts"] for c in info["cores"]]
    assert any(len(e) == 6 for e in experts), "the paper's test set: cores with all six"
    assert any(len(e) < 6 for e in experts)
    assert any(len(e) == 1 for e in experts), "a core with a single expert"
    assert any("3" not in e and len(e) > 1 for e in experts), "a core without expert 3"
    for e in experts:
        if len(e) > 1 and "3" in e:
            assert {"1", "3", "4"} <= set(e)
    assert all(c["all_experts"] == (len(c["experts"]) == 6) for c in info["cores"])


def test_summary_json(written):
    out, info = written
    on_disk = json.loads((out / "synthetic.json").read_text())
    assert on_disk == info
    assert on_disk["seed"] == 3 and on_disk["size"] == 128 and on_disk["num_cores"] == 6
    assert on_disk["version"]
    assert set(on_disk["experts"]) == set(EXPERT_NAMES)
    for name, bias in on_disk["experts"].items():
        assert {"kind", "description", "appearance_dependent", "params"} <= set(bias)
        assert bias["kind"] == EXPERT_BIASES[name]["kind"]
    for record in on_disk["cores"]:
        assert sum(record["class_fractions"].values()) == pytest.approx(1.0, abs=1e-3)
        values = np.asarray(Image.open(out / "truth" / f"{record['name']}_classimg_nonconvex.png"))
        tissue = values[values > 0]
        assert record["class_fractions"]["G4"] == pytest.approx((tissue == 4).mean(), abs=1e-3)


def test_dataset_is_byte_identical_for_the_same_seed(written, tmp_path):
    out, _ = written
    again = write_dataset(tmp_path / "again", cores=6, size=128, seed=3)

    def files(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    assert files(out) == files(tmp_path / "again")
    for rel in files(out):
        assert (out / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    other = write_dataset(tmp_path / "other", cores=2, size=128, seed=4)
    assert again["cores"][0]["class_fractions"] != other["cores"][0]["class_fractions"]


def test_a_given_assignment_changes_who_annotates_not_the_tissue(written, tmp_path):
    out, info = written
    plan = [["1", "2", "3", "4", "5", "6"], ["3", "4", "5"]]
    given = write_dataset(tmp_path / "given", cores=2, size=128, seed=3, assignment=plan)
    assert [c["experts"] for c in given["cores"]] == plan and given["assignment"] == "given"
    assert "assignment" not in info, "the default summary (and so sample_data/) is unchanged"
    for i in range(2):
        name = given["cores"][i]["name"]
        assert (tmp_path / "given" / "Train Imgs" / f"{name}.jpg").read_bytes() == (
            out / "Train Imgs" / f"{name}.jpg").read_bytes()
        for e in set(plan[i]) & set(info["cores"][i]["experts"]):  # same expert, same labels
            a = np.asarray(Image.open(tmp_path / "given" / f"Maps{e}_T" / f"{name}_classimg_nonconvex.png"))
            b = np.asarray(Image.open(out / f"Maps{e}_T" / f"{name}_classimg_nonconvex.png"))
            np.testing.assert_array_equal(a > 1, b > 1)  # benign may be written 1 or 6
    with pytest.raises(InputError, match="assignment"):
        write_dataset(tmp_path / "bad", cores=3, size=128, seed=3, assignment=plan)
    with pytest.raises(InputError, match="non-empty subset"):
        write_dataset(tmp_path / "bad2", cores=1, size=128, seed=3, assignment=[["7"]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 32}, "size"),
        ({"cores": 0}, "cores"),
        ({"seed": -1}, "seed"),
        ({"size": 128.0}, "integer"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"cores": 2, "size": 128, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        write_dataset(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty") as info:
        write_dataset(tmp_path, cores=1, size=64, seed=0)
    assert str(tmp_path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_reader_opens_the_written_dataset(written):
    """Contract with trainer.data: the Gleason 2019 reader sees every core and expert."""
    gleason = pytest.importorskip("trainer.data.gleason2019")
    out, info = written
    ds = gleason.open_gleason2019(Path(out))
    by_name = {c.name: c for c in ds.cores}
    for record in info["cores"]:
        assert sorted(by_name[record["name"]].masks) == record["experts"]
