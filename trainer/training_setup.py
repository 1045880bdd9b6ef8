"""The wiring of one training run: data, networks, optimiser, and one optimisation step.

:func:`build_setup` turns a :class:`~trainer.config.RunConfig` into a :class:`TrainingSetup`; the
engine (``engine.py``) drives it. What it wires lives elsewhere, one place each:

* the device policy (``auto``, AMP dtype, where augmentation runs): :mod:`trainer.device`;
* the per-iteration objective (Fig. 1): :func:`trainer.objective.training_loss`, built from
  :mod:`trainer.losses`;
* validation Dice: :func:`trainer.evaluation.validation_dice`;
* the checkpoint payload and older checkpoints: :mod:`trainer.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from .annotators.confusion import ConfusionCNN
from .annotators.heads import ConfusionHeads
from .checkpoint import check_compatible, confusion_config_of, load_checkpoint, training_payload, weighting_config_of
from .compilation import compile_failures, compile_module
from .config import RunConfig
from .data import open_dataset
from .data.classes import ClassScheme
from .data.corrected import CorrectedCoreSet, CorrectedRecord, MixedDataset, default_repeat
from .data.dataset import IterationSampler, MultiExpertDataset
from .data.device_augment import augment_batch, seed_from_int64
from .data.splits import Split
from .device import amp_policy, resolve_augment_device, resolve_device
from .errors import CheckpointError, InputError
from .evaluation import validation_dice
from .models import create_model
from .pace import project_run
from .reweighting import WeightingCNN


def default_train_experts(layout: str, experts: tuple[str, ...]) -> tuple[str, ...]:
    if layout == "gleason2019" and {"1", "3", "4"} <= set(experts):
        return ("1", "3", "4")  # the paper's training pathologists (section 3.1)
    return tuple(experts)


def make_split(cfg: RunConfig, ds, train_experts) -> Split:
    # the quick data check (unless data.check is off), then the split file or the default split
    from .data.check import checked_split

    return checked_split(ds, train_experts, split_file=cfg.data.split_file, val_fraction=cfg.data.val_fraction,
                         test_fraction=cfg.data.test_fraction, seed=cfg.data.split_seed, check=cfg.data.check)


@dataclass
class TrainingSetup:
    cfg: RunConfig
    device: torch.device
    scheme: ClassScheme
    experts: tuple[str, ...]
    split: Split
    train_set: MultiExpertDataset | MixedDataset
    val_set: MultiExpertDataset | None
    model: torch.nn.Module
    weighting: WeightingCNN | None
    optimizer: torch.optim.Optimizer
    confusion: ConfusionCNN | ConfusionHeads | None = None
    world: int = 1
    rank: int = 0
    ddp_model: torch.nn.Module | None = None
    ddp_weighting: torch.nn.Module | None = None
    # torch.compile wrappers of model / weighting (sharing their parameters); None when not compiled
    compiled_model: torch.nn.Module | None = None
    compiled_weighting: torch.nn.Module | None = None
    ddp_confusion: torch.nn.Module | None = None
    compiled_confusion: torch.nn.Module | None = None
    augment_on_device: bool = False  # the loader yields uint8 cores + seeds; augment_batch finishes here
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None

    # ----------------------------------------------------------------- data
    def train_loader(self, start_iter: int, total_iters: int) -> DataLoader:
        # batch_size is per process (the paper's batch 2 on one GPU); the sampler deals a global
        # batch of batch_size × world, each rank taking its own disjoint slice.
        sampler = IterationSampler(len(self.train_set), self.cfg.train.batch_size * self.world,
                                   self.cfg.train.seed, start_iter, total_iters,
                                   rank=self.rank, world_size=self.world)
        # A private generator: a DataLoader iterator otherwise draws its base seed from the global
        # torch RNG, which would shift dropout's random stream after a resume.
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.cfg.data.num_workers,
                          pin_memory=self.device.type == "cuda", generator=gen)

    def device_batch(self, batch: dict) -> dict:
        """The batch on the training device (pinned memory, non-blocking copies), augmented there
        when the loader sends un-augmented uint8 cores (``"seed"`` in the batch)."""
        nb = self.device.type == "cuda"
        if "seed" in batch:
            # .tolist() on the host tensor: the seeds never go to the device and back
            seeds = [seed_from_int64(s) for s in batch["seed"].tolist()]
            return augment_batch(batch["image"].to(self.device, non_blocking=nb),
                                 batch["experts"].to(self.device, non_blocking=nb),
                                 batch["present"].to(self.device, non_blocking=nb), seeds,
                                 self.scheme.num_classes, self.cfg.data.vote_tie, augment=self.cfg.data.augment)
        keys = ("image", "vote", "experts", "present") if self.annotator is not None else ("image", "vote")
        return {k: batch[k].to(self.device, non_blocking=nb) for k in keys}

    def compiling(self):
        t = self.cfg.train
        return compile_failures(bool(t.compile), t.compile_backend, t.compile)

    # --------------------------------------------------------------- losses
    @property
    def annotator(self) -> torch.nn.Module | None:
        """The per-expert network of this run: the weighting CNN, the confusion CNN, or None."""
        return self.weighting if self.weighting is not None else self.confusion

    # ----------------------------------------------------------- validation
    def validate(self):
        """({class: Dice}, mean Dice) on the validation cores, or None without any."""
        return validation_dice(self.model, self.val_set, self.scheme.names, self.device, self.amp_dtype)

    # ---------------------------------------------------------- checkpoints
    def state(self, iteration: int, best: float, best_iter) -> dict:
        """The checkpoint payload of this run at ``iteration`` (:func:`trainer.checkpoint.training_payload`)."""
        return training_payload(model=self.model, weighting=self.weighting, confusion=self.confusion,
                                optimizer=self.optimizer, iteration=iteration, best=best, best_iteration=best_iter,
                                config=self.cfg.to_dict(), scheme=self.scheme, experts=self.experts,
                                input_size=self.cfg.data.size, device=self.device)

    def load_state(self, payload: dict, with_optimizer: bool) -> None:
        check_compatible(payload, self.model.config, "this run")
        self.model.load_state_dict(payload["model"])
        if self.weighting is not None:
            if payload.get("weighting") is None:
                raise CheckpointError("checkpoint has no weighting CNN but this run re-weights experts")
            self.weighting.load_state_dict(payload["weighting"])
        if self.confusion is not None:
            if payload.get("confusion") is None:
                raise CheckpointError("checkpoint has no confusion network but this run models expert confusion")
            self.confusion.load_state_dict(payload["confusion"])
        if with_optimizer and payload.get("optimizer") is not None:
            self.optimizer.load_state_dict(payload["optimizer"])

    def load_init(self, path) -> list[str]:
        """Fine-tuning start: the checkpoint's weights, a fresh optimiser and iteration 0."""
        payload = load_checkpoint(path)
        theirs = tuple((payload.get("scheme") or {}).get("names") or ())
        if theirs and theirs != tuple(self.scheme.names):  # same count, other classes: weights would load
            raise CheckpointError(
                f"the checkpoint was trained on the classes {', '.join(theirs)} but the dataset {self.cfg.data.path} "
                f"has {', '.join(self.scheme.names)}; fine-tune a checkpoint trained on data with the same classes",
                path)
        try:
            check_compatible(payload, self.model.config, "this run")
        except CheckpointError as exc:
            raise CheckpointError(str(exc).split(": ", 1)[-1], path) from None
        self.model.load_state_dict(payload["model"])
        notes = [f"initialised the segmentation network from {path}"]
        if self.weighting is not None:
            if payload.get("weighting") is not None and weighting_config_of(payload) == self.weighting.config:
                self.weighting.load_state_dict(payload["weighting"])
                notes.append("initialised the weighting CNN from the checkpoint too")
            else:
                notes.append("the checkpoint's weighting CNN does not match this run's experts; it starts fresh")
        if self.confusion is not None:
            ccfg = confusion_config_of(payload) or {}
            if payload.get("confusion") is not None and ccfg == self.confusion.config:
                self.confusion.load_state_dict(payload["confusion"])
                notes.append("initialised the confusion network from the checkpoint too")
            else:
                notes.append("the checkpoint's confusion network does not match this run's experts; it starts fresh")
        return notes

    def weights_finite(self) -> bool:
        nets = [n for n in (self.model, self.weighting, self.confusion) if n is not None]
        return all(bool(torch.isfinite(t).all()) for net in nets for t in net.state_dict().values()
                   if t.is_floating_point())

    def param_checksum(self) -> float:
        """Sum of |parameters| of both networks — equal on every DDP rank when weights are in sync."""
        total = 0.0
        for net in (self.model, self.weighting, self.confusion):
            if net is not None:
                total += float(sum(p.detach().double().abs().sum() for p in net.parameters()))
        return total


