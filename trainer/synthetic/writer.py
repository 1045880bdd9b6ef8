"""Write a synthetic multi-expert dataset in the Gleason 2019 layout.

::

    out/
      Train Imgs/<core>.jpg                            H&E-like RGB, JPEG quality 90
      Maps{k}_T/<core>_classimg_nonconvex.png          expert k, 8-bit Gleason values 0/1/6/3/4/5
      truth/<core>_classimg_nonconvex.png              the truth, same encoding
      appearance/<core>_flags.png                      bit flags: 1 borderline G3, 2 small G5 focus
      synthetic.json                                   seed, size, experts per core, biases, fractions

Who annotates what mimics the real dataset (paper section 3.1, Fig. 3): about a quarter of the
cores carry all six experts (the paper's test set); the others carry experts 1, 3 and 4 plus a
random subset of 2, 5 and 6. With five or more cores, one core has a single expert and another
lacks expert 3, so both fall out of the paper's train split, as some real cores do.

Everything follows from ``seed``: core ``i`` is drawn from ``SeedSequence(seed, spawn_key=(i,))``
whatever the number of cores, and the files are byte-identical between runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import os_reason
from ..data.classes import CLASS_TO_GLEASON_VALUE, GLEASON_CLASSES
from ..errors import InputError
from .experts import EXPERT_BIASES, EXPERT_NAMES, expert_biases, simulate_experts
from .tissue import FLAG_BORDERLINE_G3, FLAG_SMALL_G5, SyntheticCore, make_core

#: Bump when the same seed would produce different files.
GENERATOR_VERSION = "1.0"

IMAGE_DIR = "Train Imgs"
MASK_SUFFIX = "_classimg_nonconvex.png"
JPEG_QUALITY = 90
MIN_SIZE = 64
MAX_SIZE = 8192
_ASSIGNMENT_KEY = 0x5EED  # spawn key of the stream that assigns experts, apart from the cores'


def core_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of core ``index``: independent of how many cores are written."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def core_name(index: int) -> str:
    """``slide001_core001``-style names, ten cores per slide as a TMA block might hold."""
    return f"slide{index // 10 + 1:03d}_core{index % 10 + 1:03d}"


def assign_experts(cores: int, seed: int) -> list[dict]:
    """For each core: the experts annotating it and the Gleason value each writes for benign."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ASSIGNMENT_KEY,)))
    n_all = max(1, round(0.25 * cores))
    order = rng.permutation(cores)
    all_six = set(order[:n_all].tolist())
    rest = order[n_all:].tolist()
    single = rest[0] if cores >= 5 else None
    no_three = rest[1] if cores >= 5 else None
    plan: list[dict] = []
    for i in range(cores):
        optional = [e for e in ("2", "5", "6") if rng.random() < 0.5]
        if i in all_six:
            experts = list(EXPERT_NAMES)
        elif i == single:
            experts = [str(rng.choice(EXPERT_NAMES))]
        elif i == no_three:
            experts = ["1", "4"] + optional
        else:
            experts = ["1", "3", "4"] + optional
        experts = sorted(experts)
        benign = {e: 6 if rng.random() < EXPERT_BIASES[e]["benign_as_6_prob"] else 1 for e in experts}
        plan.append({"experts": experts, "benign_value": benign})
    # Readers must cope with value 6: make sure it occurs (expert 2 is on every all-six core).
    if not any(6 in p["benign_value"].values() for p in plan):
        first = next(p for p in plan if "2" in p["experts"])
        first["benign_value"]["2"] = 6
    return plan


