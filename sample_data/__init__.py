"""Data shipped with napari-gleason, installed as ``napari_gleason.sample_data``.

The folder sits at the top of the source tree (``sample_data/``); ``pyproject.toml`` maps it to
this subpackage, so a wheel carries it inside ``napari_gleason/`` and an editable install finds it
in the checkout. Code reaches it through :data:`ROOT`, never through ``__file__`` arithmetic.

- ``gleason_synthetic/``: 8 synthetic cores in the Gleason 2019 layout (README.md);
- ``demo_model.pt``: the small checkpoint ``python -m napari_gleason.demo`` predicts with.
"""

from importlib.resources import files
from pathlib import Path

#: This folder (a plain directory in a checkout and in an installed wheel).
ROOT = Path(str(files(__name__)))
#: The 8-core synthetic dataset.
SYNTHETIC = ROOT / "gleason_synthetic"
#: The demo's checkpoint.
DEMO_MODEL = ROOT / "demo_model.pt"
