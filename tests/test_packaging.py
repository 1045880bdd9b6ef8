"""Packaging: every import declared where it belongs, the trainer without napari or Qt, and a built
wheel that carries the manifest, the sample data and the demo model and runs from a fresh venv."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
OWN = {"trainer", "napari_gleason"}
#: What a plain ``pip install napari-gleason`` must not pull in: napari, its plugin engine and Qt.
GUI_ONLY = {"napari", "npe2", "magicgui", "qtpy", "pyqt5", "pyqt6", "pyside2", "pyside6", "superqt", "vispy",
            "psygnal"}


def _declared(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def third_party_imports(package: str) -> dict[str, set[str]]:
    """Top-level module -> files of ``package`` importing it (absolute imports outside the standard
    library and this project; imports inside functions and ``try`` blocks count too)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared_where_it_is_needed():
    """trainer/ needs only the base dependencies; the plugin may also use the [gui] extra."""
    base = _declared(PROJECT["dependencies"])
    gui = _declared(PROJECT["optional-dependencies"]["gui"])
    providers = packages_distributions()
    undeclared = {}
    for package, allowed in (("trainer", base), ("napari_gleason", base | gui)):
        imports = third_party_imports(package)
        assert {"torch", "numpy"} <= set(imports), "the walk found the imports"
        for top, files in sorted(imports.items()):
            dists = {canonicalize_name(d) for d in providers.get(top, ())}
            assert dists, f"{top} (imported by {sorted(files)}) comes from no installed distribution"
            if not dists & allowed:
                undeclared[top] = (sorted(dists), sorted(files)[:3])
    assert not undeclared, f"imported but not declared (pyproject.toml): {undeclared}"


