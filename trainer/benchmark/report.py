"""Benchmark report: ``results.json``, ``table.md`` in Table 2's layout, and two figures.

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

from ..synthetic import EXPERT_BIASES
from .auroc import KIND_APPEARANCE_DEPENDENT
from .data import BenchData
from .presets import VARIANTS, Preset

COLUMNS = ("benign", "G3", "G4", "G5")
HEADER = ("| Method | GAFL | Re-weighting | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |\n"
          "|---|---|---|---|---|---|---|---|")


def clean(obj):
    """JSON-safe copy: NaN → None, numpy scalars → Python numbers."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package (read-only), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}")


def _ms(values) -> list[float]:
    """[mean, sample std] ignoring NaN/None; std 0 for one value."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return [float("nan"), float("nan")]
    return [float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0]


def aggregate(runs: list[dict]) -> dict:
    """summary[model][variant] → Dice (truth, vote of six), AUROC and mean weights as [mean, std]."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["variant"]), []).append(r)
    summary: dict = {}
    for (model, variant), rs in groups.items():
        entry = {"seeds": sorted(r["seed"] for r in rs)}
        for ref in ("truth", "vote6"):
            entry[ref] = {c: _ms([r[f"dice_{ref}"][c] for r in rs]) for c in COLUMNS}
            entry[ref]["mean"] = _ms([r[f"mean_dice_{ref}"] for r in rs])
        if rs[0].get("auroc"):
            entry["auroc"] = {}
            for e, first in rs[0]["auroc"].items():
                a = {m: {k: _ms([r["auroc"][e][m][k] for r in rs]) for k in first[m]}
                     for m in ("auroc", "auroc_same_class")}
                a["error_fraction"] = dict(first["error_fraction"])  # the labels: the same in every run
                for m in ("mean_weight_wrong", "mean_weight_right", "model_agrees"):
                    a[m] = _ms([r["auroc"][e][m] for r in rs])
                entry["auroc"][e] = a
        summary.setdefault(model, {})[variant] = entry
    return summary


def _cell(ms, scale=100.0) -> str:
    m, s = ms
    return "—" if m is None or (isinstance(m, float) and math.isnan(m)) else f"{scale * m:.2f} ± {scale * s:.2f}"


def _dice_table(summary: dict, ref: str, models: list[tuple[str, str | None]], single: str) -> list[str]:
    lines = [HEADER]
    for model, encoder in models:
        name = model.upper().replace("NET", "Net") + (f" ({encoder})" if encoder else "")
        for variant, entry in summary.get(model, {}).items():
            v = VARIANTS[variant]
            method = {"vote": name, "staple": f"{name} on STAPLE", "single": f"{name} on expert {single}"}[v.labels]
            cells = [_cell(entry[ref]["mean"])] + [_cell(entry[ref][c]) for c in COLUMNS]
            lines.append(f"| {method} | {'yes' if v.loss == 'gafl' else ''} | {'yes' if v.reweight else ''} | "
                         + " | ".join(cells) + " |")
    return lines


