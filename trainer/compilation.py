"""Optional ``torch.compile`` of the training networks (``--compile [MODE]``, ``--compile-backend``).

- The plain modules stay what the setup saves: :func:`compile_module` returns a compiled wrapper
  that shares their parameters, so checkpoints hold the plain ``state_dict`` (no ``_orig_mod.``
  prefix) and resume, predict and fine-tune load them as before.
- With DDP the *inner* module is compiled and then wrapped, as PyTorch's "Where to apply
  torch.compile?" recommends (dynamo does not trace DDP's hooks well).
- Compilation happens lazily, at the first forward (and the first backward): :func:`compile_failures`
  turns a compiler failure there into one :class:`~trainer.errors.CompileError` line naming its
  cause (the CLI prints it and exits 2) instead of a page of compiler traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import CompileError

# Where compiler failures come from: dynamo (tracing, backend errors), AOTAutograd, inductor.
_COMPILER_MODULES = ("torch._dynamo", "torch._inductor", "torch._functorch", "torch._subclasses")


def compile_module(module: torch.nn.Module, mode: str | bool, backend: str) -> torch.nn.Module:
    """``torch.compile(module)`` with ``mode`` (True/"default" = the backend's default) and ``backend``."""
    import torch._dynamo

    if backend not in torch._dynamo.list_backends(exclude_tags=()):  # debug backends (eager, aot_eager) too
        shown = sorted(set(torch._dynamo.list_backends()) | {"eager", "aot_eager"})
        raise CompileError(f"unknown torch.compile backend {backend!r} (valid: {', '.join(shown)})")
    kwargs = {} if mode in (True, "default") else {"mode": mode}
    try:
        return torch.compile(module, backend=backend, **kwargs)
    except Exception as exc:
        raise CompileError(failure_message(exc, backend, mode)) from exc


def is_compile_failure(exc: BaseException) -> bool:
    import torch._dynamo.exc as dynamo_exc

    if isinstance(exc, dynamo_exc.TorchDynamoException):
        return True
    return type(exc).__module__.startswith(_COMPILER_MODULES)


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def failure_message(exc: BaseException, backend: str, mode: str | bool) -> str:
    root = _root_cause(exc)
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    what = f"{type(root).__name__}: {lines[0]}" if lines else type(root).__name__
    if len(what) > 300:
        what = what[:297] + "..."
    how = f"backend {backend!r}" + ("" if mode in (True, "default") else f", mode {mode!r}")
    return (f"torch.compile failed ({how}): {what}; train without --compile, "
            "or try --compile-backend aot_eager")


@contextmanager
def compile_failures(enabled: bool, backend: str, mode: str | bool) -> Iterator[None]:
    """Inside: a compiler failure becomes a :class:`CompileError` (other errors pass unchanged)."""
    if not enabled:
        yield
        return
    try:
        yield
    except Exception as exc:
        if is_compile_failure(exc):
            raise CompileError(failure_message(exc, backend, mode)) from exc
        raise
