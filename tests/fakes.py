"""Small, format-faithful fake datasets written to a temporary folder; reused across tests.

Plain functions (no pytest fixtures) so any test module can call them with its ``tmp_path``.
Each returns a manifest holding the raw values written, so tests compare against what is on
disk rather than against the code under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ALL_SIX = ("1", "2", "3", "4", "5", "6")

#: Default Gleason fake: core -> experts who annotated it (paper §3.1 situations).
GLEASON_CORES: dict[str, tuple[str, ...]] = {
    "slide001_core001": ALL_SIX,  # test (all six)
    "slide001_core002": ALL_SIX,  # test (all six)
    "slide002_core001": ("1", "3", "4"),  # train/val
    "slide002_core002": ("1", "2", "3", "4"),  # train/val
    "slide002_core003": ("1", "3", "4", "5"),  # train/val
    "slide003_core001": ("1", "3", "4", "6"),  # train/val
    "slide_é_ü_core005": ("1", "3", "4"),  # train/val, non-ASCII name
    "slide004_core001": ("1", "3"),  # excluded: expert 4 missing
    "slide004_core002": ("2",),  # excluded: a core with one expert
    "slide005_core001": (),  # no expert at all: skipped with a note
}

#: Mask file mode per Gleason expert: the real maps come in several PNG flavours.
GLEASON_MASK_MODES = {"1": "L", "2": "P", "3": "L", "4": "RGB", "5": "L", "6": "P"}


@dataclass
class FakeDataset:
    """What a fake writer put on disk: raw mask values and images, keyed by core/expert."""

    root: Path
    cores: dict[str, tuple[str, ...]]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (core, expert) -> values
    mask_paths: dict[tuple[str, str], Path] = field(default_factory=dict)


def block_values(rng: np.random.Generator, values: list[int], shape: tuple[int, int], block: int = 8) -> np.ndarray:
    """A map of constant blocks drawn from ``values`` (robust to nearest resizing)."""
    h, w = shape
    grid = rng.choice(np.asarray(values, dtype=np.uint8), size=(-(-h // block), -(-w // block)))
    return np.kron(grid, np.ones((block, block), np.uint8))[:h, :w].astype(np.uint8)


def fake_image(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth RGB image (JPEG-friendly) with some per-pixel texture."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 200 // max(h, 1), xx * 200 // max(w, 1), (yy + xx) * 100 // max(h + w, 1)], -1)
    return (base + rng.integers(0, 40, size=(h, w, 3))).astype(np.uint8)


def save_mask(path: Path, values: np.ndarray, mode: str = "L") -> None:
    """Write raw label values as a grey, palette or grey-valued RGB PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        Image.fromarray(values, mode="L").save(path)
    elif mode == "P":
        img = Image.fromarray(values, mode="P")
        img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)])
        img.save(path)
    elif mode == "RGB":
        Image.fromarray(np.repeat(values[..., None], 3, axis=2), mode="RGB").save(path)
    else:
        raise ValueError(mode)


def make_fake_gleason(
    root: Path,
    cores: dict[str, tuple[str, ...]] | None = None,
    size: tuple[int, int] = (48, 40),
    image_dir: str = "Train Imgs",
    seed: int = 0,
    mask_modes: dict[str, str] | None = None,
    image_suffix: str = ".jpg",
) -> FakeDataset:
    """Write a Gleason 2019 layout under ``root``: ``Train Imgs/*.jpg`` and ``Maps{k}_T/``.

    Every expert folder that any core uses is created. Mask values are drawn from
    {0, 1, 3, 4, 5, 6}; the first core's expert 1 mask always holds 6 and every grade.
    """
    root = Path(root)
    cores = dict(GLEASON_CORES if cores is None else cores)
    modes = {**GLEASON_MASK_MODES, **(mask_modes or {})}
    rng = np.random.default_rng(seed)
    fake = FakeDataset(root, cores)
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    for i, (name, experts) in enumerate(cores.items()):
        image = fake_image(rng, size)
        Image.fromarray(image).save(root / image_dir / f"{name}{image_suffix}", quality=95)
        fake.images[name] = image
        for expert in experts:
            values = block_values(rng, [0, 1, 3, 4, 5, 6], size)
            if i == 0 and expert == experts[0]:  # every raw value, 6 included, occurs here
                values[:8, :] = np.resize(np.repeat(np.array([0, 1, 3, 4, 5, 6], np.uint8), 4), size[1])
            path = root / f"Maps{expert}_T" / f"{name}_classimg_nonconvex.png"
            save_mask(path, values, modes.get(expert, "L"))
            fake.raw[(name, expert)] = values
            fake.mask_paths[(name, expert)] = path
    return fake


GENERIC_CLASSES = {
    "classes": ["benign", "G3", "G4", "G5"],
    "values": {"0": 0, "1": 0, "3": 1, "4": 2, "5": 3},
    "ignore": [255],
}

#: Default generic fake: annotator -> images they annotated (they overlap only partly).
GENERIC_ANNOTATORS: dict[str, tuple[str, ...]] = {
    "alice": ("img a", "img_b", "bild_ö"),
    "bob": ("img a", "bild_ö"),
    "carol": ("img_b",),
}


def make_fake_generic(
    root: Path,
    annotators: dict[str, tuple[str, ...]] | None = None,
    extra_images: tuple[str, ...] = ("lonely",),
    classes: dict | None = GENERIC_CLASSES,
    size: tuple[int, int] = (32, 36),
    seed: int = 0,
) -> FakeDataset:
    """Write ``images/*.png`` + ``masks/<annotator>/*.png`` (+ ``classes.json`` if ``classes``).

    With ``classes`` the masks hold its raw values and its ignore values; without, they hold
    class indices 0..2 and 255. ``extra_images`` have no annotator at all.
    """
    root = Path(root)
    annotators = dict(GENERIC_ANNOTATORS if annotators is None else annotators)
    rng = np.random.default_rng(seed)
    if classes is not None:
        values = sorted(int(v) for v in classes.get("values", {str(i): i for i in range(len(classes["classes"]))}))
        values += [int(v) for v in classes.get("ignore", [])]
        root.mkdir(parents=True, exist_ok=True)
        (root / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    else:
        values = [0, 1, 2, 255]
    names = sorted({n for imgs in annotators.values() for n in imgs} | set(extra_images))
    cores = {n: tuple(a for a, imgs in annotators.items() if n in imgs) for n in names}
    fake = FakeDataset(root, cores)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for name in names:
        image = fake_image(rng, size)
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        fake.images[name] = image
    for annotator, imgs in annotators.items():
        (root / "masks" / annotator).mkdir(parents=True, exist_ok=True)
        for name in imgs:
            raw = block_values(rng, values, size, block=4)
            path = root / "masks" / annotator / f"{name}.png"
            save_mask(path, raw)
            fake.raw[(name, annotator)] = raw
            fake.mask_paths[(name, annotator)] = path
    return fake