def _auroc_table(summary: dict) -> list[str]:
    lines = ["| Model | Variant | Expert | Kind of error | Appearance-dependent | Share of tissue | "
             "AUROC of 1 − w | AUROC, same true class | net predicts the wrong label | mean w wrong / right |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, variants in summary.items():
        for variant, entry in variants.items():
            for e, a in (entry.get("auroc") or {}).items():
                for kind, ms in a["auroc"].items():
                    dep = "—" if kind == "all" else ("yes" if KIND_APPEARANCE_DEPENDENT.get(kind) else "no")
                    extra = (f"{_cell(a['model_agrees'])} % | {a['mean_weight_wrong'][0]:.3f} / "
                             f"{a['mean_weight_right'][0]:.3f}" if kind == "all" else " | ")
                    lines.append(f"| {model} | {variant} | {e} ({EXPERT_BIASES[e]['kind']}) | {kind} | {dep} | "
                                 f"{100 * a['error_fraction'][kind]:.2f} % | {_cell(ms, 1.0)} | "
                                 f"{_cell(a['auroc_same_class'][kind], 1.0)} | {extra} |")
    return lines


def _quality_table(quality: dict) -> list[str]:
    lines = ["| Labels (no model) | Mean dice | Benign | G-Grade 3 | G-Grade 4 | G-Grade 5 |",
             "|---|---|---|---|---|---|"]
    for name, q in quality.items():
        label = f"expert {name} ({EXPERT_BIASES[name]['kind']})" if name in EXPERT_BIASES else name
        cells = [q["mean_dice"]] + [q["dice"][c] for c in COLUMNS]
        text = ["—" if v is None or math.isnan(v) else f"{100 * v:.2f}" for v in cells]
        lines.append(f"| {label} | " + " | ".join(text) + " |")
    return lines


def _trace_table(runs: list[dict], points=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0)) -> list[str]:
    """Mean logged weight per expert (over seeds) at a few fractions of the run: a collapse shows."""
    lines = []
    for r in runs:
        if r["seed"] != 0 or not VARIANTS[r["variant"]].reweight:
            continue
        tr = r["trace"]
        keys = sorted(k for k in tr if k.startswith("weight/"))
        if not lines:
            lines = ["| Model | Variant | iteration | λ2 | " + " | ".join(f"mean w{k[7:]}" for k in keys) + " |",
                     "|---|---|---|---|" + "---|" * len(keys)]
        its = tr["iteration"]
        rows = sorted({int(np.argmin(np.abs(np.array(its) - p * its[-1]))) for p in points})
        for i in rows:
            lines.append(f"| {r['model']} | {r['variant']} | {its[i]} | {tr['lambda2'][i]:.3f} | "
                         + " | ".join(f"{tr[k][i]:.3f}" for k in keys) + " |")
    return lines


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
               "variants": {k: VARIANTS[k].__dict__ for k in preset.variants},
               "data": {"split": data.split.to_dict(), "single_expert": data.single_expert,
                        "fingerprint": data.fingerprint, "figure_core": data.figure_core,
                        "label_quality_on_test": data.label_quality,
                        "experts": {e: EXPERT_BIASES[e] for e in preset.train_experts}},
               "summary": summary, "runs": runs}
    results = clean(results)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    figures = write_figures(out, preset, runs)
    (out / "table.md").write_text(render_markdown(results, figures))
    return results


