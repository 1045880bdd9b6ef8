"""The one prediction pipeline: ``predict(predictor, source, mode, sink)``.

Importing it loads no torch (the reader and the widgets import it with the napari process): the
predictor, the tiling and the torch losses are imported when a prediction runs.

The CLI, the predict widget (both settings) and the benchmarks make this one call; what differs
is said by two small objects, not by flags:

- the **mode**: :class:`WholeCore` (the paper's setting, §3.2: the core resized to the model's
  input and predicted whole) or :class:`Tiled` (full resolution, blended overlapping tiles at a
  chosen magnification, :func:`trainer.prediction.tiling.predict_tiled`);
- the **sink**: :class:`ArraySink` (in memory), :class:`StoreSink` (streamed band by band into a
  core of a review store, bounded memory) or :class:`FileSink` (mask PNG + ``.npy`` maps + JSON,
  the CLI's files).

No work the screen does not need: in the paper setting every output stays at the model's
resolution (``PredictOutput.scale`` says how many core pixels one output pixel covers, so napari
registers the layers with ``scale``/``translate``); a full-size copy of the class map is made only
for whoever edits or exports it (:func:`trainer.resample.resize_nearest`), and the file sink writes the
mask at the image's size.

Per-expert maps: with a weighting CNN, ``weight:<expert>`` for the experts of *this* core that it
was trained with, softmax-normalised over them (eq. 2); with a confusion model (beyond the paper),
``error:<expert>``, the chance that the expert's label is wrong — given that label in the paper
setting (pass ``labels``), before seeing it when tiled — and each expert's confusion matrices on
the core (:class:`.confusion.CoreConfusion`; when tiled, summed from the same tiles). Both
are NaN off the tissue (:func:`trainer.prediction.tissue.tissue_mask`). Label values are turned into classes
by :class:`trainer.data.classes.LabelCoding` only (pass ``coding`` with labels in label values).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trainer import jsonsafe
from trainer.atomic import atomic_files
from trainer.data.classes import GLEASON_SCHEME, ClassScheme, LabelCoding
from trainer.data.generic import core_name, is_generic_dir
from trainer.data.gleason2019 import IMAGE_DIRS, is_gleason_dir
from trainer.data.io import MaskExistsError, classes_to_values
from trainer.errors import CheckpointError, InputError
from trainer.resample import resize_image, resize_nearest
from trainer.review_store import PredictionWriter, ReviewStore, roughness_into

from .confusion import CoreConfusion, annotator_untrained
from .learned import learned_consensus, renormalise
from .tissue import blank_outside, tissue_mask


# --- modes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WholeCore:
    """The paper's setting: the whole core at the checkpoint's input size (or ``size``)."""

    size: int | None = None
    name = "paper"


@dataclass(frozen=True)
class Tiled:
    """Full resolution: tiles of the model's input size at ``magnification`` of the core's
    resolution, ``overlap`` model pixels blended; ``tile_batch`` tiles per forward pass (0: 1 on
    the CPU, 4 on a GPU)."""

    magnification: float = 1.0
    overlap: int = 64
    tile_batch: int = 0
    name = "full"


# --- sinks ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArraySink:
    """Outputs as arrays in memory (model resolution in the paper setting, full size when tiled)."""


@dataclass(frozen=True)
class StoreSink:
    """Stream a tiled prediction into core ``core`` of the review store at ``path`` (the image is
    read from the store too); an error or a cancel leaves the store as it was."""

    path: str | Path


@dataclass(frozen=True)
class FileSink:
    """The mask in the dataset's own convention: ``<folder>/<stem>_classimg_nonconvex.png`` for
    Gleason 2019, ``<folder>/<stem>.png`` for the generic layout, in the scheme's mask values
    (Gleason 1/3/4/5; a generic set's ``classes.json`` export values); beside it
    ``<stem>_probabilities.npy`` / ``_weights.npy`` / ``_errors.npy`` (not blanked off the tissue; given
    each expert's label where the labels were passed, else image-only: ``errors_map`` in the JSON says
    which, and ``_errors_image_only.npy`` holds the image-only maps beside given-label ones) /
    ``_roughness.npy`` and ``_prediction.json`` (classes, experts, timing, the confusion matrices),
    all at the image's size (nearest-exact from the model's resolution)."""

    folder: str | Path
    stem: str
    overwrite: bool = False
    layout: str = "gleason2019"

    @property
    def mask_path(self) -> Path:
        name = f"{self.stem}_classimg_nonconvex.png" if self.layout == "gleason2019" else f"{self.stem}.png"
        return Path(self.folder) / name

    @classmethod
    def for_image(cls, folder: str | Path, image: str | Path, scheme: ClassScheme, overwrite: bool = False) -> FileSink:
        """The sink for predicting ``image``: its core name as stem, the convention of the dataset it
        lies in (``images/`` of a generic set, ``Train Imgs/``… of a Gleason one), else Gleason 2019
        for a model of the paper's classes and the generic naming for any other."""

        image = Path(image)
        parent, root = image.parent, image.parent.parent
        if parent.name == "images" and is_generic_dir(root):
            layout = "generic"
        elif parent.name in IMAGE_DIRS and is_gleason_dir(root):
            layout = "gleason2019"
        else:
            layout = "gleason2019" if scheme == GLEASON_SCHEME else "generic"
        return cls(folder, core_name(image), overwrite, layout)


