"""Small hand-made cores and datasets for the plugin tests (values chosen to be checked by hand).

Shared by tests/napari_gleason, tests/napari_gleason/_qt and the bad-input catalogue (imported as
``tests.napari_gleason.helpers_plugin``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.data.classes import GLEASON_SCHEME

#: Two experts on a 2×4 pattern (class indices); see test_plugin_analysis for the hand computation.
A = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], np.uint8)
B = np.array([[0, 1, 1, 1], [2, 3, 3, 3]], np.uint8)

GLEASON_VALUES = np.array([1, 3, 4, 5], np.uint8)  # class index -> Gleason value


def blocks(pattern: np.ndarray, k: int) -> np.ndarray:
    """Each pixel of ``pattern`` as a k×k block: Dice and κ are unchanged, sampling grids stay exact."""
    return np.kron(pattern, np.ones((k, k), np.uint8)).astype(np.uint8)


def textured_image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(60, 220, h), np.linspace(60, 220, w), indexing="ij")
    base = np.stack([yy, xx, np.full((h, w), 150.0)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_gleason(root: Path, cores: dict[str, dict[str, np.ndarray]], shape=(16, 32)) -> Path:
    """A Gleason 2019 folder: ``Train Imgs/<core>.png`` and ``Maps{k}_T/<core>_classimg_nonconvex.png``.

    ``cores`` maps core -> expert -> class map (written as Gleason values).
    """
    (root / "Train Imgs").mkdir(parents=True, exist_ok=True)
    for i, (name, experts) in enumerate(cores.items()):
        Image.fromarray(textured_image(shape, i)).save(root / "Train Imgs" / f"{name}.png")
        for expert, classes in experts.items():
            folder = root / f"Maps{expert}_T"
            folder.mkdir(exist_ok=True)
            Image.fromarray(GLEASON_VALUES[classes]).save(folder / f"{name}_classimg_nonconvex.png")
    return root


def write_generic(root: Path, cores: dict[str, dict[str, np.ndarray]], shape=(16, 32)) -> Path:
    """A generic folder: ``images/<core>.png``, ``masks/<annotator>/<core>.png`` and a classes.json."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps({
        "classes": ["benign", "G3", "G4", "G5"], "values": {"1": 0, "3": 1, "4": 2, "5": 3}}))
    for i, (name, experts) in enumerate(cores.items()):
        Image.fromarray(textured_image(shape, i)).save(root / "images" / f"{name}.png")
        for expert, classes in experts.items():
            folder = root / "masks" / expert
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(GLEASON_VALUES[classes]).save(folder / f"{name}.png")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (to prove nothing changed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def make_two_expert_dataset(root: Path) -> Path:
    """Gleason folder: core ``c1`` (experts 1, 2 = A, B as 4×4 blocks) and ``c2`` (experts 1, 3 = B)."""
    a, b = blocks(A, 4), blocks(B, 4)
    return write_gleason(root, {"c1": {"1": a, "2": b}, "c2": {"1": b, "3": b}}, shape=a.shape)


def open_core(viewer, path: Path) -> None:
    """Open a core image of these hand-made datasets with napari-gleason's reader, layer by layer as
    ``viewer.open(path, plugin="napari-gleason")`` adds them. That call works only for Gleason 2019
    names (``slide001_core001.jpg``): npe2 offers the reader no other image name (napari.yaml), and
    these datasets name their cores c1, c2."""
    from napari.layers import Layer

    from napari_gleason._reader import napari_get_reader

    for data, meta, kind in napari_get_reader(str(path))(str(path)):
        viewer.add_layer(Layer.create(data, meta, kind))


def errors_of(notes) -> list[str]:
    """Messages of the error notifications among ``notes`` (napari ``Notification`` objects)."""
    from napari.utils.notifications import NotificationSeverity

    return [n.message for n in notes if n.severity == NotificationSeverity.ERROR]


SCHEME = GLEASON_SCHEME



def click_predict(widget, wait_idle, checkpoint) -> None:
    """Offer ``checkpoint`` to a predict widget, click Predict, wait until it is idle again."""
    widget.offer_checkpoint(checkpoint)
    assert widget.predict()
    wait_idle(widget)


def jpeg_core(root, shape=(128, 96), name="j"):
    """A Gleason folder with one JPEG core ``name`` and one expert (class map of 8×8 blocks)."""
    (root / "Train Imgs").mkdir(parents=True)
    (root / "Maps1_T").mkdir()
    Image.fromarray(textured_image(shape, 7)).save(root / "Train Imgs" / f"{name}.jpg", quality=92)
    classes = np.kron(np.arange(4, dtype=np.uint8)[np.indices((shape[0] // 8, shape[1] // 8)).sum(0) % 4],
                      np.ones((8, 8), np.uint8))
    Image.fromarray(GLEASON_VALUES[classes]).save(root / "Maps1_T" / f"{name}_classimg_nonconvex.png")
    return root / "Train Imgs" / f"{name}.jpg", classes
