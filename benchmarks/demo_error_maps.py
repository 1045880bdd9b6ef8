"""How well the shipped demo model's error maps find each expert's wrong pixels on the demo core.

The core ``make demo`` opens (synthetic seed 3, 1024², not among the model's training cores) has a
known truth. For each training expert the script scores, as detectors of the expert's wrong pixels
(label ≠ truth) on the tissue, at the core's resolution as the viewer shows them:

- ``error:<expert>`` given the expert's label (what the GUI shows) and the image-only map;
- the segmentation network alone: ``1 − p(label written)`` and ``1 − max p``;

each on all tissue and against negatives of the same true class only. Its output is pasted into
the README and docs/ablation.

    python benchmarks/demo_error_maps.py [--checkpoint sample_data/demo_model.pt]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    from _common import machine

    from napari_gleason._sample_data import synthetic_core
    from napari_gleason.demo import DEMO_MODEL
    from trainer.ablation.auroc import BASELINE_LABEL, BASELINE_MAX, auroc, auroc_within_classes, network_baselines
    from trainer.prediction import predict
    from trainer.prediction.predictor import load_predictor
    from trainer.resample import resize_nearest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=DEMO_MODEL, help="default: the shipped demo model")
    a = p.parse_args(argv)
    predictor = load_predictor(a.checkpoint, "cpu", precision="fp32")
    core = synthetic_core(with_truth=True)
    truth = core.extras["truth"]
    out = predict(predictor, core.image, core=core.name, experts=list(core.masks), labels=dict(core.masks))
    probs = np.stack([resize_nearest(out.maps[f"probability:{c}"], truth.shape) for c in predictor.classes])
    print(f"# demo core {core.name} ({truth.shape[0]}², seed 3), checkpoint {a.checkpoint.name}; {machine()}")
    print(f"# {BASELINE_LABEL} and {BASELINE_MAX}: the segmentation network alone")
    print("| expert | wrong pixels of its tissue | map | AUROC, all tissue | AUROC, same true class |")
    print("|---|---|---|---|---|")
    for e in predictor.experts:
        if e not in out.errors:
            continue
        given = resize_nearest(out.errors[e], truth.shape)
        on = ~np.isnan(resize_nearest(out.maps[f"error:{e}"], truth.shape))
        label = core.masks[e]
        labelled = on & (label < len(predictor.classes))
        wrong = (label != truth)[labelled]
        maps = {"error (given the label)": given, "error (image only)": resize_nearest(out.errors_prior[e], truth.shape),
                **network_baselines(probs, np.where(labelled, label, 0))}
        for name, m in maps.items():
            score = m[labelled]
            print(f"| {e} | {100 * wrong.mean():.1f} % | {name} | {auroc(score, wrong):.3f} | "
                  f"{auroc_within_classes(score, wrong, truth[labelled]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
