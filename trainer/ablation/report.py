"""Benchmark report: ``results.json``, ``table.md`` in Table 2's layout, and figures.

Every number is a mean ± sample standard deviation (ddof = 1) over seeds; Dice in percent as in
Table 2. Both outputs carry the command, git commit, machine and date.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from ..jsonsafe import clean  # noqa: F401  (re-exported: the benchmark runners use it)

from ..data.classes import GLEASON_CLASSES
from .data import BenchData
from .figures import MATRIX_MODELS, as_float as _nan, expert_title as _expert_title, write_figures
from .presets import VARIANTS, Preset

COLUMNS = ("benign", "G3", "G4", "G5")
HEADER = ("| Method | GAFL | Re-weighting | Confusion | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |\n"
          "|---|---|---|---|---|---|---|---|---|")
DICE_REFS = ("truth", "truth_ties", "vote6")


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package (read-only), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``) and whether it has AVX-512 BF16 or only AVX2: the
    figures of a benchmark depend on it."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = "AVX-512 BF16" if "avx512_bf16" in flags else ("AVX2" if "avx2" in flags else "")
    return f"{name} ({isa})" if isa else name


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_model()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def _ms(values) -> list[float]:
    """[mean, sample std] ignoring NaN/None; std 0 for one value."""
    arr = np.array([_nan(v) for v in values], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return [float("nan"), float("nan")]
    return [float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0]


def _mean_matrix(matrices: list) -> list:
    """Element-wise mean over seeds, ignoring NaN (a row no seed estimated stays NaN)."""
    arr = np.array([[[_nan(v) for v in row] for row in m] for m in matrices], dtype=np.float64)
    n = (~np.isnan(arr)).sum(axis=0)
    return np.where(n > 0, np.nansum(arr, axis=0) / np.maximum(n, 1), np.nan).tolist()


def _aggregate_auroc(rs: list[dict]) -> dict:
    out = {}
    for e, first in rs[0]["auroc"].items():
        mine = [r["auroc"][e] for r in rs if e in (r.get("auroc") or {})]
        sub = "error_fraction_subset_network_right"
        a = {"error_fraction": dict(first["error_fraction"]),  # the labels: the same in every run
             sub: {k: _ms([m.get(sub, {}).get(k) for m in mine]) for k in first.get(sub, {})},
             "model_agrees": _ms([m["model_agrees"] for m in mine]), "scores": {}}
        for name, s in first["scores"].items():
            a["scores"][name] = {metric: {k: _ms([m["scores"][name][metric][k] for m in mine]) for k in s[metric]}
                                 for metric in s if isinstance(s[metric], dict)}
            for metric in ("mean_wrong", "mean_right"):
                a["scores"][name][metric] = _ms([m["scores"][name][metric] for m in mine])
        out[e] = a
    return out


def _aggregate_matrices(rs: list[dict], key: str = "confusion_matrices") -> dict:
    out: dict = {}
    for area, experts in rs[0][key].items():
        for e, first in experts.items():
            mine = [r[key][area][e] for r in rs if e in (r.get(key) or {}).get(area, {})]
            out.setdefault(area, {})[e] = {
                "max_abs_diff": _ms([m["max_abs_diff"] for m in mine]),
                "estimated": _mean_matrix([m["estimated"] for m in mine]), "true": first["true"],
                "rows_compared": first["rows_compared"], "pixels_per_row": first["pixels_per_row"]}
    return out


def aggregate(runs: list[dict]) -> dict:
    """summary[model][variant] → Dice (truth, tie pixels, vote), AUROC and matrices as [mean, std]."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["variant"]), []).append(r)
    summary: dict = {}
    for (model, variant), rs in groups.items():
        entry = {"seeds": sorted(r["seed"] for r in rs)}
        for ref in DICE_REFS:
            if f"dice_{ref}" not in rs[0]:
                continue
            entry[ref] = {c: _ms([r[f"dice_{ref}"][c] for r in rs]) for c in COLUMNS}
            entry[ref]["mean"] = _ms([r[f"mean_dice_{ref}"] for r in rs])
        if rs[0].get("auroc"):
            entry["auroc"] = _aggregate_auroc(rs)
        for key in ("confusion_matrices", "confusion_matrices_global"):
            if rs[0].get(key):
                entry[key] = _aggregate_matrices(rs, key)
        summary.setdefault(model, {})[variant] = entry
    return summary


