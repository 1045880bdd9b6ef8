"""Data breakers for the data check's catalogue rows (tests/test_bad_input_catalogue.py).

Kept apart from tests/broken_inputs.py: each takes the Gleason fake's folder and breaks files that a
one-iteration run never reads, or several at once, so only a check of every core finds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: An excluded core of the Gleason fake (expert 2 only): training never samples it.
UNSAMPLED = "slide004_core002"


def unsampled_mask(root: Path) -> Path:
    return root / "Maps2_T" / f"{UNSAMPLED}_classimg_nonconvex.png"


def value_7_on_unsampled_core(root: Path) -> None:
    values = np.asarray(Image.open(unsampled_mask(root))).copy()
    values[0, 0] = 7
    Image.fromarray(values.astype(np.uint8), mode="L").save(unsampled_mask(root))


def three_broken_files(root: Path) -> None:
    """A mask with value 7, a mask of the wrong size and an image that is no JPEG, on three cores."""
    value_7_on_unsampled_core(root)
    Image.fromarray(np.ones((10, 10), np.uint8)).save(root / "Maps3_T" / "slide002_core003_classimg_nonconvex.png")
    (root / "Train Imgs" / "slide003_core001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
