"""Where cores come from: a dataset folder (via the trainer's readers) or a review store.

Both sources offer the same small interface the browser and the reader use: ``names``,
``experts_of(name)``, ``load(name) -> CoreData``, ``scheme``, ``root``, ``notes``. Reading
and checking files is the trainer's job (:mod:`trainer.data`); this module only adapts it.
"""

from __future__ import annotations

from pathlib import Path

from trainer.data import MultiExpertSet, load_core, open_dataset
from trainer.data.gleason2019 import IMAGE_DIRS, maps_dir_name
from trainer.data.io import IMAGE_SUFFIXES, read_mask
from trainer.errors import InputError

from ._core_data import CoreData


class FolderSource:
    """A Gleason 2019 or generic dataset folder, listed once, cores read on demand."""

    kind = "folder"

    def __init__(self, ds: MultiExpertSet):
        self.ds = ds
        self.root = Path(ds.root)
        self.scheme = ds.scheme
        self.notes = list(ds.notes)

    @classmethod
    def open(cls, path: str | Path) -> FolderSource:
        return cls(open_dataset(path))

    @property
    def names(self) -> list[str]:
        return self.ds.names

    def experts_of(self, name: str) -> tuple[str, ...]:
        return self.ds.core(name).experts

    def masks(self, name: str) -> dict:
        """Only the expert class maps (no image): enough for a disagreement score."""
        record = self.ds.core(name)
        return {e: read_mask(p, self.scheme) for e, p in record.masks.items()}

    def load(self, name: str) -> CoreData:
        record = self.ds.core(name)
        loaded = load_core(record, self.scheme)  # raises InputError naming the bad file
        origin = {"source": str(record.image_path), "dataset": str(self.root), "layout": self.ds.layout}
        return CoreData(loaded.name, loaded.image, loaded.masks, self.scheme, origin=origin)


def dataset_root_of_image(path: str | Path) -> Path | None:
    """The dataset folder an image file belongs to, or ``None`` if it is not in a known layout.

    Gleason 2019: ``<root>/Train Imgs/<core>.jpg`` (also ``<root>/Train Imgs/Train Imgs/…``, as
    some archives unpack); generic: ``<root>/images/<core>.png``.
    """
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    parent = path.parent
    if parent.name in IMAGE_DIRS:
        if parent.parent.name == parent.name:  # unwrapped archive: X/X/
            return parent.parent.parent
        return parent.parent
    if parent.name == "images" and (parent.parent / "masks").is_dir():
        return parent.parent
    return None


def load_core_file(path: str | Path) -> CoreData:
    """Load the core whose image is ``path`` with every expert mask found for it.

    Raises :class:`InputError` naming the file when the core has no expert mask, a mask is
    broken, or the image is unreadable.
    """
    path = Path(path)
    root = dataset_root_of_image(path)
    if root is None:
        raise InputError("not inside a Gleason 2019 ('Train Imgs/') or generic ('images/') dataset folder", path)
    source = FolderSource.open(root)
    if path.stem not in source.ds:
        if source.ds.layout == "gleason2019":
            where = ", ".join(f"{maps_dir_name(e)}/" for e in ("1", "2", "3", "4", "5", "6"))
        else:
            where = "masks/<annotator>/"
        raise InputError(f"no expert mask for this core (looked in {where})", path)
    return source.load(path.stem)


def open_source(path: str | Path):
    """A :class:`FolderSource` or a review store for ``path`` (``InputError`` if neither)."""
    from trainer.review_store import ReviewStore, is_review_store

    from ._core_data import CoreData

    path = Path(path)
    if is_review_store(path):
        return ReviewStore.open(path, CoreData)
    return FolderSource.open(path)
