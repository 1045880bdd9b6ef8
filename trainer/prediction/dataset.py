"""A whole dataset through the one pipeline: ``python -m trainer predict --data DIR``.

:func:`split_cores` picks the cores of a split exactly as ``evaluate`` does (a split file, else
the rule training used by default, :func:`trainer.data.splits.default_split`);
:func:`predict_dataset` predicts each of them once with :func:`.pipeline.predict` into files in
the dataset's own convention (:class:`.pipeline.FileSink`), with the core's experts and their
labels, so a confusion model writes the error map *given each expert's label*.

:func:`predict_dataset_into_store` does the same into a review store instead of files (full
resolution, streamed band by band: :class:`.pipeline.StoreSink`), writing each core into the store
first when it is not there yet; a core whose ``prediction`` is stored is done.

Under ``torchrun`` every rank takes ``cores[rank::world]`` of the same ordered list, so each core
is predicted by exactly one rank without any communication; :func:`gather_summaries` then brings
the per-rank counts to rank 0 (gloo, CPU objects only) for one summary.

A core counts as done when its mask and its ``_prediction.json`` (written last) exist and the JSON
names the same checkpoint and mode; done cores are skipped unless ``overwrite``. Anything else
already at a core's mask path (a file of someone else's, an interrupted write, another checkpoint's
prediction) is refused before any prediction, as is a mask path in an expert's folder.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.data import open_dataset
from trainer.data.records import CoreRecord, MultiExpertSet, load_core
from trainer.data.splits import default_split, load_split
from trainer.errors import InputError
from trainer.review_store import ReviewStore
from trainer.safe_paths import check_not_expert_file

from .pipeline import FileSink, StoreSink, Tiled, WholeCore, check_compatible, predict

SPLITS = ("train", "val", "test", "all")


def split_cores(ds: MultiExpertSet, split: str, split_file: str | Path | None = None,
                experts: tuple[str, ...] | None = None) -> tuple[list[CoreRecord], str | None]:
    """The cores of ``split`` (``train``/``val``/``test``/``all``) in the split's order, and the rule that
    chose them (``None`` with a split file or ``all``).

    Without ``split_file`` the split is the one training chose by default: the same rule, with
    ``experts`` (the checkpoint's training experts) when the dataset has all of them."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", ds.root)
    if split == "all":
        return list(ds.cores), None
    reason = None
    if split_file:
        chosen = load_split(split_file, ds)
    else:
        known = tuple(experts) if experts and set(experts) <= set(ds.experts) else None
        chosen = default_split(ds, known, require_train=False)
        reason = chosen.reason
    names = list(getattr(chosen, split))
    if not names:
        raise InputError(f"the {split} split is empty", split_file or ds.root)
    return [ds.core(n) for n in names], reason


def shard_env() -> tuple[int, int]:
    """(rank, world size) of a ``torchrun`` job, (0, 1) outside one (the variables engine.py reads)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class DatasetSummary:
    """What one rank did: cores predicted and skipped (names), seconds, and the pipeline's notes."""

    out: str
    rank: int = 0
    world: int = 1
    cores: int = 0  # this rank's share
    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def core_sink(folder: str | Path, record: CoreRecord, predictor, overwrite: bool = False) -> FileSink:
    """The sink of ``record``: its name as stem, its dataset's file convention (:meth:`FileSink.for_image`)."""
    return FileSink.for_image(folder, record.image_path, predictor.scheme, overwrite=overwrite)


def _same_run(meta_path: Path, predictor, mode) -> bool:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        same_checkpoint = Path(str(meta.get("checkpoint"))).resolve() == Path(str(predictor.path)).resolve()
        return same_checkpoint and meta.get("mode") == mode.name
    except (OSError, ValueError, AttributeError):
        return False


def check_targets(predictor, ds: MultiExpertSet, cores: list[CoreRecord], folder: str | Path) -> list[FileSink]:
    """Every core's sink, refusing (one :class:`InputError`) a mask path in an expert's folder of
    ``ds`` (or of any dataset above ``folder``) or on the core's own image. Path checks only: every
    rank runs them on all cores before predicting, so a bad ``--out`` fails the job at once."""
    check_compatible(predictor, ds.scheme, ds.root)  # never a foreign class written in this dataset's values
    sinks = [core_sink(folder, r, predictor) for r in cores]
    for record, sink in zip(cores, sinks):
        check_not_expert_file(sink.mask_path, ds.root)  # a prediction never lands among an expert's masks
        if sink.mask_path.resolve() == Path(record.image_path).resolve():
            raise InputError("the prediction would replace its own image; choose another --out", sink.mask_path)
    return sinks


def predict_dataset(predictor, ds: MultiExpertSet, cores: list[CoreRecord], folder: str | Path,
                    mode: WholeCore | Tiled = WholeCore(), *, rank: int = 0, world: int = 1,
                    overwrite: bool = False, progress: bool = True) -> DatasetSummary:
    """Predict this rank's share ``cores[rank::world]`` into ``folder`` (see the module doc);
    ``progress``: a tqdm bar (on stderr). Returns this rank's :class:`DatasetSummary`."""
    t0 = time.perf_counter()
    sinks = check_targets(predictor, ds, cores, folder)
    mine = list(zip(cores, sinks))[rank::world]
    summary = DatasetSummary(str(folder), rank, world, len(mine))
    todo = []
    for record, sink in mine:  # only our own cores: another rank may be writing its own ones right now
        meta = Path(sink.folder) / f"{sink.stem}_prediction.json"
        if overwrite:
            todo.append((record, FileSink(sink.folder, sink.stem, True, sink.layout)))
        elif not sink.mask_path.exists():
            todo.append((record, sink))
        elif meta.is_file() and _same_run(meta, predictor, mode):
            summary.skipped.append(record.name)
        else:
            why = ("another checkpoint's or mode's prediction" if meta.is_file()
                   else f"no {meta.name} beside it (not a finished prediction)")
            raise InputError(f"file exists ({why}); refusing to overwrite it (use --overwrite, or another --out)",
                             sink.mask_path)

    def one(item):
        record, sink = item
        core = load_core(record, ds.scheme)
        return predict(predictor, core.image, mode, sink, core=record.name, experts=list(core.masks),
                       labels=core.masks, scheme=ds.scheme)

    _each(todo, one, summary, progress)
    summary.seconds = time.perf_counter() - t0
    return summary


def _each(todo: list, one, summary: DatasetSummary, progress: bool) -> None:
    """``one(item)`` for every item of ``todo`` under a tqdm bar, its core and notes into ``summary``."""
    from tqdm import tqdm

    desc = "predict" if summary.world == 1 else f"predict (rank {summary.rank} of {summary.world})"
    with tqdm(total=len(todo), desc=desc, unit="core", disable=not progress, dynamic_ncols=True) as bar:
        for item in todo:
            out = one(item)
            summary.predicted.append(out.core)
            summary.notes += [n for n in out.notes if n not in summary.notes]
            bar.update(1)


def gather_summaries(summary: DatasetSummary) -> list[DatasetSummary]:
    """Every rank's summary, in rank order, on rank 0 (others get only their own); one process:
    ``[summary]``. Uses a gloo process group (CPU objects; made here and destroyed after, unless
    one exists), with a long timeout: a rank done early waits for the slowest shard."""
    if summary.world <= 1:
        return [summary]

    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    try:
        got: list = [None] * summary.world
        dist.all_gather_object(got, summary.to_dict())
    finally:
        if own:
            dist.destroy_process_group()
    return [DatasetSummary(**d) for d in got] if summary.rank == 0 else [summary]


def summary_dict(summaries: list[DatasetSummary], total: int) -> dict:
    """The job's summary (what ``--json`` writes): counts over all ranks and each rank's lists."""
    notes: list[str] = []
    for s in summaries:
        notes += [n for n in s.notes if n not in notes]
    return {"out": summaries[0].out, "world": summaries[0].world, "cores": total,
            "predicted": sum(len(s.predicted) for s in summaries), "skipped": sum(len(s.skipped) for s in summaries),
            "seconds": max(s.seconds for s in summaries), "notes": notes,
            "ranks": [s.to_dict() for s in summaries]}


__all__ = ["SPLITS", "DatasetSummary", "check_targets", "core_sink", "gather_summaries", "predict_dataset",
           "shard_env", "split_cores", "summary_dict"]


def experts_beside(image: str | Path, scheme=None):
    """(experts, labels) of the core an image is in, when it lies in a dataset folder's image folder
    (``Train Imgs/`` of Gleason 2019, ``images/`` of the generic layout, ``RawImages/`` of BU-BIL) and
    its scheme is ``scheme``'s: the confusion model's error maps are then given each expert's label.
    ``((), None)`` for any other image, or a dataset that cannot be read."""
    image = Path(image)
    try:
        ds = open_dataset(image.parent.parent)
        names = {r.name: r for r in ds.cores}
        record = names.get(image.stem) or names.get(image.name.split(".")[0])
        if record is None or Path(record.image_path).resolve() != image.resolve():
            return (), None
        if scheme is not None and tuple(ds.scheme.names) != tuple(scheme.names):
            return (), None
        core = load_core(record, ds.scheme)
    except InputError:
        return (), None
    return tuple(core.masks), dict(core.masks)


def predict_dataset_into_store(predictor, ds: MultiExpertSet, cores: list[CoreRecord], store_path: str | Path,
                               mode: Tiled, *, rank: int = 0, world: int = 1, overwrite: bool = False,
                               progress: bool = True) -> DatasetSummary:
    """Predict this rank's share ``cores[rank::world]`` into the review store at ``store_path``
    (created if absent; each rank writes only its own cores, each in its own folder), with the
    core's experts and their labels; cores already predicted there are skipped unless ``overwrite``."""
    if not isinstance(mode, Tiled):
        raise InputError("a review store holds full-resolution predictions: use --mode full (or --tiled)", store_path)
    check_compatible(predictor, ds.scheme, ds.root)
    t0 = time.perf_counter()
    store = _open_or_create(store_path, ds)
    mine = cores[rank::world]
    summary = DatasetSummary(str(store_path), rank, world, len(mine))
    todo = [r for r in mine if overwrite or r.name not in store.names
            or "prediction" not in store.label_roles(r.name)]
    summary.skipped = [r.name for r in mine if r not in todo]

    def one(record):
        core = ds.load(record.name)
        if record.name not in store.names:
            store.write_core(core)
        return predict(predictor, None, mode, StoreSink(store.path), core=record.name, experts=list(core.masks),
                       labels=core.masks, scheme=ds.scheme)

    _each(todo, one, summary, progress)
    summary.seconds = time.perf_counter() - t0
    return summary


def _open_or_create(path: str | Path, ds: MultiExpertSet):
    """The review store at ``path`` for ``ds``'s classes; ranks that start together may race to create
    it: whoever loses opens the one the winner made."""
    try:
        return ReviewStore.create(path, ds.scheme, dataset=str(ds.root), layout=ds.layout)
    except OSError:
        if Path(path).exists():
            return ReviewStore.open(path)
        raise
