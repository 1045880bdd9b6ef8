"""The bad-input catalogue: every bad input named in issues 2–6 (and the ones found since), the message
it must give, and proof that nothing else happened.

``ROWS`` (tests/catalogue_rows.py) is the table. A row names the issue the input comes from, the
entry point that meets it, how the input is broken, and the needles its message must hold — the
file's name and the reason. Its
``make`` (tests/broken_inputs.py: datasets, CLI, plugin and reader rows; broken_checkpoints.py;
broken_widgets.py; broken_data.py) builds the broken input in the test's own temporary folder, on the
tiny fakes and the session's ``tiny_run`` checkpoint.

What "nothing else happened" means, per entry point:

- **CLI** (``python -m trainer …``, run in-process): exit code 2 (3 for a diverging loss) and exactly
  one line on stderr, ``error: …``, holding the needles; nothing under the test's folder written
  or changed (so the experts' files are byte-identical and no checkpoint is touched).
- **plugin** (a plugin function, no viewer): an ``InputError`` holding the needles; nothing written.
- **reader** (``viewer.open(path, plugin="napari-gleason")``) and **widget** (a widget's action, as
  its button would run it): exactly one error notification holding the needles (none when the row
  has no needles) and no warning; no layer added, removed or changed; nothing written; the viewer
  still takes a new layer. Widgets that train are back at rest (Start enabled, no worker).
- A row with ``opens_with`` is broken input that must *not* stop the opening: a core with one
  unreadable expert mask opens with its other experts. Its outcome is exactly one *warning* holding
  the needles (the bad file and the reason), no error, and exactly the layers ``opens_with`` names
  added (the image and the readable experts); nothing written.

A data error is found before the run folder is made (the engine reads the first batch first), so a
row leaves nothing behind; only rows whose run really started (a full disk at the first checkpoint,
a diverging loss) may add to that run's own log, ``config.json`` and ``events.jsonl``.

Inputs that look wrong but are valid (RGBA or grey images, a core with one expert, spaces and
non-ASCII in paths) are in ``WORKS``: they must train; a checkpoint without a weighting CNN (issue 4)
must predict, without weight layers (tests/napari_gleason/_qt/test_gui_predict.py, beside the layers it checks).
Clicks while a run is going (Start or Stop twice, closing the dock or the viewer) need a run and
are the last test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from tests.broken_inputs import PLUGIN_NAME, TRAIN, Ctx, gleason, image_of, mask_of
from tests.catalogue_rows import CLI, PLUGIN, READER, ROWS, WIDGET, WORKS, Row
from PIL import Image

from trainer.cli import main
from trainer.errors import InputError


# --- running the rows ------------------------------------------------------------------------------
def params(*entries: str) -> list:
    marks = [pytest.mark.gui] if set(entries) & {READER, WIDGET} else []
    return [pytest.param(r, id=r.id, marks=marks) for r in ROWS if r.entry in entries]


@pytest.fixture
def ctx(tmp_path, request, monkeypatch) -> Ctx:
    return Ctx(tmp_path, request, monkeypatch)


def tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (files) or "folder", for everything under ``root``."""
    return {str(p.relative_to(root)): "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


RUN_LOG = {"config.json", "events.jsonl"}


def assert_nothing_written(before: dict[str, str], after: dict[str, str], run_log_allowed: bool = False) -> None:
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    if run_log_allowed:
        log = {p for p in changed if Path(p).name in RUN_LOG}
        changed = changed - log - {str(Path(p).parent) for p in log}
    assert not changed, f"written or changed: {sorted(changed)}"


def check_cli(row: Row, argv: list[str], ctx: Ctx, capsys) -> None:
    """Exit code, one ``error:`` line naming the file and the reason, nothing written."""
    capsys.readouterr()
    before = tree(ctx.tmp)
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == row.code, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in row.needles:
        assert needle in err[0], (needle, err[0])
    assert_nothing_written(before, tree(ctx.tmp), run_log_allowed=row.run_started)


@pytest.mark.parametrize("row", params(CLI))
def test_cli(row: Row, ctx: Ctx, capsys):
    check_cli(row, row.make(ctx), ctx, capsys)


@pytest.mark.parametrize("row", params(CLI))
def test_cli_with_confusion(row: Row, ctx: Ctx, capsys):
    """Every bad training input of the catalogue gives the same answer with --confusion (issue 10)."""
    argv = row.make(ctx)
    if argv[0] != "train" or "--resume" in argv or "--confusion" in argv:
        pytest.skip("not a new training run")
    check_cli(row, [a for a in argv if a != "--no-reweight"] + ["--confusion", "--weight-stride", "8"], ctx, capsys)


@pytest.mark.parametrize("row", params(PLUGIN))
def test_plugin(row: Row, ctx: Ctx):
    call = row.make(ctx)
    before = tree(ctx.tmp)
    with pytest.raises(InputError) as info:
        call()
    for needle in row.needles:
        assert needle in str(info.value), (needle, str(info.value))
    assert_nothing_written(before, tree(ctx.tmp))


def layer_state(viewer) -> list[tuple]:
    from napari_gleason._layers import level0

    return [(lyr.name, type(lyr).__name__, hashlib.sha256(np.ascontiguousarray(level0(lyr))).hexdigest())
            for lyr in viewer.layers]


@pytest.mark.parametrize("row", params(READER, WIDGET))
def test_gui(row: Row, ctx: Ctx, notes):
    from napari.utils.notifications import NotificationSeverity

    made = row.make(ctx)
    viewer = ctx.viewer
    act = (lambda: viewer.open(made, plugin=PLUGIN_NAME)) if row.entry == READER else made
    layers, before = layer_state(viewer), tree(ctx.tmp)
    notes.clear()
    act()  # must not raise: napari keeps running
    shown = [n for n in notes if n.severity >= NotificationSeverity.WARNING]
    severity = NotificationSeverity.WARNING if row.opens_with is not None else NotificationSeverity.ERROR
    assert [n.severity for n in shown] == [severity] * bool(row.needles), [n.message for n in shown]
    for needle in row.needles:
        assert needle in shown[0].message, (needle, shown[0].message)
    if row.opens_with is not None:  # opened without the bad mask: the image and the other experts
        from napari_gleason._layers import role_of

        assert [role_of(lyr) or lyr.name for lyr in viewer.layers] == ["image", *row.opens_with[1:]]
        assert viewer.layers[0].name == row.opens_with[0]
    else:
        assert layer_state(viewer) == layers, "a layer was added, removed or changed"
    assert_nothing_written(before, tree(ctx.tmp))
    viewer.layers.remove(viewer.add_image(np.zeros((4, 4))))  # the viewer still works


@pytest.mark.parametrize("variant", WORKS)
def test_unusual_but_valid_inputs_train(variant, ctx: Ctx, capsys):
    root = gleason(ctx)
    image = image_of(root)
    if variant == "rgba image":
        rgba = np.asarray(Image.open(image).convert("RGBA")).copy()
        image.unlink()
        Image.fromarray(rgba).save(image.with_suffix(".png"))
    elif variant == "grey image":
        grey = Image.open(image).convert("L")
        image.unlink()
        grey.save(image.with_suffix(".png"))
    elif variant == "core with one expert":
        for expert in ("3", "4"):
            mask_of(root, expert).unlink()
    out = ctx.tmp / "rün dir" / "out"
    experts = {p: h for p, h in tree(root).items() if p.startswith("Maps")}
    assert main(["train", "--data", str(root), *TRAIN, "--out", str(out)]) == 0
    assert (out / "last.pt").is_file()
    assert {p: h for p, h in tree(root).items() if p.startswith("Maps")} == experts


# --- clicks while a run is going (issue 4) ----------------------------------------------------------
@pytest.mark.gui
@pytest.mark.parametrize("click", ["Stop twice", "close the dock", "close the viewer"])
def test_clicks_during_training_stop_it_cleanly(click, train_widget, synthetic_data, tmp_path, qtbot, notes):
    """The run stops within an iteration, keeps last.pt, nothing hangs, no error is shown."""
    from napari.utils.notifications import NotificationSeverity

    from trainer.checkpoint import load_checkpoint

    viewer, w = train_widget(synthetic_data, tmp_path / "run", iters=500)
    runner = w.runner
    assert w.start_training()
    assert not w.start_training(), "Start while training starts nothing"
    qtbot.waitUntil(lambda: runner.status.iteration >= 1, timeout=120_000)
    if click == "Stop twice":
        assert (w._on_stop(), w._on_stop()) == (True, False)
    elif click == "close the dock":
        viewer.window.remove_dock_widget(w)
    else:
        viewer.close()
    qtbot.waitUntil(lambda: not runner.running, timeout=60_000)
    assert runner.finished is not None and runner.finished.stopped and runner.finished.iteration < 500
    assert load_checkpoint(tmp_path / "run" / "last.pt")["iteration"] == runner.finished.iteration
    assert not [n.message for n in notes if n.severity >= NotificationSeverity.WARNING]
