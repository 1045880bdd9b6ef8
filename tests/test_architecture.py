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

ROOT = Path(__file__).resolve().parents[1]
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
    assert "2 kept, 0 broken" in report


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
