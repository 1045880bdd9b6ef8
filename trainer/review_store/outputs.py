"""Prediction outputs in the review store, written band by band at full resolution.

Full-resolution (tiled) prediction of a 5120² core yields ≈ 10 float maps of 26 M pixels each
(class probabilities, one weight or error map per expert, roughness): ≈ 1 GB in float32, too much to hold
next to napari. :class:`PredictionWriter` takes the bands :func:`trainer.prediction.tiling.predict_tiled`
hands to its sink and writes them straight into zarr arrays, so memory stays at one band::

    <core>/labels/prediction/          OME-Zarr label image (role "prediction")
    <core>/labels/consensus_learned/   the learned-weight consensus (eq. 2), when weights exist
    <core>/maps/                       group; attrs["napari_gleason"]["maps"] = [key, …]
      probability/  weight/  error/  roughness/   OME-Zarr images, axes c, y, x, float16, one
                                          channel per class / per expert / per expert / one;
                                          attrs list the channels; weight and error maps are NaN
                                          off the tissue (drawn transparent)

All of it is written into ``.staging/`` first; only :meth:`PredictionWriter.finish` (after the
last band and the pyramids) moves it into place, so a cancelled, crashed or disk-full prediction
leaves the store as it was (a full disk is one ``InputError`` naming the core's folder and the reason).
Each output carries the id of the prediction that wrote it, and
:func:`.maps.load_maps` drops maps whose id differs from the prediction label's (a crash between two
of the final moves cannot pair a new class map with old probabilities). Maps are float16: they
are for looking at (probabilities to 1e-3); the class map and the learned consensus are computed
from float32 before storing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np


from .ngff import (
    CHUNK,
    CYX,
    NGFF_VERSION,
    STORE_KEY,
    halve,
    label_image_attrs,
    level_shapes,
    multiscale,
    read_json,
    write_json_atomic,
)
from .integrity import array_options
from .maps import MAPS
from .store import ReviewStore, label_key, os_errors

MAP_DTYPE = np.float16
#: Rows processed at once when building pyramid levels (bounded memory whatever the core size).
PYRAMID_ROWS = 2 * CHUNK


def _create_levels(group, shapes: list[tuple[int, ...]], dtype, dims: list[str], fill) -> list:
    arrays = []
    for i, shape in enumerate(shapes):
        chunks = tuple(min(CHUNK, s) if d != "c" else 1 for d, s in zip(dims, shape))
        arrays.append(group.create_array(str(i), shape=shape, dtype=dtype, chunks=chunks, dimension_names=dims,
                                         fill_value=fill, **array_options()))
    return arrays


def _fill_pyramid(levels: list, kind: str) -> None:
    """Level i+1 from level i (:func:`.ngff.halve`), :data:`PYRAMID_ROWS` rows at a time."""
    for src, dst in zip(levels, levels[1:]):
        h_dst, w_dst = dst.shape[-2], dst.shape[-1]
        step = PYRAMID_ROWS // 2
        for r0 in range(0, h_dst, step):
            r1 = min(h_dst, r0 + step)
            dst[..., r0:r1, :] = halve(np.asarray(src[..., 2 * r0:2 * r1, :]), kind)[..., :r1 - r0, :w_dst]


class PredictionWriter:
    """Stream a full-resolution prediction of core ``name`` into ``store`` (see module docstring).

    ``classes``: class names (probability channels); ``experts``: the experts whose weight maps
    are written; ``learned``: whether a learned consensus is written too; ``error_experts``: the
    experts whose error maps (confusion model) are written. Use as a context manager, or call
    :meth:`abort` on failure; :meth:`finish` moves everything into place.
    """

    def __init__(self, store: ReviewStore, name: str, classes: Sequence[str], experts: Sequence[str] = (),
                 learned: bool = False, roughness: bool = True, error_experts: Sequence[str] = ()):
        import zarr

        self.store, self.name = store, name
        self.core_dir = store.core_dir(name)
        meta = read_json(self.core_dir / "zarr.json")["attributes"]["ome"]["multiscales"][0]
        self.n_levels = len(meta["datasets"])
        shape = zarr.open_array(self.core_dir / "0", mode="r").shape
        self.h, self.w = int(shape[1]), int(shape[2])
        self.id = uuid.uuid4().hex
        self.staged = store.staging_dir()
        self._labels: dict[str, list] = {}
        self._maps: dict[str, tuple[list, list[str]]] = {}
        self._finished = False
        try:
            with self._os_errors():
                self.staged.mkdir(parents=True)
                self._new_labels("prediction")
                if learned:
                    self._new_labels("consensus:learned")
                self._new_map("probability", list(classes))
                if experts:
                    self._new_map("weight", list(experts))
                if error_experts:
                    self._new_map("error", list(error_experts))
                if roughness:
                    self._new_map("roughness", ["roughness"])
        except BaseException:
            self.abort()
            raise

    def _os_errors(self):
        return os_errors(self.core_dir, f"the prediction of core {self.name!r} into the review store")

    # creating ----------------------------------------------------------------------------
    def _new_labels(self, role: str) -> None:
        import zarr

        shapes = level_shapes(self.h, self.w, self.n_levels, "labels")
        attrs = label_image_attrs(label_key(role), shapes, self.store.coding, {"role": role, "prediction": self.id})
        group = zarr.open_group(self.staged / "labels" / label_key(role), mode="w-", zarr_format=3, attributes=attrs)
        self._labels[role] = _create_levels(group, shapes, np.uint8, ["y", "x"], 0)

    def _new_map(self, kind: str, channels: list[str]) -> None:
        import zarr

        shapes = [(len(channels), *s) for s in level_shapes(self.h, self.w, self.n_levels, "maps")]
        ome = {"version": NGFF_VERSION, "multiscales": [multiscale(kind, CYX, shapes, "local_mean")]}
        group = zarr.open_group(self.staged / MAPS / kind, mode="w-", zarr_format=3,
                                attributes={"ome": ome, STORE_KEY: {"map": kind, "channels": channels,
                                                                     "prediction": self.id}})
        self._maps[kind] = (_create_levels(group, shapes, MAP_DTYPE, ["c", "y", "x"], 0.0), channels)

    # writing -----------------------------------------------------------------------------
    def write_labels(self, role: str, y0: int, y1: int, class_rows: np.ndarray) -> None:
        """Rows ``y0:y1`` of a class map (class indices; stored as label values)."""
        with self._os_errors():
            self._labels[role][0][y0:y1] = self.store.coding.to_labels(np.asarray(class_rows, np.uint8))

    def write_map(self, kind: str, y0: int, y1: int, rows: np.ndarray) -> None:
        """Rows ``y0:y1`` of every channel of map ``kind`` (``C×rows×W``)."""
        with self._os_errors():
            self._maps[kind][0][0][:, y0:y1] = np.asarray(rows).astype(MAP_DTYPE, copy=False)

    # finishing ---------------------------------------------------------------------------
    def finish(self) -> None:
        """Pyramids, then move every output into place (replacing an older prediction)."""
        import zarr

        try:
            with self._os_errors():
                for levels in self._labels.values():
                    _fill_pyramid(levels, "labels")
                for levels, _ in self._maps.values():
                    _fill_pyramid(levels, "maps")
                zarr.open_group(self.staged / MAPS, mode="a", zarr_format=3,
                                attributes={STORE_KEY: {"maps": list(self._maps), "prediction": self.id}})
                self.store.swap_in(self.staged / MAPS, self.core_dir / MAPS, overwrite=True)
                labels_dir = self.core_dir / "labels"
                for role in self._labels:
                    self.store.swap_in(self.staged / "labels" / label_key(role), labels_dir / label_key(role),
                                        overwrite=True)
                meta = read_json(labels_dir / "zarr.json")
                keys = meta["attributes"]["ome"].setdefault("labels", [])
                added = [label_key(r) for r in self._labels if label_key(r) not in keys]
                if added:
                    keys.extend(added)
                    write_json_atomic(labels_dir / "zarr.json", meta)
                self._finished = True
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop everything staged (nothing of this prediction reaches the store)."""
        self.store.cleanup(self.staged)

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc) -> None:
        if not self._finished:
            self.abort()


def roughness_into(writer: PredictionWriter, source, heat: dict, rows: int = 256) -> None:
    """Eq. (5) at full resolution, ``rows`` at a time with a halo of ``ksize // 2`` rows; ``heat``:
    :func:`trainer.losses.heatmap_options` of the checkpoint.

    The Gaussian reaches ``ksize // 2`` pixels, so with that halo each band's rows equal the
    whole-image map's (the image's own borders are reflected exactly as the whole-image call does).
    """
    from trainer.losses import roughness_map_numpy

    h = int(source.shape[0])
    halo = int(heat["ksize"]) // 2
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        a0, a1 = max(0, y0 - halo), min(h, y1 + halo)
        band = roughness_map_numpy(np.asarray(source[a0:a1, :]), **heat)
        writer.write_map("roughness", y0, y1, band[None, y0 - a0:y0 - a0 + (y1 - y0)])


__all__ = ["PredictionWriter", "roughness_into"]

