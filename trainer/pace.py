"""Runs sized to the machine: a projected run time before the first iteration, and a stop that
acts inside an iteration.

**Projection.** Before the first iteration the engine times the segmentation network (and the
annotator network) once on a small probe at the run's batch size — one forward in evaluation mode,
without gradients, so no weight, batch-norm statistic or random state changes — and scales it to
the run's input size by pixel count and to a training step by 3 (a backward costs about two
forwards). It is an estimate: the engine reports the measured time after the first iterations as
well. On a CPU, when the projection exceeds :data:`CPU_BUDGET_S`, the message says so and names
the input sizes and iteration counts that fit.

**Stopping inside an iteration.** On a 2-core CPU one iteration at the paper's size takes minutes;
a stop checked only between iterations would wait that long. :class:`Interruptible` checks the
stop signal before every module's forward and after every parameter's gradient is accumulated,
and raises :class:`StopInIteration`. The engine then puts back the batch-norm buffers and the RNG
state it snapshotted before the iteration — the optimiser has not stepped — so the checkpoint it
writes is the state after the last complete iteration, and ``--resume`` continues exactly. It is
off under DDP (every rank must take the same branch) and with ``torch.compile`` (hooks would
break the graph).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch

#: A CPU run projected past this many seconds gets a warning and the sizes that fit.
CPU_BUDGET_S = 3600.0
#: Probe input side (pixels): small enough to take a second on a laptop CPU.
PROBE_SIZE = 128
#: A training step ≈ forward + backward ≈ 3 forwards.
STEP_PER_FORWARD = 3.0
SUGGESTED_SIZES = (768, 512, 384, 256, 128)


class StopInIteration(Exception):
    """Raised from a hook when a stop is requested in the middle of an iteration."""


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.4 h"``, ``"2.1 days"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@torch.no_grad()
def probe_forward_seconds(nets: list[torch.nn.Module], batch_size: int, device: torch.device,
                          size: int = PROBE_SIZE, repeats: int = 1) -> float:
    """Seconds of one forward of ``nets`` on a ``batch_size × 3 × size²`` batch (best of ``repeats``
    after a warm-up). Evaluation mode and no gradients: nothing about the networks changes."""
    x = torch.zeros(batch_size, 3, size, size, device=device)
    modes = [net.training for net in nets]
    best = float("inf")
    try:
        for net in nets:
            net.eval()
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for net in nets:
                net(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first call builds kernels and allocates
                best = min(best, time.perf_counter() - t0)
    finally:
        for net, mode in zip(nets, modes):
            net.train(mode)
    return best


def project_step_seconds(probe_seconds: float, size: int, probe_size: int = PROBE_SIZE) -> float:
    """One training iteration at ``size`` from a forward probe at ``probe_size`` (pixel count × 3)."""
    return probe_seconds * (size / probe_size) ** 2 * STEP_PER_FORWARD


def projection_message(step_seconds: float, iters: int, size: int, device: torch.device,
                       budget: float = CPU_BUDGET_S, measured: bool = False, what: str = "projected run time") -> str:
    """One line: ``what`` (the projected run time), and on a CPU over ``budget`` the sizes that fit."""
    how = "measured" if measured else "estimated"
    total = step_seconds * iters
    line = (f"{what}: {format_duration(total)} ({how} {step_seconds:.2f} s per iteration × "
            f"{iters} iterations at {size}² on {device.type})")
    if device.type != "cpu" or total <= budget:
        return line
    fits = []
    for s in SUGGESTED_SIZES:
        if s >= size:
            continue
        per = step_seconds * (s / size) ** 2
        if per * iters <= budget:
            fits.append(f"--size {s} ({format_duration(per * iters)})")
            break
        fits.append(f"--size {s} --iters {max(1, int(budget / per))}")
    within = max(1, int(budget / step_seconds))
    return (f"{line}. This is more than {format_duration(budget)} on this CPU: a GPU is the machine for it; "
            f"here, runs that fit in about {format_duration(budget)}: --iters {within}"
            + (", or " + ", or ".join(fits[-2:]) if fits else "") + ".")


def annotator_nets(nets) -> list[torch.nn.Module]:
    """The networks a probe runs on an image: confusion heads read decoder features and ride along."""
    return [n for n in nets if n is not None and getattr(n, "form", None) != "heads"]


def project_run(nets, batch_size: int, size: int, iters: int, device: torch.device) -> str:
    """:func:`projection_message` for ``iters`` iterations of ``nets`` at ``size``, from a probe at
    ``min(size, 256)``."""
    probe = min(size, 256)
    seconds = probe_forward_seconds(annotator_nets(nets), batch_size, device, size=probe)
    return projection_message(project_step_seconds(seconds, size, probe), iters, size, device)


class Interruptible:
    """Hooks that raise :class:`StopInIteration` inside a forward or backward once ``should_stop()``.

    Enter it once (it installs the hooks); they act only inside :meth:`iteration`, which snapshots the batch-norm buffers and the RNG
    state, and on a stop restores them before re-raising, so the networks are as they were after
    the last complete iteration.
    """

    def __init__(self, nets: list[torch.nn.Module], should_stop: Callable[[], bool]):
        self.nets = nets
        self.should_stop = should_stop
        self.handles: list = []
        self.active = False  # only inside iteration(): validation and checkpoints run to the end

    def _check(self, *_args) -> None:
        if self.active and self.should_stop():
            raise StopInIteration

    def __enter__(self) -> "Interruptible":
        for net in self.nets:
            for module in net.modules():
                self.handles.append(module.register_forward_pre_hook(self._check))
            for p in net.parameters():
                if p.requires_grad:
                    self.handles.append(p.register_post_accumulate_grad_hook(self._check))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    @contextlib.contextmanager
    def iteration(self, device: torch.device) -> Iterator[None]:
        buffers = [(b, b.detach().clone()) for net in self.nets for b in net.buffers()]
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.active = True
        try:
            yield
        except StopInIteration:
            with torch.no_grad():
                for buf, saved in buffers:
                    buf.copy_(saved)
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, device)
            raise
        finally:
            self.active = False
