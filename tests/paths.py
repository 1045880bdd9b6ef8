"""Where the tests find the checkout's files, from one place (a test file may move; these do not)."""

from pathlib import Path

#: the repository root (pyproject.toml, Makefile, trainer/, napari_gleason/, sample_data/)
ROOT = Path(__file__).resolve().parents[1]
#: the synthetic sample dataset shipped with the plugin
SAMPLES = ROOT / "sample_data" / "gleason_synthetic"
#: the task's shared folder beside the checkout (the paper, real datasets where present)
SHARED = ROOT.parent / "shared"