def first_of(*modules):
    """The first module that is not None (``or`` would call a compiled module's ``__len__``)."""
    return next(m for m in modules if m is not None)


def freeze_unused(model: torch.nn.Module, size: int, device: torch.device) -> list[str]:
    """Set requires_grad=False on parameters that a forward/backward pass leaves without gradient."""
    was_training = model.training
    saved = {k: v.clone() for k, v in model.state_dict().items()}  # the probe must not move BN stats
    model.train()
    x = torch.zeros(2, 3, min(size, 64), min(size, 64), device=device)
    model.zero_grad(set_to_none=True)
    model(x).float().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for n, p in model.named_parameters():
        if n in unused:
            p.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    model.load_state_dict(saved)
    model.train(was_training)
    return unused


def build_setup(cfg: RunConfig, device: torch.device, world: int = 1, rank: int = 0) -> TrainingSetup:
    if not cfg.data.path:
        raise InputError("no training data given (--data DIR)")
    ds = open_dataset(cfg.data.path)
    train_experts = tuple(cfg.data.train_experts or default_train_experts(ds.layout, ds.experts))
    unknown = [e for e in train_experts if e not in ds.experts]
    if unknown:
        raise InputError(f"experts {unknown} not found in the dataset (found: {list(ds.experts)})", cfg.data.path)
    split = make_split(cfg, ds, train_experts)
    if not split.train:
        raise InputError(
            f"no training cores: none is annotated by all of experts {list(train_experts)} "
            "outside the test set", cfg.data.path)
    size = cfg.data.size
    on_device = resolve_augment_device(cfg.data.augment_device, device)
    cache_dir = cfg.data.cache_dir or None
    train_set = MultiExpertDataset(ds, [ds.core(n) for n in split.train], train_experts, size,
                                   augment=cfg.data.augment, tie=cfg.data.vote_tie, cache_dir=cache_dir,
                                   device_augment=on_device)
    if cfg.data.corrected:
        extra = CorrectedCoreSet([CorrectedRecord.from_dict(d) for d in cfg.data.corrected], ds.scheme,
                                 len(train_experts), size, augment=cfg.data.augment, cache_dir=cache_dir,
                                 device_augment=on_device)
        repeat = cfg.data.corrected_repeat or default_repeat(len(train_set), len(extra))
        train_set = MixedDataset(train_set, extra, repeat)
    # Validation reads each core once per round and never augments: the worker path, disk cache too.
    val_set = (MultiExpertDataset(ds, [ds.core(n) for n in split.val], train_experts, size,
                                  augment=False, tie=cfg.data.vote_tie, cache_dir=cache_dir)
               if split.val else None)
    try:
        model = create_model(cfg.model.name, ds.scheme.num_classes, pretrained=cfg.model.pretrained,
                             encoder=cfg.model.encoder).to(device)
    except KeyError as exc:  # unknown model or encoder: the registry's message lists the choices
        raise InputError(str(exc.args[0]) if exc.args else str(exc)) from None
    weighting, confusion = build_annotator(cfg, len(train_experts), ds.scheme.num_classes, model.feature_channels)
    weighting = weighting.to(device) if weighting is not None else None
    confusion = confusion.to(device) if confusion is not None else None
    if cfg.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    params = [p for net in (model, weighting, confusion) if net is not None for p in net.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.train.lr, momentum=cfg.train.momentum,
                                weight_decay=cfg.train.weight_decay)
    amp_dtype, scaler = amp_policy(device, cfg.train.amp)
    setup = TrainingSetup(cfg, device, ds.scheme, train_experts, split, train_set, val_set, model, weighting,
                          optimizer, confusion, world, rank, scaler=scaler, amp_dtype=amp_dtype,
                          augment_on_device=on_device)
    if world > 1:
        # DDP needs every parameter to get a gradient; some SMP models keep encoder stages they
        # never use (PSPNet uses 3 of 5). Freezing those changes nothing: SGD skips them anyway.
        freeze_unused(model, size, device)
    if cfg.train.compile:
        # Wrappers sharing the parameters: setup.model stays plain, so checkpoints carry no prefix
        # and validation runs eagerly. Under DDP the inner module is compiled, then wrapped.
        setup.compiled_model = compile_module(model, cfg.train.compile, cfg.train.compile_backend)
        if weighting is not None:
            setup.compiled_weighting = compile_module(weighting, cfg.train.compile, cfg.train.compile_backend)
        if confusion is not None:
            setup.compiled_confusion = compile_module(confusion, cfg.train.compile, cfg.train.compile_backend)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        setup.ddp_model = DDP(first_of(setup.compiled_model, model), device_ids=ids)
        if weighting is not None:
            setup.ddp_weighting = DDP(first_of(setup.compiled_weighting, weighting), device_ids=ids)
        if confusion is not None:
            setup.ddp_confusion = DDP(first_of(setup.compiled_confusion, confusion), device_ids=ids)
    return setup