# --- markdown -----------------------------------------------------------------------------------


def _cell(ms, scale=100.0, digits=2) -> str:
    m, s = ms
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "—"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"


def _model_name(model: str, encoder: str | None) -> str:
    return model.upper().replace("NET", "Net") + (f" ({encoder})" if encoder else "")


def _dice_table(summary: dict, ref: str, models: list[tuple[str, str | None]], single: str) -> list[str]:
    lines = [HEADER]
    for model, encoder in models:
        name = _model_name(model, encoder)
        for variant, entry in summary.get(model, {}).items():
            if ref not in entry:
                continue
            v = VARIANTS[variant]
            method = {"vote": name, "staple": f"{name} on STAPLE", "single": f"{name} on expert {single}"}[v.labels]
            cells = [_cell(entry[ref]["mean"])] + [_cell(entry[ref][c]) for c in COLUMNS]
            form = dict(v.loss_options).get("confusion_form", "heads")
            lines.append(f"| {method} | {'yes' if v.loss == 'gafl' else ''} | {'yes' if v.reweight else ''} | "
                         f"{form if v.confusion else ''} | " + " | ".join(cells) + " |")
    return lines


def _kind_flag(results: dict, kind: str) -> str:
    if kind == "all":
        return "—"
    dep = results["data"]["kind_appearance"].get(kind)
    shared = (results["data"].get("biases") or {}).get(kind, {}).get("shared")
    return ("yes" if dep else "no") + (", shared" if shared else "")


#: The order detectors appear in the tables: each map beside its baselines.
DETECTOR_ORDER = ("1 − w", "error (given the label)", "error (image only)", "global: error (given the label)",
                  "global: error (image only)", "1 − p(label written)", "1 − max p")


def _detectors(entry: dict) -> list[str]:
    names = list(next(iter((entry.get("auroc") or {}).values()), {}).get("scores", {}))
    return sorted(names, key=lambda n: (DETECTOR_ORDER.index(n) if n in DETECTOR_ORDER else len(DETECTOR_ORDER), n))


def _auroc_runs(summary: dict) -> list[tuple[str, str, dict]]:
    return [(m, v, e) for m, variants in summary.items() for v, e in variants.items() if e.get("auroc")]


