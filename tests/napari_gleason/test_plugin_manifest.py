"""The npe2 manifest: valid, one real file, found through the entry point."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT


def test_manifest_validates_with_npe2_including_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2)] if npe2.exists() else [sys.executable, "-m", "npe2"]
    out = subprocess.run([*cmd, "validate", str(ROOT / "napari_gleason" / "napari.yaml"), "--imports"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_top_level_manifest_is_a_relative_symlink_to_the_package_file():
    top = ROOT / "napari.yaml"
    assert top.is_symlink()
    assert not os.path.isabs(os.readlink(top))
    assert top.resolve() == (ROOT / "napari_gleason" / "napari.yaml").resolve()


def test_manifest_contributions_and_entry_point():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(ROOT / "napari_gleason" / "napari.yaml")
    assert manifest.name == "napari-gleason"
    ids = {c.id for c in manifest.contributions.commands}
    assert all(i.startswith("napari-gleason.") for i in ids)
    assert {w.display_name for w in manifest.contributions.widgets} == {"Review experts", "Dataset browser",
                                                                             "Predict", "Train and fine-tune"}
    from napari_gleason import _qt

    # docking.dock finds each widget by the name it has in the manifest
    names = {c.id: c.python_name.rsplit(":", 1)[-1] for c in manifest.contributions.commands}
    for w in manifest.contributions.widgets:
        assert getattr(_qt, names[w.command]).display_name == w.display_name
    assert {s.key for s in manifest.contributions.sample_data} == {"synthetic_core", "synthetic_core_truth"}
    assert manifest.contributions.readers[0].accepts_directories
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'napari-gleason = "napari_gleason:napari.yaml"' in pyproject
