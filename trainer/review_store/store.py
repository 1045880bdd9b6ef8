"""The review store: a zarr v3 folder that caches cores as OME-Zarr (NGFF 0.5) images.

::

    review.zarr/                      group; attrs["napari_gleason"] = {format_version, scheme, coding, ...}
      <core>/                         OME-Zarr image: attrs["ome"]["multiscales"], axes c, y, x
        0/ 1/ 2/ …                    uint8 pyramid levels, each half the size of the one before
        labels/                       attrs["ome"]["labels"] = ["expert_1", …, "consensus_vote"]
          expert_1/                   OME-Zarr label image ("image-label": colours, class names)
            0/ 1/ …                   uint8 label values (0 = no label), nearest-neighbour pyramid
          prediction/                 a full-resolution prediction (see :mod:`.outputs`)
        maps/                         its float16 probability / weight / roughness images

Masks hold *display values* (:class:`trainer.data.classes.LabelCoding`: Gleason 1/3/4/5 for the paper's scheme), so
any NGFF viewer shows them with 0 as background. The image pyramid lets a 5120² core reopen by
reading only the level napari shows; label layers are loaded at full resolution because napari
cannot paint on multiscale labels (napari #1587).

Writes are atomic: a core or label image is written completely into ``.staging/`` inside the
store, then moved into place with ``os.replace``; JSON metadata is replaced the same way. A
crash leaves either the old or the new version, never half of one; an operating system error (a
full disk) becomes one :class:`~trainer.errors.InputError` naming what was being written and the
reason, with nothing of it left. A store whose ``format_version`` is newer than
:data:`FORMAT_VERSION` is refused with a clear error.

Every array carries a crc32c checksum per chunk and has every chunk written, so a deleted or
damaged chunk is a :class:`.integrity.DamagedStoreError` naming the store, the core and the
array, never zeros (:mod:`.integrity`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.data.classes import ClassScheme, LabelCoding
from trainer.data.core import Core, role_prefix
from trainer.errors import InputError
from trainer.safe_paths import check_name, check_relative_path, safe_child, trusted_dataset_root

from .integrity import UNCHECKED_NOTE, CheckedArray, array_options, open_checked
from .maps import MAPS, StoreImage, load_maps
from .ngff import (
    CHUNK,
    CYX,
    NGFF_VERSION,
    STORE_KEY,
    label_image_attrs,
    label_key,
    multiscale,
    pyramid,
    read_json,
    safe_key,
    write_json_atomic,
)

FORMAT_VERSION = 1
#: Pyramid levels are added until the smaller side is at most this many pixels.
MIN_LEVEL_SIZE = 512
_STAGING = ".staging"


class StoreExistsError(InputError, FileExistsError):
    """Something of that name is already in the store; pass ``overwrite=True`` to replace it."""


def _store_attrs(path: Path) -> dict | None:
    try:
        return read_json(Path(path) / "zarr.json").get("attributes", {}).get(STORE_KEY)
    except (OSError, ValueError, AttributeError):
        return None


def is_review_store(path: str | Path) -> bool:
    """True for a folder whose root ``zarr.json`` carries napari-gleason's attributes."""
    path = Path(path)
    return path.is_dir() and _store_attrs(path) is not None


# --- pyramids and NGFF metadata --------------------------------------------------------------


def image_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """``H×W×3`` uint8 -> levels ``3×h×w`` (NGFF puts channels first), 2×2 mean per level."""
    return pyramid(np.moveaxis(np.asarray(image), -1, 0), "image", min_size=MIN_LEVEL_SIZE)


def _write_levels(group, levels: list[np.ndarray], dims: list[str]) -> None:
    for i, arr in enumerate(levels):
        chunks = tuple(min(CHUNK, s) if d != "c" else s for d, s in zip(dims, arr.shape))
        group.create_array(str(i), data=arr, chunks=chunks, dimension_names=dims, **array_options())


def _write_label_group(path: Path, role: str, labels: np.ndarray, n_levels: int, coding: LabelCoding) -> None:
    import zarr

    levels = pyramid(labels, "labels", n_levels)
    attrs = label_image_attrs(label_key(role), [a.shape for a in levels], coding, {"role": role})
    group = zarr.open_group(path, mode="w-", zarr_format=3, attributes=attrs)
    _write_levels(group, levels, ["y", "x"])


