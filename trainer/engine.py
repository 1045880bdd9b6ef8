"""The one training loop: a generator of typed events that honours a stop signal.

``train(cfg)`` yields :mod:`trainer.events` objects. The CLI prints them, the GUI worker forwards
them; there is no second loop. Each iteration implements Fig. 1 of the paper: the segmentation
network's logits are compared with the vote and with every expert (N+1 focal or GAF losses in one
batched call), the weighting CNN re-weights the N expert losses (eq. 2–3) and the λ schedule mixes
the two terms (eq. 4, 7–8). The file reads top to bottom: one iteration's losses
(:func:`step_losses`) and step (:func:`backward_and_step`), then the loop (:func:`train`); what the
run is made of (data, networks, optimiser, DDP and compile wrappers) is
:mod:`trainer.training_setup`'s.

Exact resume: batches and augmentations are a pure function of (seed, iteration) through
:class:`~trainer.data.dataset.IterationSampler`, and the torch RNG state is saved in every
checkpoint, so ``--resume`` continues with the same losses an uninterrupted run would have had.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from . import events as ev
from . import jsonsafe
from .atomic import atomic_write
from .checkpoint import load_checkpoint, restore_rng_state, save_checkpoint
from .config import RunConfig, check_run_folder, interval_of
from .errors import CheckpointError, InputError, NonFiniteLossError
from .device import resolve_device
from .pace import Interruptible, StopInIteration, project_run, projection_message
from .annotators.heads import ConfusionHeads
from .objective import training_loss
from .training_setup import TrainingSetup, build_setup, first_of

StopSignal = Callable[[], bool] | threading.Event | None


def _as_callable(stop: StopSignal) -> Callable[[], bool]:
    if stop is None:
        return lambda: False
    if isinstance(stop, threading.Event):
        return stop.is_set
    return stop


def poly_lr(base: float, iteration: int, total: int, power: float, min_lr: float) -> float:
    """mmsegmentation's poly schedule: (base − min)·(1 − it/total)^power + min."""
    frac = min(max(iteration / max(total, 1), 0.0), 1.0)
    return (base - min_lr) * (1.0 - frac) ** power + min_lr


def _ddp_env() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


# --- one iteration (Fig. 1): the losses, then backward and the optimiser step -----------------------
def step_losses(setup: TrainingSetup, batch: dict, iteration: int):
    """Losses of one iteration (Fig. 1, :func:`trainer.objective.training_loss`).
    Returns ({term: scalar tensor}, λ1, λ2)."""
    batch = setup.device_batch(batch)
    image, vote = batch["image"], batch["vote"]
    if setup.cfg.train.channels_last and setup.device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
    model = first_of(setup.ddp_model, setup.compiled_model, setup.model)
    setup.model.train()
    autocast = (torch.autocast("cuda", dtype=setup.amp_dtype) if setup.amp_dtype is not None
                else contextlib.nullcontext())
    heads = isinstance(setup.confusion, ConfusionHeads)
    with autocast, setup.compiling():
        out = model(image, features=True) if heads else model(image)
    logits, feats = (out[0].float(), out[1]) if heads else (out.float(), None)
    extra = {"total_iters": setup.cfg.train.iters}
    if setup.annotator is not None:
        extra.update(experts=batch["experts"], present=batch["present"], expert_names=setup.experts)
        if setup.weighting is not None:
            net = first_of(setup.ddp_weighting, setup.compiled_weighting, setup.weighting)
            with autocast, setup.compiling():
                extra["weights"] = net(image, present=batch["present"], size=logits.shape[-2:]).float()
        else:
            net = first_of(setup.ddp_confusion, setup.compiled_confusion, setup.confusion)
            with autocast, setup.compiling():
                if heads:  # Zhang et al.: heads on the segmentation network's decoder features, each
                    # cell's matrix applying to the pixels it covers (never resized to every pixel)
                    extra["log_confusion"] = net(feats).float()
                    extra["confusion_cover"] = setup.model.padded_size(*logits.shape[-2:])
                else:
                    extra["log_confusion"] = net(image, size=logits.shape[-2:]).float()
    return training_loss(setup.cfg.loss, logits, image, vote, iteration, **extra)



def backward_and_step(setup: TrainingSetup, total: torch.Tensor) -> None:
    """Backward through ``total`` and one optimiser step (with the GPU's grad scaler where it has one)."""
    setup.optimizer.zero_grad(set_to_none=True)
    if setup.scaler is not None:
        with setup.compiling():  # a compiled backward is compiled at its first call
            setup.scaler.scale(total).backward()
        setup.scaler.step(setup.optimizer)
        setup.scaler.update()
    else:
        with setup.compiling():
            total.backward()
        setup.optimizer.step()


