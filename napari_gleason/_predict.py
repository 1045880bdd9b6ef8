"""One-click prediction, headless: checkpoint + core in, layer data out (no Qt, no viewer).

The predict widget runs :func:`prediction_job` in a worker; tests call it directly. Two settings:

- ``paper``: the paper's setting (§3.2). The core is resized to the checkpoint's input size with
  the trainer's own resize (what the network saw in training) and predicted whole
  (:func:`trainer.inference.predict_core`). Probabilities, weights (eq. 2) and roughness (eq. 5)
  stay at model resolution and are shown at the core's shape through lazy nearest-exact views
  (:mod:`._zoom`); the class map is upsampled nearest-exact to a real full-size array, because a
  pathologist copies and edits it. (The CLI's ``predict`` upsamples logits bilinearly instead; on a
  5120² core that alone takes ~5 s on two CPU cores, for a difference at class borders of at most
  half a model pixel.)
- ``full``: tiled inference at (a fraction of) native resolution with blended overlapping tiles
  (:func:`trainer.tiling.predict_tiled`); every output is a real full-size array.

The weight maps are those of the experts of *this* core that the weighting CNN was trained with,
softmax-normalised over them (eq. 2 with the core's experts present). A checkpoint with a confusion
model instead (``--confusion``, beyond the paper) gives ``error:<expert>`` maps: the chance that the
expert's label at a pixel is wrong, given that label in the paper setting (the core's expert layers
are passed in) and before seeing it at full resolution; and each expert's mean confusion matrix on
the core (:class:`._confusion.CoreConfusion`), always from the whole core at the model's size. Both
kinds of heat map are blanked (NaN, drawn transparent) off the tissue (:func:`trainer.tissue.tissue_mask`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.classes import ClassScheme
from trainer.errors import CheckpointError

from ._confusion import CoreConfusion
from ._cpu_sharing import gc_frozen
from ._learned import learned_consensus, renormalise
from ._llvm_guard import guard_triton
from ._zoom import zoom_pyramid, zoom_to

MODES = ("paper", "full")


@dataclass(frozen=True)
class PredictOptions:
    mode: str = "paper"  # "paper" (whole core → model input) or "full" (tiled)
    magnification: float = 1.0  # full mode: the model runs at this fraction of native resolution
    overlap: int = 64  # full mode: tile overlap in model pixels
    # full mode, core opened from a review store: read the image from it lazily and write every
    # output into it band by band (bounded memory at 5120²), instead of returning full arrays
    store: str | None = None
    tile_batch: int = 0  # tiles per forward pass; 0: 1 on the CPU (memory), 4 on a GPU

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")


@dataclass
class PredictOutput:
    core: str
    classes: np.ndarray  # uint8 H×W class indices at the core's resolution
    maps: dict[str, Any]  # role -> layer data at the core's shape (array or lazy pyramid)
    weights: dict[str, np.ndarray]  # expert -> weight map (any resolution) for the learned consensus
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # time in the worker, model load excluded
    device: str = "cpu"
    mode: str = "paper"
    input_size: int = 0
    in_label_values: bool = False  # classes already in label values (a lazy pyramid from the review store)
    learned: Any = None  # the learned consensus in label values, when computed with the prediction
    store: str | None = None  # the review store the outputs were written into
    confusion: CoreConfusion | None = None  # the confusion model's per-expert matrices on this core


def predictor_key(checkpoint: str | Path, device: str) -> tuple:
    """Cache key of a loaded predictor: the file (and its mtime: fine-tuning may rewrite it) and device."""
    path = Path(checkpoint)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = None
    return (str(path.resolve()), mtime, str(device))


def check_compatible(predictor, scheme: ClassScheme) -> None:
    """The checkpoint must predict the classes this core is labelled with."""
    theirs, ours = tuple(predictor.scheme.names), tuple(scheme.names)
    if theirs != ours:
        raise CheckpointError(
            f"the checkpoint predicts {len(theirs)} classes ({', '.join(theirs)}) but this core is labelled "
            f"with {len(ours)} ({', '.join(ours)}); choose a checkpoint trained on data with the same classes",
            predictor.path or None)


def annotator_kind(predictor) -> str | None:
    """The checkpoint's annotator model: ``"weight"`` (weighting CNN, eq. 2), ``"error"`` (confusion
    model) or ``None``; it names the role prefix of its per-expert maps."""
    if predictor.weighting is not None:
        return "weight"
    return "error" if getattr(predictor, "confusion", None) is not None else None


def annotator_notes(predictor, core_experts) -> tuple[str | None, list[str], list[str]]:
    """(kind of per-expert map, experts of this core that get one, notes explaining any that do not)."""
    kind = annotator_kind(predictor)
    if kind is None:
        return None, [], ["this checkpoint has no weighting CNN and no confusion model (trained without "
                          "re-weighting or --confusion): no weight:<expert> or error:<expert> layers and no "
                          "learned-weight consensus"]
    model = "weighting CNN" if kind == "weight" else "confusion model"
    known = [e for e in core_experts if e in predictor.experts]
    notes = []
    if not known:
        notes.append(f"none of this core's experts ({', '.join(core_experts) or 'none'}) is one the {model} "
                     f"was trained with ({', '.join(predictor.experts)}): no {kind} layers")
    elif len(known) < len(core_experts):
        missing = [e for e in core_experts if e not in known]
        what = "learned weight" if kind == "weight" else "error map"
        notes.append(f"the {model} knows experts {', '.join(predictor.experts)}; "
                     f"{', '.join(missing)} of this core get no {what}")
    return kind, known, notes


PRIOR_NOTE = ("full resolution: error:<expert> is the chance the expert's label is wrong *before* seeing it "
              "(the paper setting conditions it on each expert's label)")


def predict(predictor, image, core: str, core_experts, scheme: ClassScheme,
            options: PredictOptions = PredictOptions(), labels: dict[str, np.ndarray] | None = None) -> PredictOutput:
    """Predict ``image`` (H×W×3 uint8, array-like) and return the data of every output layer.

    ``labels``: expert → class-index map at the image's shape (the core's expert layers); with a
    confusion model, the paper setting's error maps are then conditioned on them.
    """
    t0 = time.perf_counter()
    check_compatible(predictor, scheme)
    kind, known, notes = annotator_notes(predictor, list(core_experts))
    if options.mode == "paper":
        classes, maps, weights, confusion = _predict_paper(predictor, image, core, kind, known, labels)
    else:
        classes, maps, weights, confusion = _predict_full(predictor, image, core, kind, known, options)
        notes += [PRIOR_NOTE] if kind == "error" and known else []
    return PredictOutput(core, classes, maps, weights, notes, time.perf_counter() - t0, str(predictor.device),
                         options.mode, int(predictor.size), confusion=confusion)


def _predict_paper(predictor, image, core, kind, known, labels):
    from trainer.data.augment import resize_image, resize_masks
    from trainer.inference import predict_core
    from trainer.tissue import blank_outside, tissue_mask

    img = np.asarray(image)
    h, w = img.shape[:2]
    small = resize_image(img, predictor.size)  # the training resize; predict_core then resizes nothing
    tissue = tissue_mask(small)
    small_labels = None
    if kind == "error" and labels:
        names = [e for e in known if e in labels]
        if names:  # the masks' training resize (nearest), so each label sits where the network saw it
            stack = resize_masks(np.stack([np.asarray(labels[e], np.uint8) for e in names]), predictor.size)
            small_labels = dict(zip(names, stack))
    p = predict_core(predictor, small, experts=tuple(known), labels=small_labels, tissue=tissue)
    maps: dict[str, Any] = {f"probability:{name}": zoom_pyramid(p.probabilities[i], (h, w))
                            for i, name in enumerate(predictor.classes)}
    weights = dict(p.weights or {}) if known else {}
    errors = dict(p.errors or {}) if known else {}
    maps.update({f"weight:{e}": zoom_pyramid(blank_outside(m, tissue), (h, w)) for e, m in weights.items()})
    maps.update({f"error:{e}": zoom_pyramid(blank_outside(m, tissue), (h, w)) for e, m in errors.items()})
    maps["roughness"] = zoom_pyramid(p.roughness, (h, w))
    return zoom_to(p.classes, (h, w)), maps, weights, _core_confusion(predictor, core, p, tissue)


def _core_confusion(predictor, core, prediction, tissue) -> CoreConfusion | None:
    if not prediction.confusion:
        return None
    return CoreConfusion.from_prediction(core, predictor.classes, prediction.confusion, prediction.probabilities,
                                         tissue)


def whole_core_confusion(predictor, source, core: str, known) -> CoreConfusion | None:
    """The per-core confusion matrices from the whole core at the model's size (any array-like ``source``).

    The full-resolution paths need it: tiles give error maps, but the matrices summarise the core as
    a whole. A big core is read strided to twice the model size first (bounded memory), then given
    the training resize.
    """
    from trainer.data.augment import resize_image
    from trainer.inference import predict_core
    from trainer.tissue import tissue_mask

    if annotator_kind(predictor) != "error" or not known:
        return None
    h, w = int(source.shape[0]), int(source.shape[1])
    step = max(1, min(h, w) // (2 * int(predictor.size)))
    small = resize_image(np.asarray(source[::step, ::step])[..., :3], predictor.size)
    tissue = tissue_mask(small)
    return _core_confusion(predictor, core, predict_core(predictor, small, experts=tuple(known), tissue=tissue),
                           tissue)


def _predict_full(predictor, image, core, kind, known, options: PredictOptions):
    from trainer.losses import heatmap_options, roughness_map_numpy
    from trainer.tiling import predict_tiled
    from trainer.tissue import blank_outside, tissue_mask

    res = predict_tiled(predictor, image, tile=predictor.size, overlap=options.overlap,
                        scale=options.magnification, with_weights=bool(known))
    maps: dict[str, Any] = {f"probability:{name}": res.probabilities[i] for i, name in enumerate(predictor.classes)}
    weights, errors = {}, {}
    if kind == "weight" and known and res.weights is not None:
        # tiles used every expert of the checkpoint: renormalise over this core's experts (eq. 2)
        weights = renormalise({e: res.weights[i] for i, e in enumerate(predictor.experts)}, known)
    if kind == "error" and known and res.errors is not None:
        errors = {e: res.errors[predictor.experts.index(e)] for e in known}
    if weights or errors:
        tissue = tissue_mask(image)
        maps.update({f"weight:{e}": blank_outside(m, tissue) for e, m in weights.items()})
        maps.update({f"error:{e}": blank_outside(m, tissue) for e, m in errors.items()})
    maps["roughness"] = roughness_map_numpy(np.asarray(image), **heatmap_options(predictor.loss_config))
    return res.classes, maps, weights, whole_core_confusion(predictor, image, core, known)


#: Above this many pixels on a side, a full-resolution prediction of a core opened from files goes
#: through the dataset's review store (bounded memory) rather than full-size arrays in memory.
STREAM_ABOVE = 2048
STORE_NAME = "napari-gleason.zarr"  # the export widget's default store, inside the dataset folder


def streaming_store(origin: dict, shape, options: PredictOptions) -> str | None:
    """The review store a full-resolution prediction should stream through, or ``None``.

    A core opened from a store uses that store; a big core opened from a dataset folder uses the
    dataset's default store (``<dataset>/napari-gleason.zarr``, cached there first); anything
    else (small cores, samples) predicts in memory.
    """
    if options.mode != "full":
        return None
    if origin.get("store"):
        return str(origin["store"])
    if origin.get("dataset") and max(shape[:2]) > STREAM_ABOVE:
        return str(Path(origin["dataset"]) / STORE_NAME)
    return None


def ensure_cached(store_path: str | Path, core) -> tuple[bool, str | None]:
    """Make sure ``core`` (a :class:`CoreData` from files) is in the store: (usable, note).

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


