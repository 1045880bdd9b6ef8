"""The architecture contracts of pyproject.toml's [tool.importlinter], checked with import-linter.

* ``trainer`` imports neither napari, Qt, magicgui nor the plugin (directly or through anything);
* plugin modules outside ``napari_gleason/_qt/`` import no Qt (qtpy, napari.qt, napari._qt,
  magicgui, the bindings);
* and, checked here with grimp (import-linter's graph), plugin modules outside ``_qt/`` do not
  import ``napari_gleason._qt`` either — every module, including ones added later — except the
  demo launcher, which docks the widgets.

The contracts are also run on a throw-away copy of the layout that breaks them, so a contract that
cannot fail (a typo in a module name, an ignore that swallows everything) fails this file.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

importlinter = pytest.importorskip("importlinter")
grimp = pytest.importorskip("grimp")

from importlinter.application.use_cases import lint_imports  # noqa: E402

from tests.paths import ROOT  # noqa: E402

PYPROJECT = ROOT / "pyproject.toml"

#: Plugin modules allowed to import napari_gleason._qt: the demo launcher (an application).
QT_CLIENTS = {"napari_gleason.demo"}


def _lint(config: Path, capsys) -> tuple[bool, str]:
    import importlinter.configuration

    importlinter.configuration.configure()
    ok = lint_imports(config_filename=str(config), cache_dir=None, no_logo=True)
    return ok, capsys.readouterr().out


def test_pyproject_contracts_hold(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    ok, report = _lint(PYPROJECT, capsys)
    assert ok, report
    assert "3 kept, 0 broken" in report


def _qt_importers(package: str, clients=()) -> set[str]:
    """Modules of ``package`` outside ``<package>._qt`` (and ``clients``) that import from it."""
    graph = grimp.build_graph(package, cache_dir=None)
    qt = {m for m in graph.modules if m == f"{package}._qt" or m.startswith(f"{package}._qt.")}
    assert qt, f"{package} has no _qt package"
    return {m for m in graph.modules - qt - set(clients) if graph.find_modules_directly_imported_by(m) & qt}


def test_qt_free_plugin_modules_do_not_import_the_qt_package():
    offenders = _qt_importers("napari_gleason", QT_CLIENTS)
    assert not offenders, f"modules outside _qt/ importing it: {sorted(offenders)}"


# ---------------------------------------------------------------- the contracts can fail
def _toml_value(v) -> str:
    return json.dumps(v)  # strings, lists of strings and booleans: JSON is valid TOML here


def _contracts_for(plugin: str, trainer: str) -> str:
    """pyproject's [tool.importlinter], aimed at the fake packages ``plugin`` and ``trainer``."""
    cfg = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]

    def rename(v):
        if isinstance(v, list):
            return [rename(x) for x in v]
        if isinstance(v, str):
            v = v.replace("napari_gleason", plugin)
            return trainer + v[len("trainer"):] if v == "trainer" or v.startswith("trainer.") else v
        return v

    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_toml_value(rename(v))}" for k, v in cfg.items() if k != "contracts"]
    for contract in cfg["contracts"]:
        if contract["type"] == "layers":  # the trainer's own modules: test_the_layers_contract_can_fail
            continue
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{k} = {_toml_value(rename(v) if k != 'name' else v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_contracts_catch_a_qt_import_outside_qt_and_a_gui_import_in_the_trainer(tmp_path, capsys, monkeypatch):
    plugin, trainer = "fake_gleason_plugin", "fake_gleason_trainer"
    pkg, trn = tmp_path / plugin, tmp_path / trainer
    _write(pkg / "__init__.py", "")
    _write(pkg / "_qt" / "__init__.py", "from qtpy.QtWidgets import QWidget\nfrom . import workers\n")
    _write(pkg / "_qt" / "workers.py", "from napari.qt.threading import thread_worker\nimport magicgui\n")
    _write(pkg / "_reader.py", "from napari.utils.notifications import show_info\n")  # not Qt: allowed
    _write(trn / "__init__.py", "import numpy\n")
    config = tmp_path / "contracts.toml"
    config.write_text(_contracts_for(plugin, trainer))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)

    ok, report = _lint(config, capsys)
    assert ok, report  # the allowed layout is allowed

    bad = {
        pkg / "_layers.py": ("from qtpy.QtCore import Qt\n", f"{plugin}._layers -> qtpy"),
        pkg / "_jobs.py": ("from napari.qt.threading import create_worker\n", f"{plugin}._jobs -> napari.qt"),
        pkg / "_dock.py": ("import napari._qt.qt_main_window\n", f"{plugin}._dock -> napari._qt"),
        pkg / "_form.py": ("from magicgui import magicgui\n", f"{plugin}._form -> magicgui"),
        trn / "engine.py": ("from napari.utils import notifications\n", f"{trainer}.engine -> napari"),
        trn / "plot.py": (f"from {plugin} import _reader\n", f"{trainer}.plot -> {plugin}"),
    }
    assert not _qt_importers(plugin)
    _write(pkg / "_session.py", "from ._qt import workers\n")
    assert _qt_importers(plugin) == {f"{plugin}._session"}
    (pkg / "_session.py").unlink()

    for path, (source, _) in bad.items():  # all at once: one more analysis, each must be reported
        _write(path, source)
    ok, report = _lint(config, capsys)
    flat = " ".join(report.split())
    assert not ok
    for path, (source, expected) in bad.items():
        assert expected in flat, f"{path.name} ({source.strip()}) was not caught:\n{report}"


def _layers_contract() -> dict:
    (contract,) = [c for c in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
                   if c["type"] == "layers"]
    return contract


def test_the_layers_contract_can_fail(tmp_path, capsys, monkeypatch):
    """A copy of the trainer's layer list over a fake package with one empty module per name: an
    import upwards (data importing the engine) and a module no layer names are both reported."""
    import re

    contract = _layers_contract()
    fake = "fake_layered_trainer"
    names = [n for layer in contract["layers"] for n in re.split(r"[|:]", layer)]
    for name in names:
        _write(tmp_path / fake / f"{name.strip()}.py", "")
    _write(tmp_path / fake / "__init__.py", "")
    _write(tmp_path / fake / "engine.py", f"from {fake} import training_setup\n")  # downwards: fine
    config = tmp_path / "layers.toml"
    config.write_text("\n".join([
        "[tool.importlinter]", f"root_packages = {json.dumps([fake])}", "",
        "[[tool.importlinter.contracts]]",
        *(f"{k} = {_toml_value([fake] if k == 'containers' else v)}" for k, v in contract.items())]) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    ok, report = _lint(config, capsys)
    assert ok, report

    _write(tmp_path / fake / "data.py", f"from {fake} import engine\n")
    _write(tmp_path / fake / "newcomer.py", "")
    ok, report = _lint(config, capsys)
    flat = " ".join(report.split())
    assert not ok and f"{fake}.data -> {fake}.engine" in flat and "newcomer" in flat, report


def _cycles(*packages: str) -> list[tuple[str, str]]:
    """Pairs of modules that import each other, directly or through others (grimp's graph)."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    ours = {m for m in graph.modules if m.split(".")[0] in packages}
    found = set()
    for a in ours:
        for b in graph.find_modules_directly_imported_by(a) & ours:
            if b != a and not b.startswith(a + ".") and graph.chain_exists(importer=b, imported=a):
                found.add(tuple(sorted((a, b))))
    return sorted(found)


def test_no_import_cycles():
    """Not in the trainer, not in the plugin (imports inside functions count too)."""
    assert not _cycles("trainer"), _cycles("trainer")
    assert not _cycles("napari_gleason"), _cycles("napari_gleason")


def test_no_gui_module_named_in_a_string_outside_qt():
    """The Qt contract also holds for imports by name (importlib, warm-up lists): no plugin module
    outside _qt/ names Qt or napari's Qt or drawing side; no trainer module names those or napari."""
    import ast
    import re

    gui = r"qtpy|napari\._?qt|napari\._vispy|vispy|PyQt[56]|PySide[26]|magicgui|superqt"
    rules = {"napari_gleason": re.compile(rf"^({gui})(\.|$)"),
             "trainer": re.compile(rf"^({gui}|napari)(\.|$)")}  # "napari_gleason" is the store's metadata key
    found = []
    for package, pattern in rules.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "_qt" in path.relative_to(ROOT / package).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.match(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)
    assert rules["napari_gleason"].match("napari._vispy.layers.labels") and not rules["napari_gleason"].match(
        "napari.layers.labels")


def test_no_issue_numbers_in_user_facing_strings():
    """Messages, help texts and labels say what is wrong or what to do, not which issue asked."""
    import ast
    import re

    pattern = re.compile(r"\bissues? ?#?\d+|(?<![\w&])#\d+\b", re.IGNORECASE)
    found = []
    for package in ("trainer", "napari_gleason"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and node.body and isinstance(node.body[0], ast.Expr)
                          and isinstance(node.body[0].value, ast.Constant)}
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                        and pattern.search(node.value)):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)
