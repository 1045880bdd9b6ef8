"""The ablation report's figures (matplotlib, Agg): reliability maps of the figure core per
annotator variant, the per-expert means over iterations, Dice overall and on tie pixels, and
estimated against true confusion matrices. The tables are :mod:`.report`'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.classes import GLEASON_CLASSES
from .presets import VARIANTS, Preset


#: The confusion matrices a run reports: Zhang et al.'s pixel-wise ones and the global baseline.
MATRIX_MODELS = (("confusion_matrices", "pixel-wise"), ("confusion_matrices_global", "global"))


def as_float(v) -> float:
    """A results.json number: ``None`` (strict JSON's NaN) as NaN."""
    return float("nan") if v is None else float(v)


def expert_title(results: dict, e: str) -> str:
    info = results["data"]["experts"].get(e) or {}
    return f"{e} ({info.get('kind', '?')})"


def write_figures(out: Path, preset: Preset, results: dict) -> list[str]:
    """Reliability maps of the figure core per annotator variant, the per-expert means over
    iterations, Dice overall and on tie pixels, and estimated against true confusion matrices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    runs = results["runs"]
    model = preset.models[0][0]
    for variant in preset.variants:
        v = VARIANTS[variant]
        path = out / "runs" / model / variant / "seed0" / "figure_core.npz"
        if v.annotator != "none" and path.exists():
            prefix = "weight_maps" if v.reweight else "error_maps"
            name = f"{prefix}_{variant.replace('+', '-')}.png"
            _reliability_figure(plt, np.load(path), out / name, f"{model}, {variant}, seed 0", results)
            written.append(name)
    annotated = [r for r in runs if VARIANTS[r["variant"]].annotator != "none" and r["model"] == model]
    if annotated:
        variants = sorted({r["variant"] for r in annotated})
        fig, axes = plt.subplots(1, len(variants), figsize=(5.5 * len(variants), 3.6), squeeze=False)
        for ax, variant in zip(axes[0], variants):
            mine = [r for r in annotated if r["variant"] == variant]
            for r in mine:
                tr = r["trace"]
                first = r["seed"] == min(x["seed"] for x in mine)
                for i, k in enumerate(sorted(k for k in tr if k.startswith(("weight/", "error/")))):
                    y = np.array([as_float(v) for v in tr[k]])
                    keep = ~np.isnan(y)  # a term is missing where the batch lacked that expert
                    ax.plot(np.array(tr["iteration"])[keep], y[keep], color=f"C{i}", alpha=0.8,
                            label=f"{k}" if first else None)
                ax.plot(tr["iteration"], tr["lambda2"], color="k", ls="--", lw=1, label="λ2" if first else None)
            what = "mean weight" if VARIANTS[variant].reweight else "mean off-diagonal mass"
            ax.set(title=f"{model}, {variant} (all seeds)", xlabel="iteration", ylabel=f"{what} / λ2", ylim=(0, 1))
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "weights_over_iterations.png", dpi=110)
        plt.close(fig)
        written.append("weights_over_iterations.png")
    if _dice_figure(plt, results, out / "dice_overall_and_ties.png", model):
        written.append("dice_overall_and_ties.png")
    if _matrix_figure(plt, results, out / "confusion_matrices.png", model):
        written.append("confusion_matrices.png")
    return written


def _dice_figure(plt, results: dict, path: Path, model: str) -> bool:
    entries = results["summary"].get(model, {})
    variants = [v for v, e in entries.items() if "truth_ties" in e]
    if not variants:
        return False
    fig, ax = plt.subplots(figsize=(1.1 * len(variants) + 3, 3.8))
    x = np.arange(len(variants))
    for k, (ref, label) in enumerate((("truth", "all pixels"), ("truth_ties", "tie pixels"))):
        m = [100 * as_float(entries[v][ref]["mean"][0]) for v in variants]
        s = [100 * as_float(entries[v][ref]["mean"][1]) for v in variants]
        ax.bar(x + (k - 0.5) * 0.38, m, 0.38, yerr=s, capsize=3, label=label)
    ax.set_xticks(x, variants, rotation=30, ha="right")
    ax.set(ylabel="mean Dice vs truth (%)", title=f"{model}: Dice to the truth, mean ± std over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _matrix_figure(plt, results: dict, path: Path, model: str) -> bool:
    """For each confusion variant: true and estimated matrix of every (biased area, expert)."""
    entries = {}
    for v, e in results["summary"].get(model, {}).items():
        for key, label in MATRIX_MODELS:
            if e.get(key):
                entries[v if label == "pixel-wise" else f"{v}, global"] = e[key]
    if not entries:
        return False
    first = next(iter(entries.values()))
    pairs = [("tissue", e) for e in first.get("tissue", {})]  # whole tissue first, then the biased areas
    pairs += [(a, e) for a, experts in first.items() for e in experts if a != "tissue"]
    cols = 1 + len(entries)
    fig, axes = plt.subplots(len(pairs), cols, figsize=(2.9 * cols, 2.7 * len(pairs)), squeeze=False)
    for row, (area, e) in enumerate(pairs):
        true = np.array([[as_float(v) for v in r] for r in next(iter(entries.values()))[area][e]["true"]])
        panels = [("true", true)] + [
            (f"{v} (max |Δ| {100 * as_float(m[area][e]['max_abs_diff'][0]):.0f} %)",
             np.array([[as_float(x) for x in r] for r in m[area][e]["estimated"]])) for v, m in entries.items()]
        compared = set(next(iter(entries.values()))[area][e]["rows_compared"] or [])
        for ax, (title, mat) in zip(axes[row], panels):
            ax.imshow(mat, cmap="Blues", vmin=0, vmax=1)
            for i in range(mat.shape[0]):
                if i not in compared:  # rows the truth lacks on this area: shown, not scored
                    ax.axhspan(i - 0.5, i + 0.5, color="white", alpha=0.7)
            for (i, j), val in np.ndenumerate(mat):
                if not np.isnan(val):
                    ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if val > 0.6 else "black")
            ax.set_xticks(range(len(GLEASON_CLASSES)), GLEASON_CLASSES, fontsize=7)
            ax.set_yticks(range(len(GLEASON_CLASSES)), GLEASON_CLASSES, fontsize=7)
            ax.set_title(f"{area}\nexpert {e}: {title}", fontsize=8)
            ax.set_xlabel("label written", fontsize=7)
        axes[row][0].set_ylabel("true class", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _reliability_figure(plt, npz, path: Path, title: str, results: dict) -> None:
    """Per training expert: its labels, where they are wrong, and each reliability map of it."""
    from ..data.classes import CLASS_COLORS

    experts = [str(e) for e in npz["experts"]]
    names = [str(n) for n in npz["map_names"]]
    truth, tissue = npz["truth"], npz["tissue"]
    colours = np.array(CLASS_COLORS, dtype=np.uint8)
    cols = 3 + len(names)
    fig, axes = plt.subplots(len(experts), cols, figsize=(3.1 * cols, 3.1 * len(experts)), squeeze=False)
    for row, e in enumerate(experts):
        wrong = (npz["labels"][row] != truth) & tissue
        ax = axes[row]
        ax[0].imshow(npz["image"] if row == 0 else np.where(tissue[..., None], colours[truth], 255))
        ax[0].set_title(f"core {npz['core']}" if row == 0 else "truth", fontsize=9)
        ax[1].imshow(np.where(tissue[..., None], colours[npz["labels"][row]], 255))
        ax[1].set_title(f"expert {expert_title(results, e)}", fontsize=9)
        ax[2].imshow(np.where(tissue, 0.15, 0) + 0.85 * wrong, cmap="Reds", vmin=0, vmax=1)
        ax[2].set_title(f"wrong pixels ({100 * wrong[tissue].mean():.1f} % of tissue)", fontsize=9)
        for k, name in enumerate(names):
            im = ax[3 + k].imshow(np.where(tissue, npz["maps"][row, k], np.nan), cmap="magma", vmin=0, vmax=1)
            ax[3 + k].set_title(f"{name} (high = distrusted)", fontsize=9)
            fig.colorbar(im, ax=ax[3 + k], fraction=0.046)
        for a in ax:
            a.set_xticks([]), a.set_yticks([])
    fig.suptitle(title + " — benign grey, G3 red, G4 green, G5 blue")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["write_figures", "as_float", "expert_title"]