@contextlib.contextmanager
def os_errors(path: Path, what: str) -> Iterator[None]:
    """An ``OSError`` (a full disk, no permission) inside becomes one :class:`InputError` naming ``path``:
    "cannot write <what> (No space left on device); nothing was written"."""
    try:
        yield
    except InputError:
        raise
    except OSError as e:
        raise InputError(f"cannot write {what} ({e.strerror or e}); nothing was written", path) from e


def _level_path(dataset: dict, folder: Path) -> str:
    """A multiscale level's array path, read from untrusted metadata: it must stay inside ``folder``."""
    return check_relative_path(dataset.get("path") if isinstance(dataset, dict) else None, folder,
                               "array path", folder / "zarr.json")


# --- the store ---------------------------------------------------------------------------------


class ReviewStore:
    """A review store on disk (see module docstring). Open with :meth:`open` or :meth:`create`.

    :meth:`load` hands out a :class:`trainer.data.core.Core` (lazy pyramids, labels in label values);
    :meth:`write_core` takes one from any source.
    """

    kind = "store"

    def __init__(self, path: Path, attrs: dict):
        self.path = Path(path)
        self.root = self.path
        self.attrs = attrs
        self.scheme = ClassScheme.from_dict(attrs["scheme"])
        self.coding = LabelCoding.from_scheme(self.scheme)
        self.notes: list[str] = []  # said once: e.g. that older cores carry no checksums

    # opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> ReviewStore:
        path = Path(path)
        attrs = _store_attrs(path)
        if attrs is None:
            raise InputError("not a napari-gleason review store (no 'napari_gleason' in zarr.json)", path)
        version = attrs.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise InputError(f"review store has an invalid format_version {version!r}", path)
        if version > FORMAT_VERSION:
            raise InputError(
                f"review store format version {version} is newer than this napari-gleason reads "
                f"(up to {FORMAT_VERSION}); update napari-gleason to open it",
                path,
            )
        if "scheme" not in attrs:
            raise InputError("review store lacks its class scheme", path)
        return cls(path, attrs)

    @classmethod
    def create(cls, path: str | Path, scheme: ClassScheme, *, dataset: str | None = None,
               layout: str | None = None) -> ReviewStore:
        """Create an empty store (atomically), or open an existing one holding the same classes."""
        import zarr

        path = Path(path)
        if path.exists():
            store = cls.open(path)
            if store.scheme != scheme:
                raise InputError("review store holds other classes than this dataset", path)
            return store
        attrs = {"format_version": FORMAT_VERSION, "scheme": scheme.to_dict(),
                 "coding": LabelCoding.from_scheme(scheme).to_dict(), "dataset": dataset, "layout": layout}
        staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.staging")
        try:
            with os_errors(path, "the review store"):
                zarr.open_group(staged, mode="w-", zarr_format=3, attributes={STORE_KEY: attrs})
                os.replace(staged, path)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return cls(path, attrs)

    # listing -----------------------------------------------------------------------------
    def _core_dirs(self) -> dict[str, Path]:
        """core name -> its folder. A name is untrusted (a store is shared): it must be a plain
        name (:func:`trainer.safe_paths.check_name`), as it becomes a file name on export."""
        out = {}
        for sub in sorted(self.path.iterdir()):
            if sub.is_dir() and not sub.name.startswith(".") and (sub / "zarr.json").is_file():
                attrs = read_json(sub / "zarr.json").get("attributes", {}).get(STORE_KEY, {})
                if "core" in attrs:
                    out[check_name(attrs["core"], "core name", sub / "zarr.json")] = sub
        return out

    @property
    def names(self) -> list[str]:
        return list(self._core_dirs())

    def core_dir(self, name: str) -> Path:
        try:
            return self._core_dirs()[name]
        except KeyError:
            raise InputError(f"no core named {name!r} in this review store", self.path) from None

    def label_roles(self, name: str) -> dict[str, Path]:
        """role -> label group folder, in the order of the NGFF ``labels`` list."""
        labels = self.core_dir(name) / "labels"
        if not (labels / "zarr.json").is_file():
            return {}
        keys = read_json(labels / "zarr.json")["attributes"]["ome"].get("labels", [])
        out = {}
        for key in keys:
            folder = safe_child(labels, key, "label image", labels / "zarr.json")
            role = read_json(folder / "zarr.json")["attributes"].get(STORE_KEY, {}).get("role", key)
            out[role] = folder
        return out

    def experts_of(self, name: str) -> tuple[str, ...]:
        return tuple(r.split(":", 1)[1] for r in self.label_roles(name) if role_prefix(r) == "expert")

    # writing -----------------------------------------------------------------------------
    def staging_dir(self) -> Path:
        d = self.path / _STAGING / uuid.uuid4().hex
        with os_errors(d.parent, "into the review store"):
            d.parent.mkdir(exist_ok=True)
        return d

    def swap_in(self, staged: Path, final: Path, overwrite: bool) -> None:
        """Move a finished ``staged`` folder to ``final``; the old one goes only once the new is there."""
        old = None
        if final.exists():
            if not overwrite:
                raise StoreExistsError("already in the review store; refusing to overwrite it", final)
            old = staged.with_name(staged.name + ".old")
            os.replace(final, old)
        os.replace(staged, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def cleanup(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)
        try:
            (self.path / _STAGING).rmdir()  # only when empty
        except OSError:
            pass

    def write_core(self, core: Core, overwrite: bool = False) -> Path:
        """Cache ``core``: image pyramid, every expert mask and its extras, in one atomic step."""
        import zarr

        if core.scheme != self.scheme:
            raise InputError(f"core {core.name!r} uses other classes than this review store", self.path)
        final = self._core_dirs().get(core.name, self.path / safe_key(core.name))
        if final.exists() and not overwrite:
            raise StoreExistsError(f"core {core.name!r} is already in the review store", final)
        image = np.asarray(core.image[0] if core.multiscale else core.image)
        levels = image_pyramid(image)
        staged = self.staging_dir()
        try:
            with os_errors(final, f"core {core.name!r} into the review store"):
                attrs = {"ome": {"version": NGFF_VERSION,
                                 "multiscales": [multiscale(core.name, CYX, [a.shape for a in levels], "local_mean")]},
                         STORE_KEY: {"core": core.name, "origin": dict(core.origin)}}
                group = zarr.open_group(staged, mode="w-", zarr_format=3, attributes=attrs)
                _write_levels(group, levels, ["c", "y", "x"])
                keys = []
                for role, (data, in_label_values) in core.label_roles().items():
                    level = np.asarray(data[0] if isinstance(data, (list, tuple)) else data)
                    key = label_key(role)
                    _write_label_group(staged / "labels" / key, role,
                                       level if in_label_values else self.coding.to_labels(level), len(levels),
                                       self.coding)
                    keys.append(key)
                zarr.open_group(staged / "labels", mode="a", zarr_format=3,
                                attributes={"ome": {"version": NGFF_VERSION, "labels": keys}})
                self.swap_in(staged, final, overwrite)
        finally:
            self.cleanup(staged)
        return final

    def write_labels(self, name: str, role: str, class_map: np.ndarray, overwrite: bool = False) -> Path:
        """Add (or replace) one label image of core ``name``, e.g. ``consensus:vote`` or ``corrected``."""
        import zarr

        core_dir = self.core_dir(name)
        n_levels = len(read_json(core_dir / "zarr.json")["attributes"]["ome"]["multiscales"][0]["datasets"])
        shape = tuple(zarr.open_array(core_dir / "0", mode="r").shape[1:])
        if tuple(class_map.shape) != shape:
            raise InputError(f"labels of shape {class_map.shape} do not fit core {name!r} ({shape})", core_dir)
        labels_dir = core_dir / "labels"
        final = labels_dir / label_key(role)
        if final.exists() and not overwrite:
            raise StoreExistsError(f"{role!r} of core {name!r} is already in the review store", final)
        staged = self.staging_dir()
        try:
            with os_errors(final, f"{role!r} of core {name!r} into the review store"):
                _write_label_group(staged, role, self.coding.to_labels(class_map), n_levels, self.coding)
                if not (labels_dir / "zarr.json").is_file():
                    zarr.open_group(labels_dir, mode="a", zarr_format=3,
                                    attributes={"ome": {"version": NGFF_VERSION, "labels": []}})
                added = not final.exists()
                self.swap_in(staged, final, overwrite)
                meta = read_json(labels_dir / "zarr.json")
                keys = meta["attributes"]["ome"].setdefault("labels", [])
                if final.name not in keys:
                    keys.append(final.name)
                    try:
                        write_json_atomic(labels_dir / "zarr.json", meta)
                    except BaseException:
                        if added:  # not listed: take it out again rather than leave it unlisted
                            shutil.rmtree(final, ignore_errors=True)
                        raise
        finally:
            self.cleanup(staged)
        return final

    # reading -----------------------------------------------------------------------------
    def trusted_origin(self) -> dict[str, str]:
        """The store's ``dataset`` and ``layout``, only when the dataset folder it names exists and is
        a dataset folder (:func:`trainer.safe_paths.trusted_dataset_root`) and the layout is known:
        a shared store must not aim exports or caches at a folder of its choosing."""
        root = trusted_dataset_root(self.attrs.get("dataset"))
        if root is None:
            return {}
        out = {"dataset": str(root)}
        if self.attrs.get("layout") in ("gleason2019", "generic"):
            out["layout"] = self.attrs["layout"]
        return out

    def open_array(self, name: str, folder: Path) -> CheckedArray:
        """The array in ``folder`` of core ``name``, its chunk files checked against its chunk grid
        (:func:`.integrity.open_checked`: a missing one raises a ``DamagedStoreError``); its reads
        raise the same for a chunk that fails its checksum. An array without checksums adds
        :data:`.integrity.UNCHECKED_NOTE` to :attr:`notes`, once."""
        try:  # the array's path inside its core's folder (the first part of its path in the store)
            rel = "/".join(Path(folder).relative_to(self.path).parts[1:])
        except ValueError:
            rel = Path(folder).name
        array = open_checked(folder, self.path, name, rel)
        if not array.checksums and UNCHECKED_NOTE not in self.notes:
            self.notes.append(UNCHECKED_NOTE)
        return array

    def levels(self, name: str, folder: Path) -> list[CheckedArray]:
        """The checked pyramid levels of the multiscale image in ``folder``, level 0 first."""
        meta = read_json(folder / "zarr.json")["attributes"]["ome"]["multiscales"][0]["datasets"]
        return [self.open_array(name, folder / _level_path(d, folder)) for d in meta]

    def arrays_of(self, name: str) -> list[Path]:
        """The folder of every array of core ``name``: image levels, label levels, map levels."""
        core_dir = self.core_dir(name)
        groups = [core_dir, *self.label_roles(name).values()]
        maps = core_dir / MAPS
        if (maps / "zarr.json").is_file():
            kinds = read_json(maps / "zarr.json")["attributes"].get(STORE_KEY, {}).get("maps", [])
            groups += [safe_child(maps, k, "map", maps / "zarr.json") for k in kinds]
        out = []
        for folder in groups:
            meta = read_json(folder / "zarr.json")["attributes"]["ome"]["multiscales"][0]["datasets"]
            out += [folder / _level_path(d, folder) for d in meta]
        return out

    def masks(self, name: str) -> dict:
        """Only the expert class maps at full resolution (the image stays on disk)."""
        out = {}
        try:
            for role, folder in self.label_roles(name).items():
                if role_prefix(role) == "expert":
                    out[role.split(":", 1)[1]] = self.coding.to_classes(self.open_array(name, folder / "0")[...])
        except InputError:
            raise
        except (KeyError, ValueError, OSError) as e:
            raise InputError(f"review store entry is damaged: {e}", self.core_dir(name)) from None
        return out

    def label_levels(self, name: str, role: str) -> list:
        """The levels of one label image (label values, :class:`.integrity.CheckedArray`), level 0 first."""
        return self.levels(name, self.label_roles(name)[role])

    def image(self, name: str):
        """The core's level-0 image as a lazy ``H×W×3`` array (:class:`.maps.StoreImage`)."""
        return StoreImage(self.open_array(name, self.core_dir(name) / "0"))

    def shape(self, name: str) -> tuple[int, int]:
        import zarr

        shape = zarr.open_array(self.core_dir(name) / "0", mode="r").shape
        return int(shape[1]), int(shape[2])

    def load(self, name: str):
        """The core as lazy pyramids: nothing but metadata is read until napari draws a level.

        Labels come back in label values (``Core.labels``), so no pixel is converted to
        open a core; analysis reads level 0 when it needs it.
        """
        core_dir = self.core_dir(name)
        try:
            # every array's chunk files are listed here (a deleted chunk fails now, not as zeros on screen)
            image = [a.to_dask().transpose(1, 2, 0) for a in self.levels(name, core_dir)]  # c,y,x -> y,x,c
            labels = {}
            for role, folder in self.label_roles(name).items():
                levels = self.levels(name, folder)
                # the editable layer stays one full-resolution array (napari #1587)
                labels[role] = levels[0][...] if role == "corrected" else levels
        except InputError:
            raise
        except (KeyError, ValueError, OSError) as e:
            raise InputError(f"review store entry is damaged: {e}", core_dir) from None
        origin = {"store": str(self.path), **self.trusted_origin()}
        return Core(name, image, {}, self.scheme, origin=origin, labels=labels, maps=load_maps(self, name))