def plan_from_assignment(assignment: list[list[str]] | list[tuple[str, ...]], seed: int) -> list[dict]:
    """A plan like :func:`assign_experts`'s for a given list of experts per core (e.g. a benchmark's).

    Benign values (1 or 6) are drawn per expert from the same assignment stream as the default plan.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_ASSIGNMENT_KEY,)))
    plan: list[dict] = []
    for i, experts in enumerate(assignment):
        experts = sorted(set(str(e) for e in experts))
        unknown = [e for e in experts if e not in EXPERT_NAMES]
        if not experts or unknown:
            raise InputError(f"core {i}: experts must be a non-empty subset of {list(EXPERT_NAMES)}, "
                             f"got {list(experts)}")
        benign = {e: 6 if rng.random() < EXPERT_BIASES[e]["benign_as_6_prob"] else 1 for e in experts}
        plan.append({"experts": experts, "benign_value": benign})
    return plan


def to_gleason_values(class_map: np.ndarray, core_mask: np.ndarray, benign_value: int = 1) -> np.ndarray:
    """Class indices to Gleason 2019 values: benign -> ``benign_value``, G3-G5 -> 3-5, glass -> 0."""
    lut = np.array(CLASS_TO_GLEASON_VALUE, dtype=np.uint8)
    lut[0] = benign_value
    values = lut[class_map]
    values[~core_mask] = 0
    return values


def _save_png(path: Path, array: np.ndarray) -> None:
    """Single-channel 8-bit PNG (Pillow picks mode "L" for a 2-D uint8 array)."""
    _saved(path, lambda: Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG"))


def _saved(path: Path, save) -> None:
    """``save()``; a system error (a full disk) becomes an :class:`InputError` naming ``path``."""
    try:
        save()
    except OSError as exc:
        raise InputError(f"cannot write it ({os_reason(exc, path) or exc})", path) from exc


def _fractions(core: SyntheticCore) -> dict:
    tissue = core.truth[core.core_mask]
    fractions = np.bincount(tissue, minlength=len(GLEASON_CLASSES)) / max(tissue.size, 1)
    flags = core.flags[core.core_mask]
    return {
        "core_fraction": round(float(core.core_mask.mean()), 4),
        "class_fractions": {n: round(float(c), 4) for n, c in zip(GLEASON_CLASSES, fractions)},
        "borderline_g3_fraction": round(float(((flags & FLAG_BORDERLINE_G3) > 0).mean()), 4),
        "small_g5_fraction": round(float(((flags & FLAG_SMALL_G5) > 0).mean()), 4),
    }


def check_args(out: Path, cores: int, size: int, seed: int) -> None:
    """The synthetic writers' arguments: integers in range, a folder that is new or empty (one InputError)."""
    for name, value in (("cores", cores), ("size", size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"{name} must be an integer, got {value!r}")
    if cores < 1:
        raise InputError(f"cores must be at least 1, got {cores}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    if seed < 0:
        raise InputError(f"seed must be non-negative, got {seed}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError("output folder exists and is not empty; choose a new folder", out)


def write_dataset(out: str | Path, cores: int = 8, size: int = 512, seed: int = 0,
                  assignment: list[list[str]] | None = None) -> dict:
    """Write ``cores`` synthetic cores of ``size``² pixels under ``out``; return the summary.

    ``assignment`` (one list of expert names per core) replaces the paper-like plan of
    :func:`assign_experts`, e.g. for a benchmark whose training experts differ; core ``i`` is the
    same tissue either way. The summary is also written to ``out/synthetic.json``. Raises
    :class:`InputError` when ``out`` exists and is not empty, or an argument is out of range.
    Prints nothing.
    """
    out = Path(out)
    check_args(out, cores, size, seed)
    existed = out.exists()
    try:
        return _write_dataset(out, int(cores), int(size), int(seed), assignment)
    except BaseException as exc:  # a full disk, Ctrl-C: no half-written dataset is left to be read
        if out.exists():
            for made in list(out.iterdir()) if existed else [out]:
                if made.is_dir():
                    shutil.rmtree(made, ignore_errors=True)
                else:
                    made.unlink(missing_ok=True)
        if isinstance(exc, InputError) and exc.path is not None:
            raise InputError(f"{exc.message}; the partial dataset was removed", exc.path) from exc
        raise


def _write_dataset(out: Path, cores: int, size: int, seed: int, assignment: list[list[str]] | None) -> dict:
    if assignment is not None and len(assignment) != cores:
        raise InputError(f"assignment lists experts for {len(assignment)} cores, not {cores}")
    plan = assign_experts(cores, seed) if assignment is None else plan_from_assignment(assignment, seed)
    used = sorted({e for p in plan for e in p["experts"]})
    for folder in [IMAGE_DIR, "truth", "appearance"] + [f"Maps{e}_T" for e in used]:
        _saved(out / folder, lambda: (out / folder).mkdir(parents=True, exist_ok=True))

    records = []
    for i, entry in enumerate(plan):
        name = core_name(i)
        rng = core_rng(seed, i)
        core = make_core(rng, size)
        labels = simulate_experts(core, rng, entry["experts"])
        jpeg = out / IMAGE_DIR / f"{name}.jpg"
        _saved(jpeg, lambda: Image.fromarray(core.image).save(jpeg, format="JPEG", quality=JPEG_QUALITY))
        _save_png(out / "truth" / f"{name}{MASK_SUFFIX}", to_gleason_values(core.truth, core.core_mask))
        _save_png(out / "appearance" / f"{name}_flags.png", core.flags)
        for expert, class_map in labels.items():
            values = to_gleason_values(class_map, core.core_mask, entry["benign_value"][expert])
            _save_png(out / f"Maps{expert}_T" / f"{name}{MASK_SUFFIX}", values)
        records.append(
            {
                "name": name,
                "experts": entry["experts"],
                "all_experts": len(entry["experts"]) == len(EXPERT_NAMES),
                "benign_value": entry["benign_value"],
                **_fractions(core),
            }
        )

    summary = {
        "generator": "trainer.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": size,
        "num_cores": cores,
        "layout": "gleason2019",
        "classes": list(GLEASON_CLASSES),
        "gleason_values": {"background": 0, "benign": [1, 6], "G3": 3, "G4": 4, "G5": 5},
        "files": {
            "image": f"{IMAGE_DIR}/<core>.jpg",
            "expert_mask": f"Maps<expert>_T/<core>{MASK_SUFFIX}",
            "truth": f"truth/<core>{MASK_SUFFIX}",
            "flags": "appearance/<core>_flags.png",
        },
        "flags": {
            str(FLAG_BORDERLINE_G3): "borderline-appearance G3 (larger, crowded glands)",
            str(FLAG_SMALL_G5): "small G5 focus",
        },
        "experts": expert_biases(),
        "cores": records,
    }
    if assignment is not None:  # only then, so the default files stay byte-identical
        summary["assignment"] = "given"
    _saved(out / "synthetic.json",
           lambda: (out / "synthetic.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8"))
    return summary


def sample_core(seed: int = 0, size: int = 512) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(image, truth, experts)`` of core 0 of ``write_dataset(..., seed=seed)``, all six experts.

    ``truth`` and each expert map are uint8 class indices; for the napari sample-data hook.
    """
    rng = core_rng(seed, 0)
    core = make_core(rng, size)
    return core.image, core.truth, simulate_experts(core, rng)
