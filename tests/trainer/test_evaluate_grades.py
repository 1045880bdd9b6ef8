"""``evaluate`` compares the cores' ISUP grade groups too: quadratic-weighted κ between experts and of
the model with each expert, Fleiss' κ over the experts (issue 18, item 3)."""

import itertools
import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from trainer.cli import main
from trainer.data import load_core, open_dataset
from trainer.grading import grade_core


def test_evaluate_reports_grade_group_agreement(tiny_run, synthetic_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(Path(tiny_run) / "best.pt"), "--data", str(synthetic_data),
                 "--split", "all", "--json", str(out), "--device", "cpu", "--size", "64"]) == 0
    res = json.loads(out.read_text())
    g = res["grade_groups"]
    ds = open_dataset(synthetic_data)
    # each expert's grade of each core, recomputed from the mask files
    want = [{e: grade_core(m, ds.scheme.names).grade_group for e, m in load_core(r, ds.scheme).masks.items()}
            for r in ds.cores]
    assert [{k: v for k, v in row.items() if k != "model"} for row in g["per_core"]] == want
    for pair, kappa in g["expert_pairs_kappa_quadratic"].items():
        a, b = pair.split("-")
        both = [(row[a], row[b]) for row in want if row.get(a) is not None and row.get(b) is not None]
        x, y = zip(*both)
        if len(set(x) | set(y)) > 1:
            ref = cohen_kappa_score(x, y, labels=list(range(6)), weights="quadratic")
            assert abs(kappa - ref) < 1e-9, pair
    experts = sorted({e for row in want for e in row})
    assert sorted(g["model_vs_expert_kappa_quadratic"]) == experts
    assert len(g["expert_pairs_kappa_quadratic"]) == len(list(itertools.combinations(experts, 2)))
    assert "Fleiss' κ over the experts" in capsys.readouterr().out