@dataclass
class PredictOutput:
    core: str
    #: uint8 class indices (at ``shape``/``scale``); from a store sink, lazy levels in label values
    classes: Any
    maps: dict[str, Any]  # role (probability:<class>, weight:<e>, error:<e>, roughness) -> map
    weights: dict[str, np.ndarray]  # expert -> weight map (the output's resolution), for the learned consensus
    notes: list[str] = field(default_factory=list)
    #: expert -> error map, not blanked: given the expert's label where ``labels`` were passed (the
    #: paper setting), else the image-only map (the same as ``errors_prior``)
    errors: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0  # inference in this call, model load excluded
    device: str = "cpu"
    mode: WholeCore | Tiled = field(default_factory=WholeCore)
    input_size: int = 0
    shape: tuple[int, int] = (0, 0)  # the core's shape
    #: core pixels per output pixel (y, x): > 1 in the paper setting, 1 when tiled
    scale: tuple[float, float] = (1.0, 1.0)
    in_label_values: bool = False  # ``classes`` in label values (what a store sink hands back)
    learned: Any = None  # the learned consensus in label values, when computed with the prediction
    store: str | None = None  # where a store sink wrote the outputs
    confusion: CoreConfusion | None = None
    precision: str = "fp32"  # the dtype the networks ran in
    #: False for the first of :func:`predict_stages`' two outputs: per-expert maps still to come
    complete: bool = True
    #: expert -> the image-only error map (before seeing the label: ``1 − Σ_j A[j, j]·p_j``), not blanked
    errors_prior: dict[str, np.ndarray] = field(default_factory=dict)

    def classes_full(self) -> np.ndarray:
        """The class map at the core's shape (a real array: for editing and export)."""
        level0 = self.classes[0] if isinstance(self.classes, (list, tuple)) else self.classes
        return resize_nearest(np.asarray(level0), self.shape)


