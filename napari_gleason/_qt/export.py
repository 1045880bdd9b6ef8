"""Export panel: editable copy of a consensus, export as a mask file or GeoJSON (QuPath), a map layer as
pyramidal OME-TIFF (QuPath, Fiji), keep in the review store. Big writes run in a worker."""

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

from trainer.data.core import Core, role_prefix
from trainer.errors import InputError
from trainer.resample import resize_nearest
from trainer.review_store import ReviewStore, label_key

from .._export import (
    check_destination,
    default_folder,
    export_filename,
    export_map,
    export_mask,
    export_to_store,
    map_filename,
)
from .._layers import CoreInfo, current_core, find_layer, level0, role_of, set_layer
from . import workers

if TYPE_CHECKING:  # the annotation napari looks for to pass the viewer in
    import napari

#: Roles a user may export (experts are the experts' own; they are never written back).
EXPORTABLE = ("corrected", "consensus:vote", "consensus:staple", "consensus:learned", "prediction")
#: Image layers exported as pyramidal OME-TIFF, by role prefix.
MAP_PREFIXES = ("error", "weight", "probability", "roughness")
#: Format choices offered for a labels layer and for a map layer: (label, format).
LABEL_FORMATS = (("mask PNG", "png"), ("GeoJSON (QuPath)", "geojson"))
MAP_FORMATS = (("OME-TIFF (QuPath, Fiji)", "ome-tiff"),)


