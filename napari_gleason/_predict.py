"""One-click prediction in the plugin: a worker generator around the trainer's one pipeline.

:func:`trainer.prediction.predict` does the work for both settings (the paper's, whole core at
the model's size, outputs at model resolution; full resolution, tiled); this module only picks
the sink (in memory, or the review store a big core streams through: :func:`streaming_store`,
:func:`ensure_cached`), loads the checkpoint in the worker, and yields the results in the order
the widget shows them. No Qt, no viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.data.classes import ClassScheme, LabelCoding
from trainer.prediction import ArraySink, StoreSink, Tiled, WholeCore, annotator_kind, learned_consensus, predict_stages

from ._cpu_sharing import gc_frozen
from ._llvm_guard import guard_triton


def predictor_key(checkpoint: str | Path, device: str, precision: str = "auto") -> tuple:
    """Cache key of a loaded predictor: the file (and its mtime: fine-tuning may rewrite it), device
    and precision."""
    path = Path(checkpoint)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = None
    return (str(path.resolve()), mtime, str(device), precision)


#: Above this many pixels on a side, a full-resolution prediction of a core opened from files goes
#: through the dataset's review store (bounded memory) rather than full-size arrays in memory.
STREAM_ABOVE = 2048
STORE_NAME = "napari-gleason.zarr"  # the export widget's default store, inside the dataset folder


def streaming_store(origin: dict, shape, mode) -> str | None:
    """The review store a full-resolution prediction should stream through, or ``None``.

    A core opened from a store uses that store; a big core opened from a dataset folder uses the
    dataset's default store (``<dataset>/napari-gleason.zarr``, cached there first); anything
    else (small cores, samples) predicts in memory.
    """
    if not isinstance(mode, Tiled):
        return None
    if origin.get("store"):
        return str(origin["store"])
    if origin.get("dataset") and max(shape[:2]) > STREAM_ABOVE:
        return str(Path(origin["dataset"]) / STORE_NAME)
    return None


def ensure_cached(store_path: str | Path, core) -> tuple[bool, str | None]:
    """Make sure ``core`` (a :class:`Core` from files) is in the store: (usable, note).

    A core already there is used as it is (it may hold a pathologist's saved layers), provided it
    has the same shape; an unwritable dataset folder means "not usable", with a note saying why.
    """
    import shutil

    from trainer.review_store import ReviewStore

    path = Path(store_path)
    new_store = not path.exists()
    try:
        store = ReviewStore.create(path, core.scheme, dataset=core.origin.get("dataset"),
                                   layout=core.origin.get("layout"))
        if core.name in store.names:
            cached = store.shape(core.name)
            if tuple(cached) != tuple(core.shape):
                return False, (f"{path} holds {core.name} at {cached[0]}×{cached[1]}, not "
                               f"{core.shape[0]}×{core.shape[1]} as opened: predicted in memory instead")
            return True, None
        store.write_core(core)
        return True, f"{core.name} cached in {path} for full-resolution prediction"
    except OSError as e:  # a read-only dataset folder, a full disk
        if new_store and path.exists():
            shutil.rmtree(path, ignore_errors=True)
        return False, f"could not cache the core in {path} ({e.strerror or e}): predicted in memory instead"


def prediction_job(predictor, checkpoint, device: str, image, core: str, scheme: ClassScheme, coding: LabelCoding,
                   expert_labels: dict[str, Any], mode=WholeCore(), store: str | None = None, cache_core=None,
                   precision: str = "auto"):
    """Worker generator: ``("loaded", predictor)`` when it had to load one, then ``("prediction",
    PredictOutput)`` — twice in the paper setting with an annotator model: the segmentation first
    (``complete`` false), then with the per-expert maps —, then ``("learned", label values or None)``.

    ``expert_labels`` maps expert -> label data in *label values* (the expert layers' level 0,
    read-only, so the worker may read them); each output is yielded as soon as it exists, so its
    layers appear as early as possible. ``store`` (tiled mode): the
    review store to stream through; ``cache_core`` (a :class:`Core` from files) is first cached
    there if it is not yet (:func:`ensure_cached`); if that fails the prediction runs in memory and
    says why in its notes.
    """
    guard_triton()  # before torchvision/timm import torch._dynamo (see _llvm_guard)
    with gc_frozen():  # no 200-400 ms full collection holding the GIL mid-prediction (see _cpu_sharing)
        if predictor is None:
            from trainer.prediction.predictor import load_predictor

            predictor = load_predictor(checkpoint, device, precision=precision)
            yield "loaded", predictor
        notes = []
        if isinstance(mode, Tiled) and store and cache_core is not None:
            usable, note = ensure_cached(store, cache_core)
            notes += [note] if note else []
            store = store if usable else None
        sink = StoreSink(store) if isinstance(mode, Tiled) and store else ArraySink()
        labels = expert_labels if (isinstance(sink, StoreSink) or annotator_kind(predictor) == "error") else None
        for out in predict_stages(predictor, image, mode, sink, core=core, experts=list(expert_labels),
                                  labels=labels, coding=coding, scheme=scheme):
            out.notes[:0] = notes
            yield "prediction", out
    if out.store is not None:
        yield "learned", out.learned
        return
    if not out.weights:
        yield "learned", None
        return
    classes = {e: coding.to_classes(expert_labels[e]) for e in out.weights}
    yield "learned", coding.to_labels(learned_consensus(classes, out.weights, scheme.num_classes))