# --- checks and notes ---------------------------------------------------------------------------------
def check_compatible(predictor, scheme: ClassScheme, data: str | Path | None = None) -> None:
    """The checkpoint must predict the classes this core (or the dataset ``data``) is labelled with:
    same names in the same order. A mismatch is one line naming the checkpoint and the data."""
    theirs, ours = tuple(predictor.scheme.names), tuple(scheme.names)
    if theirs != ours:
        where = f"the dataset {data} is" if data is not None else "this core is"
        raise CheckpointError(
            f"the checkpoint predicts {len(theirs)} classes ({', '.join(theirs)}) but {where} labelled "
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
    notes = [note] if (note := untrained_note(predictor)) else []
    if not known:
        notes.append(f"none of this core's experts ({', '.join(core_experts) or 'none'}) is one the {model} "
                     f"was trained with ({', '.join(predictor.experts)}): no {kind} layers")
    elif len(known) < len(core_experts):
        missing = [e for e in core_experts if e not in known]
        what = "learned weight" if kind == "weight" else "error map"
        notes.append(f"the {model} knows experts {', '.join(predictor.experts)}; "
                     f"{', '.join(missing)} of this core get no {what}")
    return kind, known, notes


def untrained_note(predictor) -> str | None:
    """Why ``predictor``'s annotator model never trained (its maps and matrices mean nothing), or ``None``."""
    return annotator_untrained(annotator_kind(predictor), predictor.loss_config, getattr(predictor, "iteration", None),
                               getattr(predictor, "run_iters", None), getattr(predictor, "init", None))


PRIOR_NOTE = ("full resolution: error:<expert> is the chance the expert's label is wrong *before* seeing it "
              "(the paper setting conditions it on each expert's label)")


def _precision(predictor) -> str:
    dtype = getattr(predictor, "compute_dtype", None)
    return "fp32" if dtype is None else str(dtype).replace("torch.", "")


# --- the pipeline -----------------------------------------------------------------------------------
def predict(predictor, source, mode: WholeCore | Tiled = WholeCore(), sink=ArraySink(), *, core: str = "core",
            experts=(), labels: dict[str, Any] | None = None, coding: LabelCoding | None = None,
            scheme: ClassScheme | None = None) -> PredictOutput:
    """Predict core ``core`` (``source``: ``H×W×3`` uint8 array-like; ``None`` with a store sink:
    read from the store) in ``mode`` into ``sink``.

    ``experts``: this core's experts (who get weight or error maps); ``labels``: expert -> their
    labels at the core's shape, class indices, or label values when ``coding`` is given (the
    store sink reads them band by band for the learned consensus; the paper setting conditions
    the error maps on them); ``scheme``: the core's classes, checked against the checkpoint's.
    """
    for out in predict_stages(predictor, source, mode, sink, core=core, experts=experts, labels=labels,
                              coding=coding, scheme=scheme):
        pass
    return out


def predict_stages(predictor, source, mode: WholeCore | Tiled = WholeCore(), sink=ArraySink(), *,
                   core: str = "core", experts=(), labels: dict[str, Any] | None = None,
                   coding: LabelCoding | None = None, scheme: ClassScheme | None = None):
    """:func:`predict` for a viewer: in the paper setting with an in-memory sink and a checkpoint
    that has an annotator model, first the output without per-expert maps (``complete`` false:
    class map, probabilities, roughness), then the complete one; otherwise the complete output
    alone. The last output is always what :func:`predict` returns."""
    t0 = time.perf_counter()
    check_compatible(predictor, scheme or predictor.scheme)
    experts = list(experts)
    if isinstance(sink, StoreSink):
        if not isinstance(mode, Tiled):
            raise ValueError("a review store holds full-resolution predictions: use Tiled() with StoreSink")
        outs = iter([_tiled_into_store(predictor, sink, core, experts, labels or {}, coding, mode)])
    elif isinstance(mode, WholeCore):
        outs = _whole_core(predictor, source, core, experts, labels, coding, mode)
        if isinstance(sink, FileSink):  # files are written once, complete
            outs = iter([list(outs)[-1]])
    else:
        outs = iter([_tiled(predictor, source, core, experts, mode)])
    for out in outs:
        out.seconds = time.perf_counter() - t0
        out.precision = _precision(predictor)
        if out.complete and isinstance(sink, FileSink):
            _write_files(predictor, out, sink)
        yield out


def _as_classes(data, coding: LabelCoding | None) -> np.ndarray:
    return coding.to_classes(np.asarray(data)) if coding is not None else np.asarray(data, np.uint8)


def _whole_core(predictor, image, core, experts, labels, coding, mode: WholeCore):
    """Generator: the paper setting's output without per-expert maps (``complete=False``; only when
    the checkpoint has an annotator model), then the complete output."""
    from .predictor import predict_core_stages  # torch: imported when a prediction runs, not with the reader

    kind, known, notes = annotator_notes(predictor, experts)
    img = np.asarray(image)
    h, w = img.shape[:2]
    size = int(getattr(mode, "size", None) or predictor.size)
    small = resize_image(img, size)  # the training resize; predict_core then resizes nothing
    tissue = tissue_mask(small)
    small_labels = None
    if kind == "error" and labels:
        names = [e for e in known if e in labels]
        if names:  # the masks' training resize (nearest), so each label sits where the network saw it
            stack = resize_nearest(np.stack([_as_classes(labels[e], coding) for e in names]), size)
            small_labels = dict(zip(names, stack))
    stages = predict_core_stages(predictor, small, experts=tuple(known), labels=small_labels, tissue=tissue)
    maps_to_come = kind is not None and bool(known)  # else the first stage is all there is to show
    for i, p in enumerate(stages):
        maps: dict[str, Any] = {f"probability:{name}": p.probabilities[i] for i, name in enumerate(predictor.classes)}
        weights = dict(p.weights or {}) if known else {}
        errors = dict(p.errors or {}) if known else {}
        errors_prior = dict(p.errors_prior or {}) if known else {}
        maps.update({f"weight:{e}": blank_outside(m, tissue) for e, m in weights.items()})
        maps.update({f"error:{e}": blank_outside(m, tissue) for e, m in errors.items()})
        maps["roughness"] = p.roughness
        confusion = None
        if p.confusion:
            confusion = CoreConfusion.from_prediction(core, predictor.classes, p.confusion, p.probabilities, tissue,
                                                      untrained_note(predictor))
        complete = i > 0 or not maps_to_come
        yield PredictOutput(core, p.classes, maps, weights, list(notes), errors=errors, device=str(predictor.device),
                            mode=mode, input_size=size, shape=(h, w),
                            scale=(h / p.classes.shape[0], w / p.classes.shape[1]), confusion=confusion,
                            complete=complete, errors_prior=errors_prior)
        if complete:
            stages.close()
            return


def tiled_confusion(predictor, res, core: str, known) -> CoreConfusion | None:
    """The per-core confusion matrices that :func:`trainer.prediction.tiling.predict_tiled` summed from its tiles
    (each pixel once, over the tissue), for this core's experts ``known``."""
    if annotator_kind(predictor) != "error" or not known or getattr(res, "confusion", None) is None:
        return None
    matrices = {e: res.confusion[list(predictor.experts).index(e)] for e in known}
    return CoreConfusion(core, tuple(predictor.classes), matrices, np.asarray(res.share, np.float64),
                         untrained_note(predictor))


def _tiled(predictor, image, core, experts, mode: Tiled) -> PredictOutput:
    from trainer.losses import roughness_map_numpy  # torch (see _whole_core)
    from .tiling import predict_tiled

    kind, known, notes = annotator_notes(predictor, experts)
    batch = mode.tile_batch or (1 if predictor.device.type == "cpu" else 4)
    tissue = tissue_mask(image) if known else None
    res = predict_tiled(predictor, image, tile=predictor.size, overlap=mode.overlap, scale=mode.magnification,
                        batch=batch, with_weights=bool(known), tissue=tissue)
    maps: dict[str, Any] = {f"probability:{name}": res.probabilities[i] for i, name in enumerate(predictor.classes)}
    weights, errors = {}, {}
    if kind == "weight" and known and res.weights is not None:
        # tiles used every expert of the checkpoint: renormalise over this core's experts (eq. 2)
        weights = renormalise({e: res.weights[i] for i, e in enumerate(predictor.experts)}, known)
    if kind == "error" and known and res.errors is not None:
        errors = {e: res.errors[predictor.experts.index(e)] for e in known}
        notes.append(PRIOR_NOTE)
    if weights or errors:
        maps.update({f"weight:{e}": blank_outside(m, tissue) for e, m in weights.items()})
        maps.update({f"error:{e}": blank_outside(m, tissue) for e, m in errors.items()})
    maps["roughness"] = roughness_map_numpy(np.asarray(image), **predictor.heatmap)
    return PredictOutput(core, res.classes, maps, weights, notes, errors=errors, device=str(predictor.device), mode=mode,
                         input_size=int(predictor.size), shape=tuple(res.classes.shape),
                         confusion=tiled_confusion(predictor, res, core, known), errors_prior=dict(errors))


def _tiled_into_store(predictor, sink: StoreSink, core, experts, labels, coding, mode: Tiled) -> PredictOutput:
    """The image read tile by tile from the store; every band of outputs written straight into it
    (:class:`trainer.review_store.PredictionWriter`): the class map, the probabilities, the weight
    maps of this core's experts (renormalised over them, eq. 2) and the learned consensus (per band
    from ``labels``), or the error maps (before seeing the labels), and the roughness map. Returns
    lazy pyramids of the stored outputs."""
    from .tiling import predict_tiled  # torch (see _whole_core)

    kind, known, notes = annotator_notes(predictor, experts)
    store = ReviewStore.open(sink.path)
    source = store.image(core)
    index = [list(predictor.experts).index(e) for e in known]
    nc = predictor.scheme.num_classes
    batch = mode.tile_batch or (1 if predictor.device.type == "cpu" else 4)
    weighted, errored = (kind == "weight" and bool(known)), (kind == "error" and bool(known))
    tissue = tissue_mask(source) if known else None  # analysed at ≤ 1024² from a strided read
    nan = np.float32(np.nan)

    with PredictionWriter(store, core, list(predictor.classes), known if weighted else (), learned=weighted,
                          error_experts=known if errored else ()) as writer:
        def band(y0, y1, classes, probs, weights, errors=None):
            writer.write_labels("prediction", y0, y1, classes)
            writer.write_map("probability", y0, y1, probs)
            if weighted and weights is not None:
                w = weights[index]
                w = w / np.maximum(w.sum(0), np.float32(1e-12))  # eq. (2) over this core's experts
                writer.write_map("weight", y0, y1, np.where(tissue[y0:y1], w, nan))
                rows = {e: _as_classes(labels[e][y0:y1], coding) for e in known if e in labels}
                if rows:
                    learned = learned_consensus(rows, {e: w[i] for i, e in enumerate(known)}, nc)
                    writer.write_labels("consensus:learned", y0, y1, learned)
            if errored and errors is not None:
                writer.write_map("error", y0, y1, np.where(tissue[y0:y1], errors[index], nan))

        res = predict_tiled(predictor, source, tile=predictor.size, overlap=mode.overlap, scale=mode.magnification,
                            batch=batch, sink=band, with_weights=bool(known), tissue=tissue)
        roughness_into(writer, source, predictor.heatmap)
        writer.finish()

    confusion = tiled_confusion(predictor, res, core, known) if errored else None
    data = store.load(core)
    learned = data.labels.get("consensus:learned") if weighted else None
    weights = {e: data.maps[f"weight:{e}"][0] for e in known if f"weight:{e}" in data.maps}
    notes += [PRIOR_NOTE] if errored else []
    return PredictOutput(core, data.labels["prediction"], data.maps, weights, notes, device=str(predictor.device),
                         mode=mode, input_size=int(predictor.size), shape=tuple(source.shape[:2]),
                         in_label_values=True, learned=learned, store=str(store.path), confusion=confusion)


def _write_files(predictor, out: PredictOutput, sink: FileSink) -> None:
    """The CLI's files (see :class:`FileSink`), all or none: each is written to a temporary name and
    they are renamed together, the mask last (:func:`trainer.atomic.atomic_files`), so a full disk
    leaves neither a partial file nor a mask without its maps. Never over a mask unless ``overwrite``."""
    folder = Path(sink.folder)
    if sink.mask_path.exists() and not sink.overwrite:
        raise MaskExistsError("file exists; refusing to overwrite it (overwrite=True replaces it)", sink.mask_path)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the prediction's folder ({exc.strerror or exc})", folder) from exc
    try:
        _write_all(predictor, out, sink, folder)
    except BaseException:
        if made:  # the folder made for this prediction goes with it (if nothing else came in meanwhile)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write_all(predictor, out: PredictOutput, sink: FileSink, folder: Path) -> None:


    def full(m) -> np.ndarray:
        return resize_nearest(np.asarray(m, np.float32), out.shape)

    meta: dict[str, Any] = {"checkpoint": str(predictor.path), "classes": list(predictor.classes),
                            "mode": out.mode.name, "seconds": out.seconds, "device": out.device,
                            "precision": out.precision, "experts": None}
    given = {e for e, m in out.errors.items() if out.errors_prior.get(e) is not m}
    with atomic_files() as files:
        def save(suffix: str, array: np.ndarray, what: str) -> None:
            with files.open(folder / f"{sink.stem}_{suffix}.npy", "wb", what=what) as f:
                np.save(_Writes(f), array, allow_pickle=False)

        save("probabilities", np.stack([full(out.maps[f"probability:{c}"]) for c in predictor.classes]),
             "the probabilities")
        save("roughness", full(out.maps["roughness"]), "the roughness map")
        for kind, maps in (("weights", out.weights), ("errors", out.errors)):
            if maps:  # N×H×W; errors: the chance each expert's label is wrong here (see "errors_map")
                save(kind, np.stack([full(m) for m in maps.values()]), f"the {kind} map")
                meta["experts"] = list(maps)
        if out.errors:
            meta["errors_map"] = {e: "given the expert's label" if e in given else "image only (before seeing a label)"
                                  for e in out.errors}
        if given:  # the image-only maps too, for every expert
            save("errors_image_only", np.stack([full(out.errors_prior[e]) for e in out.errors]),
                 "the image-only errors map")
        if out.confusion is not None:
            meta["confusion"] = {e: [[None if v != v else round(float(v), 4) for v in row] for row in m]
                                 for e, m in out.confusion.matrices.items()}
        with files.open(folder / f"{sink.stem}_prediction.json", "w", what="the prediction's record") as f:
            f.write(jsonsafe.dumps(meta, indent=2))
        with files.open(sink.mask_path, "wb", what="the mask") as f:
            Image.fromarray(classes_to_values(out.classes_full(), predictor.scheme)).save(f, format="PNG")


class _Writes:
    """A file seen only through ``write``: numpy then writes an array with ``write`` calls, whose
    failure carries the system's errno, rather than with ``tofile``, whose short write hides it."""

    def __init__(self, f):
        self.write = f.write
