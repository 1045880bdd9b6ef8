"""Keep ``libtriton`` out of a napari process that already runs Mesa's LLVM.

Mesa's OpenGL drivers (llvmpipe under Xvfb or in VMs, radeonsi on AMD GPUs) map ``libLLVM``
into the process when napari creates its canvas. ``libtriton`` bundles another LLVM, and loading
it afterwards crashes the process with a segmentation fault (reproduced here: napari viewer,
then ``import triton``; the other order works). torch only *probes* for triton when
``torchvision``/``timm`` import ``torch._dynamo`` (triton serves ``torch.compile``, which the
trainer never uses), so in a process where ``libLLVM`` is already mapped and triton is not yet
loaded we make ``import triton`` fail cleanly: torch then simply reports it as absent. Training
in a ``torchrun`` subprocess is unaffected (no GL there).
"""

from __future__ import annotations

import sys


def llvm_mapped() -> bool:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            return any("libLLVM" in line for line in fh)
    except OSError:  # not Linux: no Mesa clash known
        return False


def guard_triton() -> bool:
    """Block ``import triton`` if it would crash this process; True if it is now blocked."""
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    if llvm_mapped():
        sys.modules["triton"] = None  # a None entry makes `import triton` raise ImportError
        return True
    return False