def render_markdown(results: dict, figures: list[str]) -> str:
    p = results["preset"]
    models = [tuple(m) for m in p["models"]]
    single = results["data"]["single_expert"]
    counts = {k: len(v) for k, v in results["data"]["split"].items()}
    lines = [f"# Noisy-label benchmark, preset `{p['name']}`", "",
             f"- command: `{results['command']}`", f"- git commit: `{results['git_commit']}`",
             f"- machine: {results['machine']}", f"- date: {results['date']}",
             f"- wall time: {results['wall_seconds_all_invocations'] / 60:.1f} min over "
             f"{len(results['invocations'])} invocation(s) ({results['run_seconds_total'] / 60:.1f} min of "
             f"training + evaluation in the runs)",
             f"- data: {counts['train']} train / {counts['val']} val cores by experts "
             f"{', '.join(p['train_experts'])}; {counts['test']} test cores by all six; {p['size']}² px; "
             f"data seed {p['data_seed']}",
             f"- training: {p['iters']} iterations, batch {p['batch_size']}, lr {p['lr']}, λ step {p['lambda_step']}, "
             f"weighting-CNN stride {p['weight_stride']}, {p['checkpoint']} checkpoint, seeds 0…{p['seeds'] - 1}",
             "", "Dice (%) on the test cores, mean ± std over seeds.", "",
             "## Against the known truth", "", *_dice_table(results["summary"], "truth", models, single), "",
             "## Against the vote of all six experts (the paper's protocol)", "",
             *_dice_table(results["summary"], "vote6", models, single), "",
             "## The labels themselves against the truth (test cores)", "",
             *_quality_table(results["data"]["label_quality_on_test"]), "",
             "## Do the weight maps point at the wrong expert? (test cores, tissue pixels)", "",
             *_auroc_table(results["summary"]), "",
             "## Mean weight per expert during training (seed 0; logged `weight/<expert>`)", "",
             *_trace_table(results["runs"]), ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def write_figures(out: Path, preset: Preset, runs: list[dict]) -> list[str]:
    """weight_maps_<variant>.png (each training expert: labels, errors, weight) and weights_over_iterations.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    model = preset.models[0][0]
    for variant in ("reweight", "gafl+reweight"):
        path = out / "runs" / model / variant / "seed0" / "figure_core.npz"
        if path.exists():
            name = f"weight_maps_{variant.replace('+', '-')}.png"
            _weight_map_figure(plt, np.load(path), out / name, f"{model}, {variant}, seed 0")
            written.append(name)
    rw = [r for r in runs if VARIANTS[r["variant"]].reweight and r["model"] == model]
    if rw:
        variants = sorted({r["variant"] for r in rw})
        fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 3.6), squeeze=False)
        for ax, variant in zip(axes[0], variants):
            for r in (r for r in rw if r["variant"] == variant):
                tr = r["trace"]
                first = r["seed"] == min(x["seed"] for x in rw)
                for i, k in enumerate(sorted(k for k in tr if k.startswith("weight/"))):
                    ax.plot(tr["iteration"], tr[k], color=f"C{i}", alpha=0.8, label=f"expert {k[7:]}" if first else None)
                ax.plot(tr["iteration"], tr["lambda2"], color="k", ls="--", lw=1, label="λ2" if first else None)
            ax.set(title=f"{model}, {variant} (all seeds)", xlabel="iteration", ylabel="mean weight / λ2",
                   ylim=(0, 1))
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "weights_over_iterations.png", dpi=110)
        plt.close(fig)
        written.append("weights_over_iterations.png")
    return written


def _weight_map_figure(plt, npz, path: Path, title: str) -> None:
    """Per training expert: its labels, where they are wrong, and the weight map eq. (2) gave it."""
    from ..data.classes import CLASS_COLORS

    experts = [str(e) for e in npz["experts"]]
    truth, tissue = npz["truth"], npz["tissue"]
    colours = np.array(CLASS_COLORS, dtype=np.uint8)
    fig, axes = plt.subplots(len(experts), 4, figsize=(12.4, 3.1 * len(experts)), squeeze=False)
    for row, e in enumerate(experts):
        wrong = (npz["labels"][row] != truth) & tissue
        ax = axes[row]
        ax[0].imshow(npz["image"] if row == 0 else np.where(tissue[..., None], colours[truth], 255))
        ax[0].set_title(f"core {npz['core']}" if row == 0 else "truth", fontsize=9)
        ax[1].imshow(np.where(tissue[..., None], colours[npz["labels"][row]], 255))
        ax[1].set_title(f"expert {e} ({EXPERT_BIASES[e]['kind']})", fontsize=9)
        ax[2].imshow(np.where(tissue, 0.15, 0) + 0.85 * wrong, cmap="Reds", vmin=0, vmax=1)
        ax[2].set_title(f"expert {e}: wrong pixels ({100 * wrong[tissue].mean():.1f} % of tissue)", fontsize=9)
        im = ax[3].imshow(np.where(tissue, npz["weights"][row], np.nan), cmap="viridis", vmin=0, vmax=1)
        ax[3].set_title(f"weight:{e} (low = distrusted)", fontsize=9)
        fig.colorbar(im, ax=ax[3], fraction=0.046)
        for a in ax:
            a.set_xticks([]), a.set_yticks([])
    fig.suptitle(title + " — benign grey, G3 red, G4 green, G5 blue")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["aggregate", "write_report", "render_markdown", "write_figures", "clean", "git_commit", "machine"]
