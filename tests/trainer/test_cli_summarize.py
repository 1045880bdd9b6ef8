"""``python -m trainer summarize``: one CSV row per core and rater, grade-group κ and Fleiss' κ, no model
unless --checkpoint (tiny synthetic data, tests/conftest.py)."""

import csv
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from trainer.cli import main
from trainer.data import load_core, open_dataset
from trainer.data.vote import majority_vote
from trainer.grading import grade_core
from trainer.metrics import cohen_kappa_ratings, fleiss_kappa_ratings
from trainer.prediction.tissue import tissue_mask


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_summarize_without_a_model(synthetic_data, tmp_path, capsys, monkeypatch):
    import trainer.prediction.predictor

    def no_model(*_a, **_k):
        raise AssertionError("summarize loaded a model without --checkpoint")

    monkeypatch.setattr(trainer.prediction.predictor, "load_predictor", no_model)
    out = tmp_path / "grades" / "summary.csv"
    assert main(["summarize", "--data", str(synthetic_data), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(out)
    ds = open_dataset(synthetic_data)
    names = ds.scheme.names
    assert list(rows[0]) == (["core", "rater"] + [f"tissue_share_{n}" for n in names]
                             + [f"tumour_share_{n}" for n in names[1:]]
                             + ["primary", "secondary", "gleason_score", "grade_group"])
    # every expert of every core, the vote and STAPLE; no model
    expected = [(r.name, e) for r in ds.cores for e in list(r.masks) + ["vote", "staple"]]
    assert sorted((r["core"], r["rater"]) for r in rows) == sorted(expected)
    assert not any(r["rater"] == "model" for r in rows)
    # each row is the grade of that rater's map, computed here from the files
    by = {(r["core"], r["rater"]): r for r in rows}
    for record in ds.cores:
        loaded = load_core(record, ds.scheme)
        tissue = tissue_mask(loaded.image)
        maps = dict(loaded.masks)
        maps["vote"] = majority_vote(np.stack([loaded.masks[e] for e in record.masks]), len(names))
        for rater, m in maps.items():
            g = grade_core(m, names, tissue)
            row = by[(record.name, rater)]
            assert row["gleason_score"] == g.label and row["grade_group"] == str(g.grade_group)
            shares = [float(row[f"tissue_share_{n}"]) for n in names]
            assert shares == pytest.approx([g.tissue_share[n] for n in names], abs=1e-6)
            assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    # the printed agreement is that of the table's grade groups
    gg = {(r["core"], r["rater"]): int(r["grade_group"]) for r in rows}
    experts = list(ds.experts)
    fleiss = fleiss_kappa_ratings([[gg.get((c, e)) for e in experts] for c in ds.names], range(6))
    assert f"Fleiss' κ over the experts' grade groups: {fleiss:.3f}" in printed
    a, b = experts[:2]
    kappa = cohen_kappa_ratings([gg.get((c, a)) for c in ds.names], [gg.get((c, b)) for c in ds.names], range(6))
    assert f"{a}-{b} {kappa:.3f}" in printed
    assert len(re.findall(r"\b\d+-\d+ -?\d\.\d{3}", printed)) <= len(list(itertools.combinations(experts, 2)))
    assert f"wrote {len(rows)} rows to {out}" in printed


def test_summarize_rule_and_no_staple(synthetic_data, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["summarize", "--data", str(synthetic_data), "--out", str(out), "--no-staple",
                 "--rule", "gleason2019", "--min-share", "0"]) == 0
    assert "rule gleason2019" in capsys.readouterr().out
    rows = read_rows(out)
    assert rows and not any(r["rater"] == "staple" for r in rows)
    ds = open_dataset(synthetic_data)
    record = ds.cores[0]
    e = next(iter(record.masks))
    loaded = load_core(record, ds.scheme)
    g = grade_core(loaded.masks[e], ds.scheme.names, tissue_mask(loaded.image), rule="gleason2019", min_share=0)
    assert next(r for r in rows if (r["core"], r["rater"]) == (record.name, e))["gleason_score"] == g.label


def test_summarize_with_a_checkpoint_grades_the_prediction(synthetic_data, tiny_run, tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["summarize", "--data", str(synthetic_data), "--checkpoint", str(Path(tiny_run) / "last.pt"),
                 "--device", "cpu", "--size", "64", "--no-staple", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_rows(out)
    ds = open_dataset(synthetic_data)
    model = [r for r in rows if r["rater"] == "model"]
    assert sorted(r["core"] for r in model) == sorted(ds.names)
    assert all(r["gleason_score"] for r in model)
    assert "grade-group κ (quadratic) model vs" in printed and "vote" in printed.split("model vs")[1]


def test_summarize_bad_input_is_one_line_and_exit_2(synthetic_data, tmp_path, capsys):
    assert main(["summarize", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert main(["summarize", "--data", str(synthetic_data), "--min-share", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--min-share" in err and len(err.strip().splitlines()) == 1


def test_summarize_refuses_classes_that_are_not_gleason_patterns(tmp_path, capsys):
    from tests.fakes import make_fake_generic

    root = tmp_path / "generic"
    make_fake_generic(root, classes=None)  # classes class0..class2: no Gleason pattern
    assert main(["summarize", "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert "G3, G4, G5" in err and str(root) in err and len(err.strip().splitlines()) == 1
