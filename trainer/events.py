"""Typed progress events yielded by the training engine.

The CLI prints them (tqdm), the run folder logs them as JSON lines, the GUI worker forwards them
to a progress bar and a live plot. Each has ``to_dict()`` with a ``kind`` field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class Event:
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["kind"] = type(self).__name__
        return d


@dataclass
class RunStarted(Event):
    run_dir: str
    start_iteration: int
    total_iterations: int
    device: str
    world_size: int
    counts: dict[str, int]
    experts: list[str]
    classes: list[str]


@dataclass
class IterationDone(Event):
    iteration: int  # 1-based: number of optimiser steps done
    total_iterations: int
    losses: dict[str, float]  # every term separately: total, vote, weighted, ...
    lambda1: float
    lambda2: float
    lr: float
    seconds: float  # wall time of this iteration


@dataclass
class ValidationDone(Event):
    iteration: int
    dice: dict[str, float]  # per class name, NaN where the class is absent from prediction and vote
    mean_dice: float
    is_best: bool


@dataclass
class CheckpointSaved(Event):
    iteration: int
    path: str
    which: str  # "last" or "best"


@dataclass
class Message(Event):
    text: str
    level: str = "info"


@dataclass
class RunFinished(Event):
    iteration: int
    stopped: bool  # True when a stop signal ended the run early
    last_path: str
    best_path: str | None
    best_mean_dice: float | None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def event_from_dict(d: dict) -> Event:
    """Rebuild an event from its JSON form (used to follow a torchrun subprocess's event log)."""
    d = dict(d)
    kind = d.pop("kind")
    cls = {c.__name__: c for c in (RunStarted, IterationDone, ValidationDone, CheckpointSaved, Message, RunFinished)}[kind]
    # the log is strict JSON: an undefined number (a class absent from prediction and vote) is null there
    nan = float("nan")
    if cls is ValidationDone:
        d["dice"] = {k: nan if v is None else v for k, v in (d.get("dice") or {}).items()}
        d["mean_dice"] = nan if d.get("mean_dice") is None else d["mean_dice"]
    elif cls is IterationDone:
        d["losses"] = {k: nan if v is None else v for k, v in (d.get("losses") or {}).items()}
    return cls(**d)