def prediction_job(predictor, checkpoint, device: str, image, core: str, scheme: ClassScheme, coding,
                   expert_labels: dict[str, Any], options: PredictOptions = PredictOptions(), cache_core=None):
    """Worker generator: ``("loaded", predictor)`` when it had to load one, then ``("prediction",
    PredictOutput)``, then ``("learned", label values or None)``.

    ``expert_labels`` maps expert -> label data in *display values* (the expert layers' level 0,
    read-only, so the worker may read them); the prediction is yielded before the learned
    consensus is computed, so its layers appear as early as possible.

    ``cache_core`` (a :class:`CoreData`): with ``options.store`` set, the core is first cached in
    that store if it is not there yet (:func:`ensure_cached`); if that fails the prediction runs in
    memory and says why in its notes.
    """
    guard_triton()  # before torchvision/timm import torch._dynamo (see _llvm_guard)
    with gc_frozen():  # no 200-400 ms full collection holding the GIL mid-prediction (see _gentle)
        if predictor is None:
            from trainer.inference import load_predictor

            predictor = load_predictor(checkpoint, device)
            yield "loaded", predictor
        notes = []
        if options.mode == "full" and options.store and cache_core is not None:
            usable, note = ensure_cached(options.store, cache_core)
            notes += [note] if note else []
            if not usable:
                options = replace(options, store=None)
        if options.mode == "full" and options.store:
            out = predict_into_store(predictor, options.store, core, expert_labels, scheme, coding, options)
        else:
            labels = None
            if options.mode == "paper" and annotator_kind(predictor) == "error":  # error maps given the labels
                labels = {e: coding.to_classes(np.asarray(v)) for e, v in expert_labels.items()
                          if e in predictor.experts}
            out = predict(predictor, image, core, list(expert_labels), scheme, options, labels=labels)
        out.notes[:0] = notes
    yield "prediction", out
    if out.store is not None:
        yield "learned", out.learned
        return
    if not out.weights:
        yield "learned", None
        return
    classes = {e: coding.to_classes(np.asarray(expert_labels[e])) for e in out.weights}
    yield "learned", coding.to_labels(learned_consensus(classes, out.weights, scheme.num_classes))


