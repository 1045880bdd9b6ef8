"""The one device policy (trainer/device.py), on both kinds of machine.

CUDA's presence is simulated with monkeypatch so that every branch runs on a CPU-only machine
too; the last test uses the real machine, whichever it is.
"""

import warnings

import pytest
import torch

from trainer import device as dv
from trainer.errors import InputError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_without_cuda(no_cuda):
    assert dv.resolve_device("auto") == torch.device("cpu")
    assert dv.resolve_device("CPU ") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match="no CUDA device is available"):
            dv.resolve_device(name)
    assert dv.device_choices() == ["auto", "cpu"]


def test_with_two_gpus(two_gpus):
    assert dv.resolve_device("auto") == torch.device("cuda")
    assert dv.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert dv.resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)  # DDP: one GPU per rank
    with pytest.raises(InputError, match=r"cuda:2 does not exist \(2 CUDA devices: cuda:0…cuda:1\)"):
        dv.resolve_device("cuda:2")
    assert dv.device_choices() == ["auto", "cuda", "cuda:0", "cuda:1", "cpu"]


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "cuda:-1", ""])
def test_unknown_names_are_input_errors(two_gpus, name):
    with pytest.raises(InputError, match="unknown device"):
        dv.resolve_device(name)


def test_amp_policy(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert dv.amp_policy(cpu, True) == (None, None)
    assert dv.amp_policy(gpu, False) == (None, None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dv.amp_policy(gpu, True) == (torch.bfloat16, None)  # bf16 needs no loss scaling
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with warnings.catch_warnings():  # a CPU-only machine warns that the scaler is disabled
        warnings.simplefilter("ignore")
        dtype, scaler = dv.amp_policy(gpu, True)
    assert dtype == torch.float16 and isinstance(scaler, torch.amp.GradScaler)


def test_this_machine():
    """Whatever this machine has: auto is its best device, and one past its last GPU is refused."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert dv.resolve_device("auto").type == ("cuda" if count else "cpu")
    with pytest.raises(InputError):
        dv.resolve_device(f"cuda:{count}")
    assert ("cuda" in dv.device_choices()) == (count > 0)



def test_device_names_are_checked_without_torch():
    """The config checks a device's spelling without importing torch (the GUI's settings and the
    child-process launcher stay torch-free); whether it exists is decided when the run starts."""
    import subprocess
    import sys

    code = """
import sys
from trainer.config import RunConfig
from trainer.device import check_device_name
from trainer.errors import InputError
assert [check_device_name(n) for n in ("auto", " CPU", "cuda", "cuda:3")] == ["auto", "cpu", "cuda", "cuda:3"]
for bad in ("tpu", "cuda:", "cuda:-1", "gpu0", ""):
    try:
        check_device_name(bad)
    except InputError as exc:
        assert "unknown device" in str(exc), exc
    else:
        raise AssertionError(bad)
cfg = RunConfig()
cfg.train.device = "cuda:7"
cfg.validate()  # spelled right: accepted here, even without a 7th GPU
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
