"""Export panel: editable copy of a consensus, export as a mask file, keep in the review store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
)

from trainer.errors import InputError
from trainer.prediction import upsample_nearest
from trainer.review_store import ReviewStore, label_key

from . import workers
from .._export import (
    check_destination,
    default_folder,
    export_filename,
    export_mask,
    export_to_store,
)
from .._layers import (
    CoreData,
    CoreInfo,
    current_core,
    find_layer,
    level0,
    role_of,
    set_layer,
)

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

#: Roles a user may export (experts are the experts' own; they are never written back).
EXPORTABLE = ("corrected", "consensus:vote", "consensus:staple", "consensus:learned", "prediction")


class ExportPanel(QGroupBox):
    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Export", parent)
        self.viewer = viewer
        self.info: CoreInfo | None = None
        self._worker = None
        self.layer_box = QComboBox()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder for <core>_classimg_nonconvex.png")
        self.store = QLineEdit()
        self.store.setPlaceholderText("review store (.zarr)")
        self._browse_folder = QPushButton("…")
        self._browse_store = QPushButton("…")
        self._copy = QPushButton("editable copy → 'corrected'")
        self._copy.setToolTip("copy the chosen consensus into a labels layer you can paint on")
        self._export = QPushButton("export mask file")
        self._save = QPushButton("save layer to store")
        self._cache = QPushButton("cache core in store")
        self._cache.setToolTip("write the image pyramid and every expert mask, so the core reopens fast")
        form = QFormLayout(self)
        form.addRow("layer", self.layer_box)
        form.addRow(self._copy)
        form.addRow("folder", self._row(self.folder, self._browse_folder))
        form.addRow(self._export)
        form.addRow("store", self._row(self.store, self._browse_store))
        form.addRow(self._row(self._save, self._cache))
        self._add_callbacks()

    @staticmethod
    def _row(*widgets) -> QHBoxLayout:
        row = QHBoxLayout()
        for w in widgets:
            row.addWidget(w)
        return row

    def _add_callbacks(self) -> None:
        self._copy.clicked.connect(self._on_make_editable)
        self._export.clicked.connect(lambda: self._on_export_file())
        self._save.clicked.connect(lambda: self._on_save_to_store())
        self._cache.clicked.connect(lambda: self._on_cache_core())
        self._browse_folder.clicked.connect(self._on_browse_folder)
        self._browse_store.clicked.connect(self._on_browse_store)
        self.viewer.layers.events.inserted.connect(self._refill)
        self.viewer.layers.events.removed.connect(self._refill)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def ask_overwrite(self, path: Path) -> bool:
        """Asked before replacing an earlier export; tests replace this with a function."""
        answer = QMessageBox.question(self, "napari-gleason", f"{path} exists.\nReplace it?")
        return answer == QMessageBox.StandardButton.Yes

    # --- state -------------------------------------------------------------------------------
    def refresh(self, info: CoreInfo) -> None:
        self.info = info
        root, layout = info.dataset_root, info.origin.get("layout")
        if root is not None and not self.folder.text():
            self.folder.setText(str(default_folder(root, layout)))
        if info.origin.get("store"):
            self.store.setText(info.origin["store"])
        elif root is not None and not self.store.text():
            self.store.setText(str(Path(root) / "napari-gleason.zarr"))
        self._refill()

    def _refill(self, event=None) -> None:
        current = self.layer_box.currentText()
        names = [lyr.name for lyr in self.viewer.layers if role_of(lyr) in EXPORTABLE]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)

    def _chosen(self, name: str | None):
        name = name or self.layer_box.currentText()
        if not name or name not in self.viewer.layers:
            raise InputError("choose a consensus or corrected labels layer to export")
        return self.viewer.layers[name]

    def _class_map(self, layer) -> np.ndarray:
        unknown = self.info.coding.unknown_values(level0(layer))
        if unknown:
            raise InputError(f"layer {layer.name!r} holds label values {unknown} that are no class "
                             f"(classes: {dict(zip(self.info.coding.names, self.info.coding.values))})")
        return classes_at_core(self.info, layer)

    # --- handlers ----------------------------------------------------------------------------
    def _on_make_editable(self, source_role: str | None = None) -> None:
        info = self.info or current_core(self.viewer)
        source = find_layer(self.viewer, source_role) if source_role else self._chosen(None)
        if info is None or source is None:
            show_error("no consensus layer to copy yet")
            return
        self.info = info
        layer = set_layer(self.viewer, "corrected", classes_at_core(info, source), core=info.name,
                          scheme=info.scheme, like=info.image)
        layer.visible = True
        self.viewer.layers.selection.active = layer
        self.layer_box.setCurrentText(layer.name)

    def _on_export_file(self, layer_name: str | None = None, folder: str | None = None) -> Path | None:
        """Write the chosen layer as a mask file; the overwrite question is asked here, on the GUI thread."""
        try:
            layer = self._chosen(layer_name)
            class_map = self._class_map(layer)
            target = Path(folder or self.folder.text())
            if not str(target) or str(target) == ".":
                raise InputError("choose a folder to export into")
            layout = self.info.origin.get("layout")
            check_destination(target, self.info.dataset_root)  # never offer to replace an expert's file
            path = target / export_filename(self.info.name, layout)
            answer = path.exists() and self.ask_overwrite(path)
            if path.exists() and not answer:
                show_info(f"{path} exists; not replaced")
                return None
            written = export_mask(class_map, self.info.name, self.info.scheme, target, layout=layout,
                                  dataset_root=self.info.dataset_root, ask_overwrite=lambda p: answer)
        except InputError as e:
            show_error(f"export: {e}")
            return None
        show_info(f"exported {layer.name} to {written}")
        return written

    def _on_save_to_store(self, layer_name: str | None = None, store: str | None = None) -> None:
        try:
            layer = self._chosen(layer_name)
            class_map, role = self._class_map(layer), role_of(layer)
            path = Path(store or self.store.text())
            if not path.exists() or self.info.name not in ReviewStore.open(path).names:
                self._on_cache_core(str(path))  # a new store/core: cache it whole, this layer included
                return
            st = ReviewStore.open(path)
            exists = label_key(role) in {p.name for p in st.label_roles(self.info.name).values()}
            answer = exists and self.ask_overwrite(st.path / label_key(role))
            if exists and not answer:
                show_info(f"{role} is already in {st.path}; not replaced")
                return
        except InputError as e:
            show_error(f"save to store: {e}")
            return
        self._run(export_to_store, st, self.info.name, role, class_map, lambda p: answer,
                  what=f"saving {layer.name} to {st.path}")

    def _on_cache_core(self, store: str | None = None) -> None:
        """Write this core into the store (created if needed): image pyramid, experts, and the
        consensus/corrected layers on screen. Replacing a cached core is asked first."""
        info = self.info or current_core(self.viewer)
        if info is None:
            show_error("no core to cache")
            return
        path = Path(store or self.store.text())
        try:
            exists = path.exists() and info.name in ReviewStore.open(path).names
        except InputError as e:
            show_error(f"cache core: {e}")
            return
        if exists and not self.ask_overwrite(path / info.name):
            show_info(f"{info.name} is already cached in {path}; not replaced")
            return
        masks = {e: info.coding.to_classes(level0(lyr)) for e, lyr in info.experts.items()}
        extras = {role_of(lyr): classes_at_core(info, lyr) for lyr in self.viewer.layers
                  if role_of(lyr) in EXPORTABLE}
        core = CoreData(info.name, level0(info.image), masks, info.scheme, extras=extras, origin=info.origin)

        def job():
            new_store = not path.exists()
            try:
                st = ReviewStore.create(path, info.scheme, dataset=info.origin.get("dataset"),
                                        layout=info.origin.get("layout"))
                return st.write_core(core, overwrite=exists)
            except OSError as e:  # read-only, full disk: the store keeps what it had, a new one goes
                if new_store and path.exists() and not ReviewStore.open(path).names:
                    shutil.rmtree(path, ignore_errors=True)
                raise InputError(f"cannot write the review store ({e.strerror or e}); nothing was kept") from e

        self._run(job, what=f"caching {info.name} in {path}")

    def _run(self, func, *args, what: str) -> None:
        def done(result):
            if result is not None:
                show_info(f"{what}: done ({result})")

        self._worker = workers.start(func, *args, what=what, on_return=done, on_finish=self._finished)

    def _finished(self) -> None:
        self._worker = None

    def _on_browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def _on_browse_store(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Review store", self.store.text(), "zarr (*.zarr)")
        if path:
            self.store.setText(path if path.endswith(".zarr") else path + ".zarr")


def classes_at_core(info, layer) -> np.ndarray:
    """``layer``'s class map at the core's shape: the full-size copy of a model-resolution layer
    (the paper setting's prediction) is made here, when someone edits or exports it."""
    return upsample_nearest(info.coding.to_classes(level0(layer)), tuple(level0(info.image).shape[:2]))