def predict_into_store(predictor, store_path, core: str, expert_labels: dict[str, Any], scheme: ClassScheme,
                       coding, options: PredictOptions = PredictOptions(mode="full")) -> PredictOutput:
    """Full-resolution prediction of a core in a review store, read from it and written into it.

    The image is read tile by tile from the store; every band of outputs goes straight into the
    store (:class:`trainer.review_store.PredictionWriter`): the class map, the probabilities, the
    weight maps of this core's experts (renormalised over them, eq. 2) and the learned consensus
    (computed per band from ``expert_labels``, label values, read lazily), or with a confusion
    model their error maps (before seeing the labels), and the roughness map. Weight and error maps
    are blanked (NaN) off the tissue. Memory stays at one band of tiles whatever the core size.
    Returns lazy pyramids of the stored outputs; an error or a cancel leaves the store as it was.
    """
    from trainer.losses import heatmap_options
    from trainer.tiling import predict_tiled
    from trainer.tissue import tissue_mask

    from trainer.review_store import PredictionWriter, ReviewStore, roughness_into

    t0 = time.perf_counter()
    check_compatible(predictor, scheme)
    kind, known, notes = annotator_notes(predictor, list(expert_labels))
    store = ReviewStore.open(store_path)
    source = store.image(core)
    index = [list(predictor.experts).index(e) for e in known]
    nc = scheme.num_classes
    batch = options.tile_batch or (1 if predictor.device.type == "cpu" else 4)
    weighted, errored = (kind == "weight" and bool(known)), (kind == "error" and bool(known))
    tissue = tissue_mask(source) if known else None  # analysed at ≤ 1024² from a strided read
    nan = np.float32(np.nan)

    with PredictionWriter(store, core, list(predictor.classes), known if weighted else (), learned=weighted,
                          error_experts=known if errored else ()) as writer:
        def sink(y0, y1, classes, probs, weights, errors=None):
            writer.write_labels("prediction", y0, y1, classes)
            writer.write_map("probability", y0, y1, probs)
            if weighted and weights is not None:
                w = weights[index]
                w = w / np.maximum(w.sum(0), np.float32(1e-12))  # eq. (2) over this core's experts
                writer.write_map("weight", y0, y1, np.where(tissue[y0:y1], w, nan))
                bands = {e: coding.to_classes(np.asarray(expert_labels[e][y0:y1])) for e in known}
                learned = learned_consensus(bands, {e: w[i] for i, e in enumerate(known)}, nc)
                writer.write_labels("consensus:learned", y0, y1, learned)
            if errored and errors is not None:
                writer.write_map("error", y0, y1, np.where(tissue[y0:y1], errors[index], nan))

        predict_tiled(predictor, source, tile=predictor.size, overlap=options.overlap, scale=options.magnification,
                      batch=batch, sink=sink, with_weights=bool(known))
        roughness_into(writer, source, heatmap_options(predictor.loss_config))
        writer.finish()

    confusion = whole_core_confusion(predictor, source, core, known) if errored else None
    data = store.load(core)
    maps = data.maps
    learned = data.labels.get("consensus:learned") if weighted else None
    weights = {e: maps[f"weight:{e}"][0] for e in known if f"weight:{e}" in maps}
    notes += [PRIOR_NOTE] if errored else []
    return PredictOutput(core, data.labels["prediction"], maps, weights, notes, time.perf_counter() - t0,
                         str(predictor.device), "full", int(predictor.size), in_label_values=True, learned=learned,
                         store=str(store.path), confusion=confusion)
