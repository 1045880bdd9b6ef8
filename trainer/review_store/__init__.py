"""The review store: cores, expert labels and predictions cached as OME-Zarr (NGFF 0.5) in one
zarr v3 folder. Qt- and napari-free: the plugin, the CLI and the benchmarks use this public API.

- :class:`ReviewStore` (``open``, ``create``, ``names``, ``experts_of``, ``label_roles``,
  ``write_core``, ``write_labels``, ``masks``, ``load``, ``image``, ``shape``; cores are
  :class:`trainer.data.core.Core`),
  :func:`is_review_store`, :func:`label_key`, :class:`StoreExistsError`
- :class:`PredictionWriter`, :func:`load_maps`, :func:`roughness_into`, :class:`StoreImage`
- :mod:`.ngff`: the shared NGFF metadata and pyramid helpers
- :mod:`.integrity`: checksums and complete arrays, :class:`DamagedStoreError`; :mod:`.check`:
  :func:`check_store` (``python -m trainer check --data STORE``)
"""

from .integrity import DamagedStoreError
from .maps import MAPS, StoreImage, load_maps, store_image
from .ngff import STORE_KEY
from .outputs import PredictionWriter, roughness_into
from .store import FORMAT_VERSION, ReviewStore, StoreExistsError, image_pyramid, is_review_store, label_key, safe_key

__all__ = [
    "DamagedStoreError", "FORMAT_VERSION", "MAPS", "STORE_KEY", "PredictionWriter", "ReviewStore", "StoreExistsError",
    "StoreImage", "image_pyramid", "is_review_store", "label_key", "load_maps",
    "roughness_into", "safe_key", "store_image",
]
