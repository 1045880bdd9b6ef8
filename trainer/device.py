"""The one device policy: which device a run or a prediction uses, and what that device allows.

``"auto"`` means CUDA when a CUDA device is present, else the CPU — everywhere: the engine, the
predictor, the benchmark and the GUI's device menu all ask this module. Asking for a device that
does not exist is an :class:`~trainer.errors.InputError`, never a silent fallback.
:func:`check_device_name` (the spelling only) needs no torch: the config and the GUI's settings
use it without importing torch; everything else asks torch what the machine has.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    import torch

_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """``name`` normalised (trimmed, lower case) if it is spelled like a device, else
    :class:`InputError` listing the names; whether that device exists is :func:`resolve_device`'s."""
    norm = str(name).strip().lower()
    if not _NAME.fullmatch(norm):
        raise InputError(f"unknown device {name!r}; use auto, cpu or cuda (cuda:N for one of several GPUs)")
    return norm


def cuda_device_count() -> int:
    """How many CUDA devices this machine has (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cpu``; ``cuda`` (``cuda:<local_rank>`` under DDP);
    ``cuda:N``. A CUDA device that is not there raises :class:`InputError` saying what exists."""
    import torch

    name = check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r} was chosen but no CUDA device is available; use 'cpu' or 'auto'")
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    dev = torch.device(name)
    count = cuda_device_count()
    if dev.index is not None and dev.index >= count:
        raise InputError(f"device {name} does not exist ({count} CUDA device{'s' if count != 1 else ''}: "
                         f"cuda:0…cuda:{count - 1})")
    return dev


def device_choices() -> list[str]:
    """The names a device menu offers: ``auto``, ``cuda`` (and ``cuda:N`` with several GPUs) only
    when they exist, and ``cpu``."""
    count = cuda_device_count()
    if count == 0:
        return ["auto", "cpu"]
    extra = [f"cuda:{i}" for i in range(count)] if count > 1 else []
    return ["auto", "cuda", *extra, "cpu"]


def amp_policy(device: torch.device, enabled: bool) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """Mixed precision for ``device``: (autocast dtype, grad scaler). bfloat16 where the GPU has it
    (no scaler needed), else float16 with a :class:`~torch.amp.GradScaler`; (None, None) on the CPU
    or when disabled."""
    import torch

    if not enabled or device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def resolve_augment_device(mode: str, device: torch.device) -> bool:
    """``data.augment_device``: "device", "worker", or "auto" (the device when training on CUDA)."""
    if mode == "auto":
        return device.type == "cuda"
    return mode == "device"


#: Inference precisions: auto (the device's native fast type), fp32, bf16.
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX-512 BF16 or AMX); emulated
    bfloat16 is slower than float32, so "auto" uses it only here."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def compute_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Autocast dtype for inference on ``device`` under ``precision`` (``None``: float32): the one
    precision policy of inference, beside :func:`amp_policy` for training."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":  # the GPU's mixed precision, as in training (bfloat16 or float16)
        return torch.bfloat16 if precision == "bf16" else amp_policy(device, True)[0]
    if device.type == "cpu" and (precision == "bf16" or cpu_has_bf16()):
        return torch.bfloat16
    return None
