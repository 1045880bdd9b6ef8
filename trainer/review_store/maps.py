"""Reading a core's stored prediction maps and image (the writing is :mod:`.outputs`).

``<core>/maps/`` holds one OME-Zarr image per kind of map (probability, weight, error,
roughness), each carrying the id of the prediction that wrote it; :func:`load_maps` returns only
those of the stored ``prediction`` labels. :class:`StoreImage` is the core's level-0 image as a
lazy ``H×W×3`` array. The functions take a :class:`~.store.ReviewStore` (``core_dir``,
``levels``) without importing it: the store imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.errors import InputError
from trainer.safe_paths import check_name

from .ngff import STORE_KEY, label_key, read_json

MAPS = "maps"


class StoreImage:
    """The core's level-0 image in the store as a lazy ``H×W×3`` array (zarr holds ``3×H×W``)."""

    def __init__(self, array):
        self.array = array
        self.shape = (int(array.shape[1]), int(array.shape[2]), int(array.shape[0]))

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        ys, xs = (tuple(key) + (slice(None), slice(None)))[:2]
        return np.moveaxis(np.asarray(self.array[:, ys, xs]), 0, -1)


def store_image(store, name: str) -> StoreImage:
    return store.image(name)


def load_maps(store, name: str) -> dict[str, list[Any]]:
    """role (``probability:<class>``, ``weight:<expert>``, ``error:<expert>``, ``roughness``) -> lazy pyramid (dask).

    Only maps written by the same prediction as the stored ``prediction`` labels are returned.
    """
    import zarr

    core_dir = store.core_dir(name)
    maps_dir = core_dir / MAPS
    pred_dir = core_dir / "labels" / label_key("prediction")
    if not (maps_dir / "zarr.json").is_file() or not (pred_dir / "zarr.json").is_file():
        return {}
    try:
        pid = read_json(pred_dir / "zarr.json")["attributes"].get(STORE_KEY, {}).get("prediction")
        root = zarr.open_group(maps_dir, mode="r")
        if root.attrs.get(STORE_KEY, {}).get("prediction") != pid:
            return {}
        out: dict[str, list[Any]] = {}
        for kind in root.attrs[STORE_KEY]["maps"]:
            key = check_name(kind, "map", maps_dir / "zarr.json")  # metadata of a shared store: untrusted
            info = root[key].attrs[STORE_KEY]
            levels = [a.to_dask() for a in store.levels(name, maps_dir / key)]  # chunk files listed
            for i, ch in enumerate(info["channels"]):
                role = "roughness" if kind == "roughness" else f"{kind}:{ch}"
                out[role] = [lvl[i] for lvl in levels]
        return out
    except InputError:
        raise
    except (KeyError, ValueError, OSError) as e:
        raise InputError(f"review store entry is damaged: {e}", maps_dir) from None
