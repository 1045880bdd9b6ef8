"""A tiny BU-BIL dataset 1, faithful to the published files' format (Gurari et al., WACV 2015).

As published: ``RawImages/B01.png`` 8-bit grey (one of them palette-grey, as B02 is), masks
``ExpertsAnnotations/Person<k>_<tool>/seg_B01.png`` with 0 = cell and 255 = background, saved grey
by the Amira folders and grey-valued RGB by the ImageJ ones, ``GoldStandard/seg_B01.png`` 1-bit
with True = background. And its quirks: one mask holding a stray value (24, inside a cell), one
mask named ``Seg_…`` (capital S). Beyond the published set, one expert lacks one image, so the
"missing annotation" path is exercised too.

Every expert's mask is the gold standard changed in a known way (grown or shrunk by a pixel, a
cell dropped), so the truth and every expert's departures from it are known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

#: Default experts (natural order: Person10 after Person2) and how each departs from the gold standard.
FAKE_EXPERTS: dict[str, str] = {
    "Person1_Amira": "exact",
    "Person1_ImageJ": "grow",  # every cell one pixel wider
    "Person2_Amira": "shrink",  # every cell one pixel thinner
    "Person10_ImageJ": "drop",  # the first cell of every image missed
}


def _cells(rng: np.random.Generator, shape: tuple[int, int], n: int) -> list[tuple[int, int, int, int]]:
    """``n`` ellipses (cy, cx, ry, rx) fully inside the image and apart from one another."""
    h, w = shape
    out: list[tuple[int, int, int, int]] = []
    while len(out) < n:
        ry, rx = int(rng.integers(3, 6)), int(rng.integers(3, 7))
        cy, cx = int(rng.integers(ry + 2, h - ry - 2)), int(rng.integers(rx + 2, w - rx - 2))
        if all(abs(cy - y) > ry + r + 2 or abs(cx - x) > rx + s + 2 for y, x, r, s in out):
            out.append((cy, cx, ry, rx))
    return out


def _ellipse(shape: tuple[int, int], cell: tuple[int, int, int, int]) -> np.ndarray:
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    cy, cx, ry, rx = cell
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def expert_cells(truth_cells: list[np.ndarray], how: str) -> np.ndarray:
    """An expert's cell mask (bool) from the true cells, departing from them as ``how`` says."""
    union = np.zeros_like(truth_cells[0])
    for i, cell in enumerate(truth_cells):
        if how == "drop" and i == 0:
            continue
        union |= cell
    if how == "grow":
        return ndimage.binary_dilation(union)
    if how == "shrink":
        return ndimage.binary_erosion(union)
    return union


def write_fake_bubil(
    root: Path,
    images: int = 4,
    shape: tuple[int, int] = (40, 48),
    experts: dict[str, str] | None = None,
    cells: int = 3,
    missing: tuple[str, str] | None = ("Person2_Amira", "B03"),
    stray: tuple[str, str, int] | None = ("Person1_ImageJ", "B02", 24),
    capital: tuple[str, str] | None = ("Person1_Amira", "B04"),
    seed: int = 0,
) -> dict:
    """Write the fake under ``root``; returns what was written, in classes (0 background, 1 cell).

    ``{"gold": {core: H×W}, "masks": {expert: {core: H×W}}, "stray": (path, (y, x), value) | None,
    "missing": (expert, core) | None, "capital": Path | None, "images": {core: H×W uint8 grey}}``.
    The stray pixel lies inside a cell of that expert's mask (so its class there is cell).
    """
    root = Path(root)
    experts = dict(FAKE_EXPERTS if experts is None else experts)
    rng = np.random.default_rng(seed)
    (root / "RawImages").mkdir(parents=True, exist_ok=True)
    (root / "GoldStandard").mkdir(parents=True, exist_ok=True)
    out: dict = {"gold": {}, "masks": {e: {} for e in experts}, "stray": None, "missing": missing,
                 "capital": None, "images": {}}
    for k in range(1, images + 1):
        core = f"B{k:02d}"
        true_cells = [_ellipse(shape, c) for c in _cells(rng, shape, cells)]
        gold = np.zeros(shape, bool)
        for c in true_cells:
            gold |= c
        # phase contrast: a grey field, cells darker with a bright halo, some noise
        halo = ndimage.binary_dilation(gold, iterations=2) & ~gold
        grey = np.full(shape, 128.0) + rng.normal(0, 6, shape)
        grey[gold] -= 50
        grey[halo] += 45
        image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        out["images"][core] = image
        if k == 2:  # as B02 of the published set: a palette image whose palette is grey
            pal = Image.fromarray(image, mode="P")
            pal.putpalette([v for i in range(256) for v in (i, i, i)])
            pal.save(root / "RawImages" / f"{core}.png")
        else:
            Image.fromarray(image, mode="L").save(root / "RawImages" / f"{core}.png")
        one_bit = Image.fromarray(np.where(gold, 0, 255).astype(np.uint8), mode="L").convert("1")  # True = background
        one_bit.save(root / "GoldStandard" / f"seg_{core}.png")
        out["gold"][core] = gold.astype(np.uint8)
        for expert, how in experts.items():
            if missing is not None and (expert, core) == tuple(missing):
                continue
            cell = expert_cells(true_cells, how)
            raw = np.where(cell, 0, 255).astype(np.uint8)
            if stray is not None and (expert, core) == tuple(stray[:2]):
                ys, xs = np.nonzero(ndimage.binary_erosion(cell))  # strictly inside a cell
                y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
                raw[y, x] = stray[2]
            name = f"seg_{core}.png"
            if capital is not None and (expert, core) == tuple(capital):
                name = f"Seg_{core}.png"
            path = root / "ExpertsAnnotations" / expert / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if expert.endswith("ImageJ"):  # ImageJ's masks were saved as grey-valued RGB
                Image.fromarray(np.repeat(raw[..., None], 3, axis=2), mode="RGB").save(path)
            else:
                Image.fromarray(raw, mode="L").save(path)
            if stray is not None and (expert, core) == tuple(stray[:2]):
                out["stray"] = (path, (y, x), stray[2])
            if name.startswith("Seg_"):
                out["capital"] = path
            out["masks"][expert][core] = cell.astype(np.uint8)
    return out