def _auroc_headline(results: dict, metric: str = "auroc") -> list[str]:
    """Per annotator-model run: rows expert × kind of error, columns every detector, cells AUROC
    (``metric``: ``auroc`` on all tissue, ``auroc_same_class`` against same-true-class negatives)."""
    runs = _auroc_runs(results["summary"])
    if not runs:
        return ["(no annotator-model run)"]
    lines = []
    for model, variant, entry in runs:
        names = _detectors(entry)
        lines += [f"{model}, {variant} (seeds {', '.join(map(str, entry['seeds']))}):", "",
                  "| Expert | Kind of error | Appearance-dependent | Share of tissue | " + " | ".join(names) + " |",
                  "|---|---|---|---|" + "---|" * len(names)]
        for e, a in entry["auroc"].items():
            for kind, frac in a["error_fraction"].items():
                cells = [_cell(a["scores"][n][metric][kind], 1.0) for n in names]
                lines.append(f"| {_expert_title(results, e)} | {kind} | {_kind_flag(results, kind)} | "
                             f"{100 * _nan(frac):.2f} % | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _auroc_table(results: dict) -> list[str]:
    lines = ["| Model | Variant | Detector | Expert | Kind of error | Share of tissue | AUROC, all tissue | "
             "same true class | net predicts the wrong label | mean score wrong / right |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, variant, entry in _auroc_runs(results["summary"]):
        for e, a in entry["auroc"].items():
            for name in _detectors(entry):
                s = a["scores"][name]
                for kind in s["auroc"]:
                    extra = (f"{_cell(a['model_agrees'])} % | {_num(s['mean_wrong'][0])} / {_num(s['mean_right'][0])}"
                             if kind == "all" else " | ")
                    lines.append(
                        f"| {model} | {variant} | {name} | {_expert_title(results, e)} | {kind} | "
                        f"{100 * _nan(a['error_fraction'][kind]):.2f} % | {_cell(s['auroc'][kind], 1.0)} | "
                        f"{_cell(s['auroc_same_class'][kind], 1.0)} | {extra} |")
    return lines


def _num(v, digits=3) -> str:
    return "—" if v is None or math.isnan(_nan(v)) else f"{_nan(v):.{digits}f}"


def _row_text(row, digits=2) -> str:
    return "[" + " ".join("—" if v is None or math.isnan(_nan(v)) else f"{_nan(v):.{digits}f}" for v in row) + "]"




def _matrix_summary(results: dict) -> list[str]:
    """Max abs difference of estimated and true rows: whole tissue first, then each biased area,
    the pixel-wise model beside the global one."""
    lines = ["| Model | Variant | Expert | Area | Rows compared | max abs diff, pixel-wise | max abs diff, global |",
             "|---|---|---|---|---|---|---|"]
    any_row = False
    for model, variants in results["summary"].items():
        for variant, entry in variants.items():
            pix, glob = entry.get("confusion_matrices") or {}, entry.get("confusion_matrices_global") or {}
            areas = sorted(pix, key=lambda a: (a != "tissue", a))
            for e in sorted({e for a in areas for e in pix[a]}):
                for area in areas:
                    if e not in pix[area]:
                        continue
                    any_row = True
                    rows = ", ".join(GLEASON_CLASSES[j] for j in pix[area][e]["rows_compared"] or []) or "none"
                    g = (glob.get(area) or {}).get(e)
                    what = "whole tissue" if area == "tissue" else f"biased area {area}"
                    lines.append(f"| {model} | {variant} | {_expert_title(results, e)} | {what} | {rows} | "
                                 f"{_cell(pix[area][e]['max_abs_diff'], 1.0)} | "
                                 f"{_cell(g['max_abs_diff'], 1.0) if g else '—'} |")
    return lines if any_row else ["(no confusion-model run)"]


def _matrix_table(results: dict) -> list[str]:
    lines = ["| Model | Variant | Matrix model | Area | Expert | Row (true class) | True row | Estimated row | "
             "max abs diff |", "|---|---|---|---|---|---|---|---|---|"]
    any_row = False
    for model, variants in results["summary"].items():
        for variant, entry in variants.items():
            for key, label in MATRIX_MODELS:
                for area, experts in (entry.get(key) or {}).items():
                    for e, m in experts.items():
                        rows = m["rows_compared"] or []
                        for j in rows:
                            any_row = True
                            lines.append(f"| {model} | {variant} | {label} | {area} | {_expert_title(results, e)} | "
                                         f"{GLEASON_CLASSES[j]} | {_row_text(m['true'][j])} | "
                                         f"{_row_text(m['estimated'][j])} | "
                                         f"{_cell(m['max_abs_diff'], 1.0) if j == rows[0] else ''} |")
    if not any_row:
        return ["(no confusion-model run)"]
    return lines + ["", "Columns of a row: the label written, in the order " + ", ".join(GLEASON_CLASSES)
                    + "; the max abs difference is over every compared row of the area."]


def _quality_rows(results: dict, quality: dict) -> list[str]:
    lines = ["| Labels (no model) | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |",
             "|---|---|---|---|---|---|"]
    for name, q in quality.items():
        if not isinstance(q, dict) or "dice" not in q:
            continue
        label = f"expert {_expert_title(results, name)}" if name in results["data"]["experts"] else name
        cells = [q["mean_dice"]] + [q["dice"][c] for c in COLUMNS]
        text = ["—" if v is None or math.isnan(_nan(v)) else f"{100 * v:.2f}" for v in cells]
        lines.append(f"| {label} | " + " | ".join(text) + " |")
    return lines


def _quality_tables(results: dict) -> list[str]:
    quality = results["data"]["label_quality_on_test"]
    lines = _quality_rows(results, quality)
    if "on tie pixels" in quality:
        lines += ["", f"On the tie pixels ({100 * _nan(quality['tie_fraction_of_tissue']):.1f} % of the test tissue):",
                  "", *_quality_rows(results, quality["on tie pixels"])]
    return lines


def _panel_lines(results: dict) -> list[str]:
    stats = results["data"].get("panel_statistics")
    if not stats:
        return []
    lines = ["## The panel (all cores, measured from the labels)", "",
             "| Pair | Cohen's κ on tissue |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in stats["pairwise_kappa"].items()]
    lines += ["", "| Expert | Role | Accuracy on tissue | κ to the truth |", "|---|---|---|---|"]
    for e, acc in stats["accuracy_vs_truth"].items():
        info = results["data"]["experts"].get(e, {})
        lines.append(f"| {_expert_title(results, e)} | ({info.get('role', '?')}) {info.get('description', '')} | "
                     f"{100 * acc:.1f} % | {stats['kappa_vs_truth'][e]:.3f} |")
    lines += ["", "| Bias | Experts | Role | Share of tissue | Description |", "|---|---|---|---|---|"]
    for b, info in (results["data"].get("biases") or {}).items():
        lines.append(f"| {b} | {', '.join(info['experts'])} | ({info['role']}) | "
                     f"{100 * stats['pattern_fraction_of_tissue'][b]:.1f} % | {info['description']} |")
    lines += ["", f"Tie pixels (the vote of the core's experts is a tie): "
              f"{100 * stats['tie_fraction_of_tissue']:.1f} % of all tissue.", ""]
    return lines


def _trace_table(runs: list[dict], points=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0)) -> list[str]:
    """Mean logged weight (re-weighting) or off-diagonal mass (confusion) per expert, seed 0."""
    lines = []
    for r in runs:
        if r["seed"] != 0 or VARIANTS[r["variant"]].annotator == "none":
            continue
        tr = r["trace"]
        keys = sorted(k for k in tr if k.startswith(("weight/", "error/")))
        if not keys:
            continue
        lines += ["", f"{r['model']}, {r['variant']}:", "",
                  "| iteration | λ2 | " + " | ".join(f"mean {k}" for k in keys) + " |",
                  "|---|---|" + "---|" * len(keys)]
        its = tr["iteration"]
        rows = sorted({int(np.argmin(np.abs(np.array(its) - p * its[-1]))) for p in points})
        for i in rows:
            lines.append(f"| {its[i]} | {tr['lambda2'][i]:.3f} | " + " | ".join(_num(tr[k][i]) for k in keys) + " |")
    return lines or ["(no annotator-model run)"]


def _detector_descriptions() -> dict[str, str]:
    from .auroc import DETECTORS

    return dict(DETECTORS)


def write_report(out: Path, preset: Preset, data: BenchData, runs: list[dict], command: str | None,
                 wall_seconds: float) -> dict:
    trained_now = sum(1 for r in runs if r.get("trained_now"))
    runs = [{k: v for k, v in r.items() if k != "trained_now"} for r in runs]
    summary = aggregate(runs)
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    history_path = out / "invocations.json"  # a continued benchmark keeps the earlier wall times
    history = json.loads(history_path.read_text()) if history_path.exists() else []
    if not history and (out / "results.json").exists():  # a report written before the history was kept
        old = json.loads((out / "results.json").read_text())
        history = [{"date": old.get("date"), "command": old.get("command"),
                    "wall_seconds": old.get("wall_seconds_this_invocation", 0.0), "runs_trained": None}]
    history.append({"date": date, "command": command, "wall_seconds": wall_seconds,
                    "runs_trained": trained_now})
    history_path.write_text(json.dumps(history, indent=1) + "\n")
    meta = {"command": command, "git_commit": git_commit(), "machine": machine(), "date": date,
            "wall_seconds_this_invocation": wall_seconds,
            "wall_seconds_all_invocations": sum(h["wall_seconds"] for h in history), "invocations": history,
            "run_seconds_total": sum(r["train_seconds"] + r["eval_seconds"] for r in runs)}
    results = {**meta, "preset": preset.to_dict(),
               "variants": {k: {**VARIANTS[k].__dict__} for k in preset.variants},
               "data": {"panel": data.panel, "split": data.split.to_dict(), "single_expert": data.single_expert,
                        "fingerprint": data.fingerprint, "figure_core": data.figure_core,
                        "label_quality_on_test": data.label_quality,
                        "experts": {e: data.expert_info(e) for e in preset.train_experts},
                        "biases": data.biases(), "kind_appearance": data.kind_appearance(),
                        "panel_statistics": data.panel_statistics},
               "detectors": _detector_descriptions(), "summary": summary, "runs": runs}
    results = clean(results)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    figures = write_figures(out, preset, results)
    (out / "table.md").write_text(render_markdown(results, figures))
    return results


def render_markdown(results: dict, figures: list[str]) -> str:
    p = results["preset"]
    models = [tuple(m) for m in p["models"]]
    single = results["data"]["single_expert"]
    counts = {k: len(v) for k, v in results["data"]["split"].items()}
    noisy = results["data"].get("panel") == "noisy"
    test_by = (f"annotated like the training cores ({100 * p.get('pair_fraction', 0):.0f} % by two experts)"
               if noisy else "by all six")
    ref_title = ("the vote of the test core's experts (A, B, C or a pair)" if noisy
                 else "the vote of all six experts (the paper's protocol)")
    lines = [f"# Noisy-label benchmark, preset `{p['name']}`", "",
             f"- command: `{results['command']}`", f"- git commit: `{results['git_commit']}`",
             f"- machine: {results['machine']}", f"- date: {results['date']}",
             f"- wall time: {results['wall_seconds_all_invocations'] / 60:.1f} min over "
             f"{len(results['invocations'])} invocation(s) ({results['run_seconds_total'] / 60:.1f} min of "
             f"training + evaluation in the runs)",
             f"- data: {counts['train']} train / {counts['val']} val cores by experts "
             f"{', '.join(p['train_experts'])}; {counts['test']} test cores {test_by}; {p['size']}² px; "
             f"data seed {p['data_seed']}; panel `{p.get('panel', 'six')}`",
             f"- training: {p['iters']} iterations, batch {p['batch_size']}, lr {p['lr']}, λ step {p['lambda_step']}, "
             f"weighting / confusion CNN stride {p['weight_stride']} (input ×{p.get('weight_input_scale', 1.0)}), "
             f"{p['checkpoint']} checkpoint, seeds 0…{p['seeds'] - 1}",
             "", "Dice (%) on the test cores, mean ± std over seeds.", "",
             "## Against the known truth", "", *_dice_table(results["summary"], "truth", models, single), "",
             "## Against the known truth, on the tie pixels", "",
             "Tissue pixels where the vote of the test core's experts is a tie (two experts who differ, "
             "or three who all differ): where the vote must break a tie.", "",
             *_dice_table(results["summary"], "truth_ties", models, single), "",
             f"## Against {ref_title}", "",
             *_dice_table(results["summary"], "vote6", models, single), "",
             "## The labels themselves against the truth (test cores)", "",
             *_quality_tables(results), "",
             *_panel_lines(results),
             "## Do the error maps point at the wrong expert?", "",
             "AUROC (mean ± std over seeds) of each detector for each training expert's wrong pixels, split by "
             "the kind of error. Positives: the expert's wrong pixels of that kind; negatives: every tissue pixel "
             "the expert labelled right (other kinds' errors left out). Detectors: `1 − w` (re-weighting runs); "
             "the confusion model's error map given the expert's label and its image-only map (before seeing "
             "the label), both from one prediction; the same two maps of a global model, one confusion matrix "
             "per expert for every pixel, fitted on the run's training cores with the run's own network "
             "probabilities (one soft-count pass; Zhang et al.'s image-independent baseline); and two baselines "
             "from the segmentation network alone, `1 − p(label written)` and `1 − max p`. A map shows what the "
             "annotator model adds only where it scores above these baselines.", "",
             "### All tissue", "", *_auroc_headline(results, "auroc"),
             "### Against same-true-class negatives", "",
             "Only pairs of a wrong pixel and a right pixel of the same true class count (e.g. textured G3 "
             "called G4 against G3 labelled G3), so telling tumour from benign earns nothing here.", "",
             *_auroc_headline(results, "auroc_same_class"),
             "### Every AUROC", "", *_auroc_table(results), "",
             "results.json also keeps `auroc_subset_network_right*`: the same AUROCs on the subset of the "
             "tissue the segmentation network predicts right, a favourable subset that earlier reports "
             "headlined; they are not shown here.", "",
             "## Estimated against true confusion matrices (test cores)", "",
             "Pooled over the test cores where the expert annotated. Pixel-wise model: each core's matrix as "
             "the prediction gives it (on the whole tissue, averaged over the tissue mask the pipeline computes "
             "from the image; on a biased area, over that area), weighted by the network's probability of the "
             "row's class. Global model: its one matrix per expert. True rows: the truth against the expert's "
             "label on the same pixels.", "", *_matrix_summary(results), "", *_matrix_table(results), "",
             "## Per-expert means during training (seed 0; logged `weight/<expert>` or `error/<expert>`)",
             *_trace_table(results["runs"]), ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


__all__ = ["aggregate", "write_report", "render_markdown", "write_figures", "clean", "git_commit", "machine"]
