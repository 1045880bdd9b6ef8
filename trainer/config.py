"""Run configuration: plain dataclasses saved into every run folder and checkpoint.

Defaults are the paper's (section 3.2): 1024² input, batch 2, SGD lr 0.01 with poly decay, 10k
iterations, validation and checkpoint every 1k, GAFL with λa = 50, λb = 1, Gaussian size 5 / σ 3,
λ schedule step 1000 (eq. 7–8). The focal γ follows the authors' public configs (0.1).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .device import check_device_name
from .errors import InputError
from .roughness import HeatmapParams

_EQ5 = HeatmapParams()

AUGMENT_DEVICES: tuple[str, ...] = ("auto", "worker", "device")
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class DataConfig:
    path: str = ""
    split_file: str | None = None
    train_experts: list[str] | None = None  # None: "1","3","4" for Gleason 2019, all annotators otherwise
    val_fraction: float = 0.2
    test_fraction: float = 0.2  # held out when the paper's split rule does not apply (default_split)
    split_seed: int = 0
    check: bool = True  # check every core's files before the first iteration (trainer.data.check)
    size: int = 1024
    num_workers: int = 0
    augment: bool = True
    vote_tie: str = "highest"
    # Fine-tuning on corrected cores: [{"name", "image", "mask"}] (mask in the dataset's raw values).
    corrected: list[dict] = field(default_factory=list)
    corrected_repeat: int = 0  # 0: about a quarter of the samples come from the corrected cores
    # Where augmentation, normalisation and the vote run: "worker" (numpy, in the data workers),
    # "device" (torch, on the training device; workers send uint8 cores), "auto" (device on CUDA).
    augment_device: str = "auto"
    cache_dir: str | None = None  # disk cache of resized cores (skip decoding full-size files again)


@dataclass
class ModelConfig:
    name: str = "hrnet18"
    encoder: str | None = None
    pretrained: bool | str = False


@dataclass
class LossConfig:
    loss: str = "gafl"  # "focal" or "gafl"
    reweight: bool = True
    gamma: float = 0.1
    alpha: float | list[float] | None = None
    # eq. (5): the names and defaults of trainer.roughness.HeatmapParams
    lambda_a: float = _EQ5.lambda_a
    lambda_b: float = _EQ5.lambda_b
    gauss_ksize: int = _EQ5.ksize
    gauss_sigma: float = _EQ5.sigma  # "authors" kernel: the cut-off in σ (gkern's nsig); "sampled": σ in px
    gauss_kernel: str = _EQ5.kernel  # "authors" (gkern(5, nsig=3), σ ≈ 0.87 px) or "sampled" (σ = 3 px)
    gauss_border: str = _EQ5.border  # "zero" (authors' conv2d padding) or "reflect" (reflect-101)
    reduction: str = "authors"  # "authors": mean over classes × pixels; "pixel": summed over classes (C×)
    # n of eq. (7-8) grows by one every lambda_step iterations; None: every 10 % of the run (the
    # paper's 1k of 10k), so a 300-iteration run or fine-tune trains its annotator model too
    lambda_step: int | None = None
    lambda_form: str = "paper"  # "paper": tanh(n) (eq. 7-8); "authors": tanh(n/2) as their code
    weight_input_scale: float = 1.0  # run the weighting/confusion CNN at this fraction of the input size
    weight_stride: int = 4  # ResNet-18 output stride: 4 (authors', 512 channels), 8/16/32 (cut ResNet-18)
    weight_head_kernel: int = 3  # head conv of the weighting/confusion CNN: 3 (authors') or 1
    weight_pretrained: bool | str | None = None  # None: ImageNet when model.pretrained is True; or a file
    # Beyond the paper: pixel-wise annotator confusion matrices (Zhang, Tanno et al. 2020) in place of
    # the weighting CNN (trainer/objective.py has the two objectives).
    confusion: bool = False
    # "heads": per-expert heads on the segmentation network's last decoder features (Zhang et al.'s
    # architecture, one network); "trunk": a separate ResNet-18 (weight_stride, weight_input_scale)
    confusion_form: str = "heads"
    # "zhang": noisy-label likelihood over the experts present + confusion_trace · mean tr(A_n)
    # (+ an optional vote warm-up); "vote": λ1·vote + λ2·(noisy + confusion_trace · tr(A_n)/C)
    confusion_objective: str = "zhang"
    confusion_trace: float | None = None  # None: 0.1 for "zhang" (their code's α), 0.01 for "vote"
    confusion_nll: bool = True  # the noisy-label term as a plain NLL (Zhang); False: the run's focal/GAF
    confusion_width: int = 32  # channels the heads reduce the decoder features to
    confusion_diag_init: float = 0.9
    # "zhang": a vote term whose weight falls linearly from 1 to 0 over this share of the run. Zhang et al.
    # have none; from a random init the pure objective collapsed the segmentation onto benign (every
    # label explained by the pixel-wise matrices: Dice 0.21 on cpu-noisy, the demo recipe alike)
    vote_warmup: float = 0.2


def lambda_step_of(loss: LossConfig, iters: int) -> int:
    """The λ schedule's step (eq. 7-8): ``loss.lambda_step`` when set, else 10 % of the run."""
    if loss.lambda_step:
        return int(loss.lambda_step)
    return max(1, int(iters) // 10)


def interval_of(every: int | None, iters: int) -> int:
    """Validation or checkpoint interval: ``every`` when given, else a tenth of the run capped at
    the paper's 1000 — so a 60-iteration run validates and leaves a checkpoint to resume every 6
    iterations, and the paper's 10k run every 1000. The CLI and the train widget share this rule."""
    if every is not None:
        return int(every)
    return max(1, min(1000, int(iters) // 10))


def confusion_trace_of(loss: LossConfig) -> float:
    """The trace weight of the confusion objective (``None``: the objective's own default)."""
    if loss.confusion_trace is not None:
        return float(loss.confusion_trace)
    return 0.1 if loss.confusion_objective == "zhang" else 0.01


@dataclass
class TrainConfig:
    iters: int = 10_000
    batch_size: int = 2
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    val_every: int | None = None  # None: interval_of(iters), the paper's 1000 on its 10k run
    checkpoint_every: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used on CUDA only
    channels_last: bool = False
    compile: bool | str = False  # torch.compile: False, True/"default", or a mode ("max-autotune", …)
    compile_backend: str = "inductor"  # "inductor" (needs a C++ compiler on CPU), "aot_eager", "eager"
    out: str = "runs/run"
    init: str | None = None


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        cfg = cls()
        for section, values in (d or {}).items():
            if not hasattr(cfg, section):
                raise InputError(f"unknown config section {section!r} (valid: data, model, loss, train)")
            target = getattr(cfg, section)
            valid = {f.name for f in dataclasses.fields(target)}
            for key, value in (values or {}).items():
                if key not in valid:
                    raise InputError(f"unknown option {section}.{key} (valid: {', '.join(sorted(valid))})")
                setattr(target, key, value)
        # --confusion replaces the re-weighting, which is on by default: turning one on turns the
        # default other off, unless both were asked for (then validate() says so).
        if cfg.loss.confusion and "reweight" not in ((d or {}).get("loss") or {}):
            cfg.loss.reweight = False
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.loss.loss not in ("focal", "gafl"):
            raise InputError(f"loss must be 'focal' or 'gafl', not {self.loss.loss!r}")
        check_device_name(self.train.device)  # spelling only; whether it exists: at the start of the run
        for name in ("iters", "batch_size", "val_every", "checkpoint_every"):
            if getattr(self.train, name) is not None and int(getattr(self.train, name)) < 1:
                raise InputError(f"train.{name} must be at least 1")
        if self.data.size < 32:
            raise InputError(f"data.size must be at least 32, not {self.data.size}")
        if not 0 <= self.data.val_fraction < 1:
            raise InputError("data.val_fraction must be in [0, 1)")
        if not 0 <= self.data.test_fraction < 1:
            raise InputError("data.test_fraction must be in [0, 1)")
        if int(self.loss.weight_stride) not in (4, 8, 16, 32):
            raise InputError(f"loss.weight_stride must be 4, 8, 16 or 32, not {self.loss.weight_stride!r}")
        if int(self.loss.weight_head_kernel) not in (1, 3):
            raise InputError(f"loss.weight_head_kernel must be 1 or 3, not {self.loss.weight_head_kernel!r}")
        choices = {"gauss_kernel": ("authors", "sampled"), "gauss_border": ("zero", "reflect"),
                   "reduction": ("authors", "pixel"), "lambda_form": ("paper", "authors"),
                   "confusion_form": ("heads", "trunk"), "confusion_objective": ("zhang", "vote")}
        for name, valid in choices.items():
            if getattr(self.loss, name) not in valid:
                raise InputError(f"loss.{name} must be {' or '.join(valid)}, not {getattr(self.loss, name)!r}")
        if self.loss.confusion and self.loss.reweight:
            raise InputError("choose one annotator model: re-weighting (--reweight) or confusion matrices "
                             "(--confusion), not both")
        if self.loss.confusion_trace is not None and not 0 <= float(self.loss.confusion_trace):
            raise InputError(f"loss.confusion_trace must be ≥ 0, not {self.loss.confusion_trace!r}")
        if self.loss.lambda_step is not None and int(self.loss.lambda_step) < 1:
            raise InputError(f"loss.lambda_step must be at least 1, not {self.loss.lambda_step!r}")
        if not 0 <= float(self.loss.vote_warmup) <= 1:
            raise InputError(f"loss.vote_warmup must be a share of the run in [0, 1], not {self.loss.vote_warmup!r}")
        if int(self.loss.confusion_width) < 1:
            raise InputError(f"loss.confusion_width must be at least 1, not {self.loss.confusion_width!r}")
        if not 0 < float(self.loss.confusion_diag_init) < 1:
            raise InputError(f"loss.confusion_diag_init must be in (1/C, 1), not {self.loss.confusion_diag_init!r}")
        if self.data.augment_device not in AUGMENT_DEVICES:
            raise InputError(f"data.augment_device must be auto, worker or device, not {self.data.augment_device!r}")
        if self.train.compile not in (False, True, None) and self.train.compile not in COMPILE_MODES:
            raise InputError(f"train.compile must be off or one of {', '.join(COMPILE_MODES)}, "
                             f"not {self.train.compile!r}")
        if self.data.vote_tie not in ("highest", "lowest", "ignore"):
            raise InputError(f"data.vote_tie must be highest, lowest or ignore, not {self.data.vote_tie!r}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a nested dict (sections data/model/loss/train)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read config file ({exc.strerror})", path) from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise InputError(f"not a valid config file: {exc}", path) from exc
    if not isinstance(data, dict):
        raise InputError("config file must hold a mapping of sections", path)
    return data


def check_run_folder(out: str | Path, resume: bool = False) -> None:
    """The run-folder rule: a fresh run never goes into a folder that already holds one.

    ``out`` must be a folder (or not exist yet); unless ``resume``, it must not hold ``last.pt``,
    which a new run would overwrite from its first save on. The engine enforces it at the start of
    every run; the builder below checks it early so the CLI and the GUI fail before any work.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("the output is a file, not a folder; choose a new folder", out)
    if not resume and (out / "last.pt").exists():
        raise InputError("this folder already holds a run (last.pt); choose a new output folder, or continue "
                         "it with --resume", out)


def build_run_config(base: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None, *,
                     resume: bool = False) -> RunConfig:
    """The one way to a run's configuration: ``base`` (a config file, a checkpoint's config) with
    ``overrides`` (CLI flags, the train widget's fields; ``None`` values skipped), validated, its
    output folder checked by :func:`check_run_folder`. Raises :class:`InputError`."""
    cfg = RunConfig.from_dict(merge(base or {}, overrides or {}))
    if cfg.train.out:
        check_run_folder(cfg.train.out, resume)
    return cfg


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge; values in ``overrides`` that are None are skipped (flag not given)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in overrides.items():
        sect = out.setdefault(section, {})
        for key, value in values.items():
            if value is not None:
                sect[key] = value
    return out
