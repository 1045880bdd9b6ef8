"""Regression: importing the model stack after napari's canvas exists must not crash the process."""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = """
import napari
viewer = napari.Viewer(show=False)  # Mesa's OpenGL (and its libLLVM) is now loaded
from napari_gleason._llvm_guard import guard_triton, llvm_mapped
blocked = guard_triton()
import torchvision, timm  # these import torch._dynamo, which probes for triton
from trainer.models import create_model
create_model("pspnet", 4, encoder="resnet18")
print("alive", llvm_mapped(), blocked)
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_model_stack_imports_after_the_canvas_without_a_segfault():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    alive = out.stdout.split()[-3:]
    assert alive[0] == "alive"
    assert alive[1] == alive[2], "triton is blocked exactly when Mesa's LLVM is in the process"