def estimate_run(cfg: RunConfig, num_classes: int = 4, num_experts: int = 3) -> str:
    """The projected run time of ``cfg`` on this machine without reading any data: its networks,
    randomly initialised, timed on a probe (:mod:`trainer.pace`). The train widget's Estimate."""
    device = resolve_device(cfg.train.device)
    try:
        model = create_model(cfg.model.name, num_classes, encoder=cfg.model.encoder).to(device)
    except KeyError as exc:
        raise InputError(str(exc.args[0]) if exc.args else str(exc)) from None
    weighting, confusion = build_annotator(cfg, num_experts, num_classes, model.feature_channels)
    nets = [model] + [n.to(device) for n in (weighting, confusion) if n is not None]
    return project_run(nets, cfg.train.batch_size, cfg.data.size, cfg.train.iters, device)


def annotator_pretrained(cfg: RunConfig) -> bool | str:
    """ImageNet weights of the weighting/confusion ResNet-18: ``loss.weight_pretrained`` when set,
    else the hub's when ``model.pretrained`` is True (a local file there is the segmentation
    backbone's, another network)."""
    if cfg.loss.weight_pretrained not in (None, ""):
        return cfg.loss.weight_pretrained
    return cfg.model.pretrained is True


def build_annotator(cfg: RunConfig, num_experts: int, num_classes: int, feature_channels: int | None = None):
    """(weighting CNN or None, confusion model or None) for the run's loss settings; the confusion
    heads read ``feature_channels`` decoder channels of the segmentation network."""
    lc = cfg.loss
    pretrained = annotator_pretrained(cfg)
    if lc.reweight:
        return WeightingCNN(num_experts, pretrained=pretrained, input_scale=lc.weight_input_scale,
                            stride=lc.weight_stride, head_kernel=lc.weight_head_kernel), None
    if lc.confusion:
        if not 1.0 / num_classes < lc.confusion_diag_init < 1:
            raise InputError(f"loss.confusion_diag_init must be in (1/{num_classes}, 1) for {num_classes} classes, "
                             f"not {lc.confusion_diag_init}")
        if lc.confusion_form == "heads":
            if feature_channels is None:
                raise ValueError("the confusion heads need the segmentation network's feature channels")
            return None, ConfusionHeads(num_experts, num_classes, feature_channels, width=lc.confusion_width,
                                        diag_init=lc.confusion_diag_init)
        return None, ConfusionCNN(num_experts, num_classes, pretrained=pretrained,
                                  input_scale=lc.weight_input_scale, stride=lc.weight_stride,
                                  head_kernel=lc.weight_head_kernel, diag_init=lc.confusion_diag_init)
    return None, None