def train(cfg: RunConfig, stop: StopSignal = None, resume: bool = False) -> Iterator[ev.Event]:
    """Run (or resume) training; yields events until the run finishes or ``stop`` is set.

    Raises :class:`InputError` for bad data or options (before any iteration) and
    :class:`NonFiniteLossError` when the loss becomes NaN/Inf (after saving the last good state).
    """
    cfg.validate()
    check_run_folder(cfg.train.out, resume)  # a fresh run never overwrites another run's checkpoints
    should_stop = _as_callable(stop)
    world, rank, local_rank = _ddp_env()
    device = resolve_device(cfg.train.device, local_rank if world > 1 else None)
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        yield from _train(cfg, should_stop, resume, device, world, rank)
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: RunConfig, should_stop, resume: bool, device: torch.device, world: int,
           rank: int) -> Iterator[ev.Event]:
    run_dir = Path(cfg.train.out)
    is_main = rank == 0
    torch.manual_seed(cfg.train.seed)
    setup = build_setup(cfg, device, world, rank)
    start_iter, best, best_iter = 0, -math.inf, None
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    if resume:
        payload = load_checkpoint(last_path)
        setup.load_state(payload, with_optimizer=True)
        start_iter = int(payload["iteration"])
        best_metric = payload.get("best_metric")  # None until the first validation
        best = -math.inf if best_metric is None else float(best_metric)
        best_iter = payload.get("best_iteration")
        restore_rng_state(payload, device)
    notes: list[str] = []
    if not resume and cfg.train.init:
        notes = setup.load_init(cfg.train.init)

    # Read the first batch before anything is written: a core that cannot be read (or a mask that
    # does not fit) then fails the run without leaving a half-made run folder behind.
    batches = iter(setup.train_loader(start_iter, cfg.train.iters))
    first = next(batches, None)

    if is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot make the run folder ({exc.strerror or exc})", run_dir) from exc
        with atomic_write(run_dir / "config.json", "w", what="the run's config") as fh:
            fh.write(json.dumps(cfg.to_dict(), indent=2))
    log = _EventLog(run_dir / "events.jsonl" if is_main else None)

    def emit(event: ev.Event) -> ev.Event:
        log.write(event)
        return event

    yield emit(ev.RunStarted(str(run_dir), start_iter, cfg.train.iters, str(device), world,
                             setup.split.counts(), list(setup.experts), list(setup.scheme.names)))
    for note in ([setup.split.reason] if setup.split.reason else []) + notes:  # which split rule, and why
        yield emit(ev.Message(note))
    if start_iter >= cfg.train.iters:
        yield emit(ev.Message(f"run already at iteration {start_iter} ≥ {cfg.train.iters}; nothing to do"))

    if is_main and start_iter < cfg.train.iters:
        yield emit(ev.Message(project_run([setup.model, setup.weighting, setup.confusion], cfg.train.batch_size,
                                          cfg.data.size, cfg.train.iters - start_iter, device)))

    saved_at = {"last": start_iter if resume else None}

    def checkpoint(iteration: int, which: str) -> ev.CheckpointSaved | None:
        # Never overwrite a good checkpoint with diverged weights.
        if not setup.weights_finite():
            raise NonFiniteLossError(_diverged("weights became NaN/Inf", iteration, saved_at["last"], last_path))
        if not is_main:
            return None
        path = last_path if which == "last" else best_path
        try:
            save_checkpoint(path, setup.state(iteration, best, best_iter))
        except InputError as exc:  # a full disk: say where the run stands, and stop
            last = (f"{last_path.name} holds iteration {saved_at['last']}" if saved_at["last"] is not None
                    else "no last.pt was written")
            raise InputError(f"{exc.message}; training stopped at iteration {iteration}, {last}", path) from exc
        if which == "last":
            saved_at["last"] = iteration
        return ev.CheckpointSaved(iteration, str(path), which)

    val_every = interval_of(cfg.train.val_every, cfg.train.iters)
    checkpoint_every = interval_of(cfg.train.checkpoint_every, cfg.train.iters)
    loader = batches if first is None else itertools.chain([first], batches)
    t_run = time.perf_counter()
    iteration = start_iter
    stopped = False

    def any_rank(flag: bool) -> bool:
        # Under DDP every rank must take the same branch: a rank that stops (a signal reached only
        # it) or skips a step (its loss is NaN) while the others go on would hang them in the next
        # collective. One tiny all-reduce per check; nothing on one process.
        if world == 1:
            return flag
        t = torch.tensor([float(flag)], device=setup.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # A stop acts inside an iteration (pace.Interruptible) on one process without torch.compile;
    # under DDP every rank must take the same branch, so there it is checked between iterations.
    guard = (Interruptible([n for n in (setup.model, setup.weighting, setup.confusion) if n is not None],
                           should_stop) if world == 1 and not cfg.train.compile else None)
    hooks = guard if guard is not None else contextlib.nullcontext()
    measured_at = start_iter + 2  # the second iteration: the first one also builds kernels

    with hooks:  # installed once for the loop; they act only inside guard.iteration()
        for batch in loader:
            if any_rank(should_stop()):
                stopped = True
                break
            t0 = time.perf_counter()
            lr = poly_lr(cfg.train.lr, iteration, cfg.train.iters, cfg.train.poly_power, cfg.train.min_lr)
            for group in setup.optimizer.param_groups:
                group["lr"] = lr
            try:
                with guard.iteration(setup.device) if guard is not None else contextlib.nullcontext():
                    terms, lam1, lam2 = step_losses(setup, batch, iteration)
                    total = terms["total"]
                    if any_rank(not bool(torch.isfinite(total.detach()).all())):
                        what = f"loss became {total.item()}" + (" (on at least one rank)" if world > 1 else "")
                        raise NonFiniteLossError(_diverged(what, iteration + 1, saved_at["last"], last_path))
                    backward_and_step(setup, total)
            except StopInIteration:
                setup.optimizer.zero_grad(set_to_none=True)
                stopped = True
                yield emit(ev.Message(f"stopped inside iteration {iteration + 1}; its partial work is discarded"))
                break
            iteration += 1
            seconds = time.perf_counter() - t0
            losses = _mean_over_ranks(terms, world)
            yield emit(ev.IterationDone(iteration, cfg.train.iters, losses, lam1, lam2, lr, seconds))
            if is_main and iteration == measured_at and iteration < cfg.train.iters:
                yield emit(ev.Message(projection_message(seconds, cfg.train.iters - iteration, cfg.data.size,
                                                         setup.device, measured=True, what="remaining run time")))

            last_one = iteration == cfg.train.iters
            if iteration % val_every == 0 or last_one:
                val = setup.validate() if is_main else None
                if val is not None:
                    dice, mean = val
                    is_best = not math.isnan(mean) and mean > best
                    if is_best:
                        best, best_iter = mean, iteration
                    yield emit(ev.ValidationDone(iteration, dice, mean, is_best))
                    if is_best:
                        yield emit(checkpoint(iteration, "best"))
                if world > 1:
                    dist.barrier()
            if iteration % checkpoint_every == 0 and not last_one:
                saved = checkpoint(iteration, "last")
                if saved:
                    yield emit(saved)
            if any_rank(should_stop()):
                stopped = iteration < cfg.train.iters
                break

    saved = checkpoint(iteration, "last")
    if saved:
        yield emit(saved)
    has_best = is_main and best_path.exists()
    yield emit(ev.RunFinished(
        iteration, stopped, str(last_path), str(best_path) if has_best else None,
        None if best == -math.inf else best, time.perf_counter() - t_run,
        extra={"best_iteration": best_iter, "param_checksum": setup.param_checksum()},
    ))
    log.close()


def _mean_over_ranks(terms: dict[str, torch.Tensor], world: int) -> dict[str, float]:
    """Loss terms for the log: the mean over DDP ranks, so rank 0 logs the global batch's losses."""
    keys = sorted(terms)
    vals = torch.stack([terms[k].detach().float() for k in keys])
    if world > 1:
        dist.all_reduce(vals)
        vals = vals / world
    return {k: float(v) for k, v in zip(keys, vals.cpu())}


def _diverged(what: str, iteration: int, saved: int | None, last_path: Path) -> str:
    kept = (f"the last good checkpoint ({last_path}, iteration {saved}) is kept" if saved is not None
            else "no checkpoint had been written yet")
    return (f"{what} at iteration {iteration}; training stopped and {kept}. "
            "Lower the learning rate, check the data, or disable mixed precision.")


class _EventLog:
    """JSON-lines event log in the run folder (rank 0 only), appended a whole line at a time so a GUI
    can follow it. A line that cannot be written (a full disk) is cut off again, and the run stops
    with an :class:`InputError` naming the log."""

    def __init__(self, path: Path | None):
        self.path, self.fd = path, None
        if path is not None:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"cannot write the run's event log ({exc.strerror or exc})", path) from exc

    def write(self, event: ev.Event | None) -> None:
        if self.fd is None or event is None:
            return
        data = (jsonsafe.dumps(event.to_dict()) + "\n").encode("utf-8")
        end = os.fstat(self.fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, end)  # no half line for a reader to choke on
            raise InputError(f"cannot write the run's event log ({exc.strerror or exc})", self.path) from exc

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = close  # a run that ends with an exception closes its log too


__all__ = ["train", "poly_lr", "TrainingSetup", "resolve_device", "CheckpointError", "InputError"]