def test_base_install_has_no_napari_or_qt_and_the_gui_extra_brings_them():
    base = _declared(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    assert not base & GUI_ONLY
    assert {"napari", "npe2", "qtpy", "pyqt6"} <= _declared(extras["gui"])
    assert extras["qt"] == ["napari-gleason[gui]"]  # the old extra's name still installs the same
    assert "'.[gui,dev]'" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_listed_packages_are_the_source_tree_plus_the_sample_data():
    """pyproject lists the packages (sample_data/ is mapped into napari_gleason, which discovery cannot
    express): a new subpackage must be added there, or the wheel silently lacks it."""
    from setuptools import find_packages

    found = find_packages(str(ROOT), include=["trainer", "trainer.*", "napari_gleason", "napari_gleason.*"])
    setuptools_cfg = PYPROJECT["tool"]["setuptools"]
    assert sorted(setuptools_cfg["packages"]) == sorted([*found, "napari_gleason.sample_data"])
    assert setuptools_cfg["package-dir"] == {"napari_gleason.sample_data": "sample_data"}


def test_sample_data_resolves_to_the_checkout_in_an_editable_install():
    from napari_gleason import demo, sample_data

    assert sample_data.ROOT.resolve() == (ROOT / "sample_data").resolve()
    assert demo.DEMO_MODEL == sample_data.DEMO_MODEL and demo.DEMO_MODEL.is_file()
    assert (sample_data.SYNTHETIC / "Train Imgs" / "slide001_core001.jpg").is_file()


#: Runs the trainer's CLI (``python -m trainer ARGS``) with napari, the plugin and Qt unimportable;
#: prints every import that was refused, as JSON, on the last line of stderr.
WITHOUT_GUI = """
import atexit, json, runpy, sys
BLOCKED = {blocked!r}
refused = []
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            refused.append(name)
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, Refuse())
atexit.register(lambda: print(json.dumps(refused), file=sys.stderr))
sys.argv = ["trainer", *sys.argv[1:]]
runpy.run_module("trainer", run_name="__main__", alter_sys=True)
"""


BLOCKED = ["napari", "napari_gleason", "npe2", "magicgui", "qtpy", "superqt", "vispy", "psygnal",
           "PyQt5", "PyQt6", "PySide2", "PySide6"]


def _run_without_gui(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", WITHOUT_GUI.format(blocked=BLOCKED), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_trainer_cli_runs_with_napari_and_qt_unimportable(tmp_path):
    out = _run_without_gui("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "synth" in out.stdout and "train" in out.stdout
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []

    out = _run_without_gui("synth", "--out", str(tmp_path / "synthetic"), "--cores", "2", "--size", "64",
                           cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stderr.strip().splitlines()[-1]) == [], "something tried to import napari or Qt"
    assert len(list((tmp_path / "synthetic" / "Train Imgs").glob("*.jpg"))) == 2
    assert list((tmp_path / "synthetic" / "Maps1_T").glob("*_classimg_nonconvex.png"))

    # the guard itself works: the plugin cannot be imported under it
    guard = WITHOUT_GUI.format(blocked=BLOCKED).split("atexit.register")[0]
    probe = subprocess.run([sys.executable, "-c", guard + "import napari_gleason"], capture_output=True, text=True,
                           timeout=120)
    assert probe.returncode != 0 and "napari_gleason is blocked" in probe.stderr


# --- the wheel --------------------------------------------------------------------------------------
#: Not copied into the build's source tree (what a clean checkout does not have).
BUILD_IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "out", "*.egg-info", "__pycache__",
                                      ".pytest_cache", ".grimp_cache", ".whl", ".gl")

#: Run inside the fresh venv from a temporary folder: where the packages come from, the demo (the
#: shipped model predicts the sample core) and File ▸ Open Sample through npe2's entry point.
IN_VENV = """
import json, sys, time
import napari_gleason, trainer
from napari_gleason import sample_data
from napari_gleason.demo import DEMO_MODEL, main
t0 = time.perf_counter()
main(["--no-show", "--size", "{size}", "--screenshot", "demo.png"])
demo_s = time.perf_counter() - t0
import napari
viewer = napari.Viewer(show=False)
viewer.open_sample("napari-gleason", "synthetic_core")
layers = [layer.name for layer in viewer.layers]
viewer.close()
print(json.dumps({{"napari_gleason": napari_gleason.__file__, "trainer": trainer.__file__,
                  "model": str(DEMO_MODEL), "synthetic": str(sample_data.SYNTHETIC),
                  "layers": layers, "demo_s": demo_s}}))
"""


def _venv_with_project_deps(venv: Path) -> Path:
    """A venv without pip whose dependencies come from the project's: a folder of links to every
    entry of the project venv's site-packages except this project's own (editable) install, named
    by a .pth file. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    project_site = Path(sysconfig.get_paths()["purelib"])
    deps = venv / "project-deps"
    deps.mkdir()
    for entry in project_site.iterdir():
        name = entry.name.lower()
        if name.startswith(("napari_gleason", "__editable__", "trainer")) or name.endswith(".pth"):
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "project_deps.pth").write_text(f"{deps}\n")
    return python


@pytest.mark.slow
def test_wheel_carries_manifest_sample_data_and_model_and_runs_from_a_fresh_venv(tmp_path):
    started = time.perf_counter()
    src = tmp_path / "src"  # a copy: an in-tree build would reuse build/ (files deleted since would ship)
    shutil.copytree(ROOT, src, ignore=BUILD_IGNORE, symlinks=True)
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("napari_gleason-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    samples = {f"napari_gleason/sample_data/{p.relative_to(ROOT / 'sample_data').as_posix()}"
               for p in (ROOT / "sample_data").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert "napari_gleason/sample_data/demo_model.pt" in samples
    assert "napari_gleason/sample_data/gleason_synthetic/Train Imgs/slide001_core001.jpg" in samples
    assert samples <= names, sorted(samples - names)[:5]
    assert "napari_gleason/napari.yaml" in names and "trainer/cli.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "docs", "sample_data")]
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    requires = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert not {canonicalize_name(r.name) for r in requires if r.marker is None} & GUI_ONLY
    assert [str(r.marker) for r in requires if r.name == "napari"] == ['extra == "gui"']
    assert "napari.manifest" in zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    built_s = time.perf_counter() - started

    python = _venv_with_project_deps(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    out = subprocess.run([str(python), "-c", IN_VENV.format(size=128)], cwd=run_dir, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    installed = (tmp_path / "venv").resolve()
    for key in ("napari_gleason", "trainer", "model", "synthetic"):
        assert Path(got[key]).resolve().is_relative_to(installed), (key, got[key])
    assert Path(got["model"]).is_file()
    assert len(list(Path(got["synthetic"], "Train Imgs").glob("slide*_core*.jpg"))) == 8
    assert (run_dir / "demo.png").stat().st_size > 10_000
    assert got["layers"][0] == "synthetic_core_s3", got["layers"]  # the sample's image, then its experts
    assert sum(name.startswith("expert") for name in got["layers"]) == 6, got["layers"]
    print(f"wheel built and checked in {built_s:.0f} s; whole test {time.perf_counter() - started:.0f} s "
          f"(demo {got['demo_s']:.0f} s)")
