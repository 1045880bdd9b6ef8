"""The ``cpu-real`` ablation's summary (mean ± sd over seeds) and its ``table.md``
(:mod:`.real` runs and scores it)."""

from __future__ import annotations

import math

import numpy as np


def _ms(values) -> list | None:
    """[mean, sd] over the finite values (sd 0 for one value), None when there are none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return None
    return [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0]


def summarise(runs: list[dict], experts: tuple[str, ...]) -> dict:
    """Per variant and subset: mean ± sd over seeds of Dice, each AUROC and ρ."""
    out: dict = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        out[variant] = {}
        for subset in ("test", "train"):
            rs = [r[subset] for r in mine]
            entry = {"seeds": len(rs), "dice_mean": _ms([r["dice"]["mean"] for r in rs]),
                     "dice": {c: _ms([r["dice"]["per_class"][c] for r in rs]) for c in rs[0]["dice"]["per_class"]},
                     "spearman": {k: _ms([r["spearman"][k] for r in rs]) for k in rs[0]["spearman"]},
                     "experts": {}}
            for e in experts:
                es = [r["experts"][e] for r in rs if e in r["experts"]]
                if not es:
                    continue
                entry["experts"][e] = {
                    "error_rate": es[0]["error_rate"],
                    "mean_predicted_error": _ms([x["mean_predicted_error"] for x in es]),
                    **{metric: {k: _ms([x[metric].get(k) for x in es]) for k in es[0][metric]}
                       for metric in ("auroc_all", "auroc_same_gold_class")},
                }
            out[variant][subset] = entry
    return out


def _cell(ms, scale=1.0, digits=3) -> str:
    if ms is None:
        return "—"
    m, s = ms
    return f"{scale * m:.{digits}f}" + (f" ± {scale * s:.{digits}f}" if s else "")


def render_markdown(results: dict) -> str:
    from .auroc import BASELINE_LABEL, BASELINE_MAX

    p, data = results["preset"], results["data"]
    lines = [
        "# cpu-real: BU-BIL dataset 1, real experts, scored against the gold standard",
        "",
        f"Data: {data['citation']}. {len(data['split']['train'])} training and {len(data['split']['test'])} test "
        f"images (seeded split {data['split']['seed']}); training reads the {len(data['experts'])} experts' masks "
        "only, the gold standard is used only here. Everything is compared at the model's resolution "
        "(gold and masks resized nearest, as in training).",
        "",
        f"- command: `{results['command']}`",
        f"- git commit: `{results['git_commit']}`",
        f"- machine: {results['cpu']}, {results['machine']}",
        f"- date: {results['date']}",
        f"- wall time of this invocation: {results['wall_seconds_this_invocation'] / 60:.1f} min "
        f"(training of all runs: {results['train_seconds_all_runs'] / 60:.1f} min)",
        f"- model: {p['model']}-{p['encoder']} at {p['size']}², {p['iters']} iterations, batch {p['batch_size']}, "
        f"lr {p['lr']}, {p['cpu_threads']} torch thread(s), seeds {p['seeds']}",
        "",
    ]
    summary = results["summary"]
    for subset, title in (("test", "Test images"), ("train", "Training images (annotations seen in training; "
                                                                 "gold never seen)")):
        ref = results["reference"][subset]
        lines += [f"## {title}", "", "### Dice vs gold", "", "| who | mean | background | cell |", "|---|---|---|---|"]
        for variant, s in summary.items():
            st = s[subset]
            lines.append(f"| run: {variant} ({st['seeds']} seed{'s' * (st['seeds'] != 1)}) | {_cell(st['dice_mean'])} "
                         f"| {_cell(st['dice'].get('background'))} | {_cell(st['dice'].get('cell'))} |")
        d = ref["vote"]["dice"]
        lines.append(f"| vote of the experts | {d['mean']:.3f} | {d['per_class']['background']:.3f} "
                     f"| {d['per_class']['cell']:.3f} |")
        for e, x in ref["experts"].items():
            d = x["dice"]
            lines.append(f"| expert {e} | {d['mean']:.3f} | {d['per_class']['background']:.3f} "
                         f"| {d['per_class']['cell']:.3f} |")
        model_variants = [v for v, s in summary.items()
                          if any(x["auroc_all"].get("error map, image only") for x in s[subset]["experts"].values())]
        for variant in model_variants or list(summary)[:1]:
            st = summary[variant][subset]
            cols = ["error map, given the label", "error map, image only", BASELINE_LABEL, BASELINE_MAX,
                    "global matrix, given the label", "global matrix, image only"]
            for metric, what in (("auroc_all", "all pixels"),
                                 ("auroc_same_gold_class", "negatives of the same gold class")):
                lines += ["", f"### Error-map AUROC vs each expert's departures from gold ({what}) — run: {variant}",
                          "", "| expert | error rate | " + " | ".join(cols) + " |",
                          "|---" * (len(cols) + 2) + "|"]
                for e, x in st["experts"].items():
                    rate = "—" if x["error_rate"] is None else f"{100 * x['error_rate']:.2f} %"
                    lines.append(f"| {e} | {rate} | " + " | ".join(_cell(x[metric].get(c)) for c in cols) + " |")
            lines += ["", f"### Ranking the experts' reliability — run: {variant}", "",
                      "| expert | true error rate | mean predicted error (image-only map) |", "|---|---|---|"]
            for e, x in st["experts"].items():
                rate = "—" if x["error_rate"] is None else f"{100 * x['error_rate']:.2f} %"
                lines.append(f"| {e} | {rate} | {_cell(x['mean_predicted_error'], 100, 2)} % |")
            lines += ["", "Spearman ρ (mean predicted error vs true error rate): "
                      + "; ".join(f"{k}: {_cell(v)}" for k, v in st["spearman"].items())]
        lines.append("")
    lines += ["An expert without any departure from gold has no AUROC (—). Values: mean ± sd over seeds.", ""]
    if data["notes"]:
        lines += ["Notes on the data: " + "; ".join(data["notes"]), ""]
    return "\n".join(lines)


__all__ = ["render_markdown", "summarise"]