class ExportPanel(QGroupBox):
    def __init__(self, viewer: napari.viewer.Viewer, parent=None):
        super().__init__("Export", parent)
        self.viewer = viewer
        self.info: CoreInfo | None = None
        self._worker = None
        self.layer_box = QComboBox()
        self.format_box = QComboBox()
        self.format_box.setToolTip("mask PNG in the dataset's values, GeoJSON annotations for QuPath (drag the "
                                   "file onto the image), or a map as a pyramidal OME-TIFF (QuPath, Fiji)")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("export folder (never an expert's)")
        self.store = QLineEdit()
        self.store.setPlaceholderText("review store (.zarr)")
        self._browse_folder = QPushButton("…")
        self._browse_store = QPushButton("…")
        self._copy = QPushButton("editable copy → 'corrected'")
        self._copy.setToolTip("copy the chosen consensus into a labels layer you can paint on")
        self._export = QPushButton("export")
        self._save = QPushButton("save layer to store")
        self._cache = QPushButton("cache core in store")
        self._cache.setToolTip("write the image pyramid and every expert mask, so the core reopens fast")
        form = QFormLayout(self)
        form.addRow("layer", self.layer_box)
        form.addRow("format", self.format_box)
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
        self.layer_box.currentTextChanged.connect(self._fill_formats)
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
        names = [lyr.name for lyr in self.viewer.layers if role_of(lyr) in EXPORTABLE or _is_map(lyr)]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        self._fill_formats()

    def _fill_formats(self, _name: str | None = None) -> None:
        """The formats of the chosen layer's kind (labels: PNG, GeoJSON; a map: OME-TIFF)."""
        name = self.layer_box.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        choices = MAP_FORMATS if layer is not None and _is_map(layer) else LABEL_FORMATS
        current = self.format_box.currentData()
        self.format_box.clear()
        for label, fmt in choices:
            self.format_box.addItem(label, fmt)
        index = self.format_box.findData(current)
        self.format_box.setCurrentIndex(max(index, 0))

    def _chosen(self, name: str | None, maps: bool = False):
        """The layer to export; a map layer only where ``maps`` (copy and store take labels only)."""
        name = name or self.layer_box.currentText()
        if not name or name not in self.viewer.layers:
            raise InputError("choose a consensus or corrected labels layer to export")
        layer = self.viewer.layers[name]
        if _is_map(layer) and not maps:
            raise InputError(f"{name!r} is a map: it is exported as OME-TIFF; choose a labels layer for this")
        return layer

    def _class_map(self, layer) -> np.ndarray:
        unknown = self.info.coding.unknown_values(level0(layer))
        if unknown:
            raise InputError(f"layer {layer.name!r} holds label values {unknown} that are no class "
                             f"(classes: {dict(zip(self.info.coding.names, self.info.coding.values))})")
        return classes_at_core(self.info, layer)

    # --- handlers ----------------------------------------------------------------------------
    def _on_make_editable(self, source_role: str | None = None) -> None:
        info = self.info or current_core(self.viewer)
        try:
            source = find_layer(self.viewer, source_role) if source_role else self._chosen(None)
        except InputError as e:
            show_error(f"editable copy: {e}")
            return
        if info is None or source is None:
            show_error("no consensus layer to copy yet")
            return
        self.info = info
        layer = set_layer(self.viewer, "corrected", classes_at_core(info, source), core=info.name,
                          scheme=info.scheme, like=info.image)
        layer.visible = True
        self.viewer.layers.selection.active = layer
        self.layer_box.setCurrentText(layer.name)

    def _on_export_file(self, layer_name: str | None = None, folder: str | None = None,
                        fmt: str | None = None) -> Path | None:
        """Write the chosen layer in the chosen format; the overwrite question is asked here, on the GUI
        thread. A mask PNG is written at once (its path is returned); GeoJSON and OME-TIFF, which take
        longer on a large core, in a worker (``None`` is returned, a notification says when it is done)."""
        try:
            layer = self._chosen(layer_name, maps=True)
            fmt = self._format_for(layer, fmt)
            target = Path(folder or self.folder.text())
            if not str(target) or str(target) == ".":
                raise InputError("choose a folder to export into")
            info = self.info or current_core(self.viewer)
            if info is None:
                raise InputError("open a core first")
            self.info = info
            layout = info.origin.get("layout")
            check_destination(target, info.dataset_root)  # never offer to replace an expert's file
            if fmt == "ome-tiff":
                role = role_of(layer)
                name = map_filename(info.name, role)
            else:
                class_map = self._class_map(layer)
                name = export_filename(info.name, layout) if fmt == "png" else f"{info.name}.geojson"
            path = target / name
            answer = path.exists() and self.ask_overwrite(path)
            if path.exists() and not answer:
                show_info(f"{path} exists; not replaced")
                return None
            common = {"dataset_root": info.dataset_root, "ask_overwrite": lambda p: answer}
            if fmt == "png":
                written = export_mask(class_map, info.name, info.scheme, target, layout=layout, **common)
            elif fmt == "geojson":
                self._run(export_mask, class_map, info.name, info.scheme, target, layout=layout, fmt="geojson",
                          what=f"exporting {layer.name} as GeoJSON", **common)
                return None
            else:
                data, shape, source = level0(layer), tuple(level0(info.image).shape[:2]), info.origin.get("source")
                self._run(_write_map, data, shape, source, info.name, role, target,
                          what=f"exporting {layer.name} as OME-TIFF", **common)
                return None
        except InputError as e:
            show_error(f"export: {e}")
            return None
        show_info(f"exported {layer.name} to {written}")
        return written

    def _format_for(self, layer, fmt: str | None) -> str:
        """``fmt`` (it must fit the layer's kind), else the format box's choice if it fits, else the kind's first."""
        choices = [f for _, f in (MAP_FORMATS if _is_map(layer) else LABEL_FORMATS)]
        if fmt is not None and fmt not in choices:
            raise InputError(f"{layer.name!r} cannot be exported as {fmt}; choose {' or '.join(choices)}")
        fmt = fmt or self.format_box.currentData()
        return fmt if fmt in choices else choices[0]

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
        core = Core(info.name, level0(info.image), masks, info.scheme, extras=extras, origin=info.origin)

        def job():
            new_store = not path.exists()
            try:
                st = ReviewStore.create(path, info.scheme, dataset=info.origin.get("dataset"),
                                        layout=info.origin.get("layout"))
                return st.write_core(core, overwrite=exists)
            except (OSError, InputError) as e:  # read-only, full disk: the store keeps what it had, a new one goes
                if new_store and path.exists() and not ReviewStore.open(path).names:
                    shutil.rmtree(path, ignore_errors=True)
                if isinstance(e, InputError):  # the store's own message names the file and the reason
                    raise
                raise InputError(f"cannot write the review store ({e.strerror or e}); nothing was kept") from e

        self._run(job, what=f"caching {info.name} in {path}")

    def _run(self, func, *args, what: str, **kwargs) -> None:
        def done(result):
            if result is not None:
                show_info(f"{what}: done ({result})")

        self._worker = workers.start(func, *args, what=what, on_return=done, on_finish=self._finished, **kwargs)

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
    return resize_nearest(info.coding.to_classes(level0(layer)), tuple(level0(info.image).shape[:2]))


def _is_map(layer) -> bool:
    role = role_of(layer)
    return role is not None and role_prefix(role) in MAP_PREFIXES


def _write_map(data, shape: tuple[int, int], source: str | None, core: str, role: str, folder: Path, **kwargs):
    """Worker job: a map layer at the core's size (a model-resolution map enlarged, nearest-exact, as
    predict's files are), with the pixel size the core's image states, as a pyramidal OME-TIFF."""
    from trainer.ome_tiff import pixel_size_um

    full = resize_nearest(np.asarray(data, np.float32), shape)
    return export_map(full, core, role, folder, pixel_size_um=pixel_size_um(source), **kwargs)
