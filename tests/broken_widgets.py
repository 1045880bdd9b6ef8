"""Widget rows of the bad-input catalogue (test_bad_input_catalogue.py): each takes the row's
:class:`broken_inputs.Ctx` (with its viewer) and returns the action a user would take on a widget —
export, predict, train, fine-tune, browse — given a broken dataset, file or checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.broken_checkpoints import tiny_best
from tests.broken_inputs import Ctx, _no_space, damage_chunk, garbage_json, gleason, newer_format, review_store
from tests.napari_gleason.helpers_plugin import A, B, blocks, make_two_expert_dataset, open_core, write_generic
from PIL import Image


def _core_on_screen(ctx: Ctx) -> Path:
    root = make_two_expert_dataset(ctx.tmp / "gleason data")
    open_core(ctx.viewer, root / "Train Imgs" / "c1.png")
    return root


def _export_panel(ctx: Ctx):
    """c1 of the two-expert dataset with its vote, and the review widget's export panel for it. A
    question whether to overwrite fails the row: bad input is refused before anyone is asked."""
    from napari_gleason._layers import current_core, find_layer, set_layer
    from napari_gleason._qt.export import ExportPanel

    root = _core_on_screen(ctx)
    info = current_core(ctx.viewer)
    set_layer(ctx.viewer, "consensus:vote", blocks(B, 4), core="c1", scheme=info.scheme,
              like=find_layer(ctx.viewer, "image"))
    panel = ExportPanel(ctx.viewer)
    ctx.viewer.window.add_dock_widget(panel)
    panel.refresh(current_core(ctx.viewer))
    panel.ask_overwrite = lambda p: pytest.fail(f"asked whether to overwrite {p}")
    return root, panel


def export_file(target: Callable[[Path], Path] = lambda root: root / "Maps_consensus",
                patch: tuple | None = None, paint: int | None = None) -> Callable:
    """Review ▸ Export ▸ export mask file (the vote, or a painted 'corrected' copy) into ``target(root)``;
    ``patch`` = (module, name, replacement) breaks the disk while it runs."""

    def make(ctx: Ctx):
        from napari_gleason._layers import find_layer

        root, panel = _export_panel(ctx)
        layer, folder = "consensus:vote", target(root)
        if paint is not None:
            panel._on_make_editable("consensus:vote")
            find_layer(ctx.viewer, "corrected").data[1, 1] = paint
            layer = "corrected"

        def act():
            with ctx.monkeypatch.context() as m:
                if patch:
                    m.setattr(*patch)
                assert panel._on_export_file(layer, str(folder)) is None

        return act

    return make


def a_file(root: Path) -> Path:
    (root / "notes.txt").write_text("not a folder")
    return root / "notes.txt"


def under_a_file(root: Path) -> Path:
    return a_file(root) / "Maps_consensus"


def to_store(how: str) -> Callable:
    """Review ▸ Export ▸ cache core in store (a new store, on a full disk) or save layer to store (a
    store of a newer format, or a damaged one)."""

    def make(ctx: Ctx):
        import trainer.review_store.store as store_module
        from trainer.review_store import ReviewStore

        _, panel = _export_panel(ctx)
        store = ctx.tmp / "review.zarr"
        if how == "full disk":
            ctx.monkeypatch.setattr(store_module, "_write_levels", _no_space)  # the worker writes meanwhile
        elif how == "newer format":
            newer_format(ReviewStore.create(store, panel.info.scheme).path)
        else:
            store.mkdir()
            (store / "zarr.json").write_text("{garbage")

        def act():
            if how == "full disk":
                panel._on_cache_core(str(store))
            else:
                panel._on_save_to_store("consensus:vote", str(store))
            ctx.wait(panel)

        return act

    return make


def _offer_device(w, device: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if device not in [w.device.itemText(i) for i in range(w.device.count())]:
        w.device.addItem(device)  # as if typed in: the list offers only devices that exist
    w.device.setCurrentText(device)


def predict_widget(checkpoint: Callable[[Ctx], Path] | None = tiny_best, device: str = "cpu",
                   core: bool = True) -> Callable:
    """Predict ▸ Predict this core, with ``checkpoint`` chosen (None: none chosen)."""

    def make(ctx: Ctx):
        from napari_gleason._qt import PredictWidget

        if core:
            _core_on_screen(ctx)
        w = PredictWidget(ctx.viewer)
        ctx.viewer.window.add_dock_widget(w, name="predict")
        _offer_device(w, device)
        if checkpoint is None:
            w.checkpoint.setCurrentText("")
        else:
            w.offer_checkpoint(checkpoint(ctx))

        def act():
            w.predict()
            ctx.wait(w)
            assert w._predict.isEnabled()

        return act

    return make


def broken(*breaks: Callable[[Path], None]) -> Callable[[Ctx], Path]:
    def data(ctx: Ctx) -> Path:
        root = gleason(ctx)
        for b in breaks:
            b(root)
        return root

    return data


def beside(name: str, kind: str | None = None) -> Callable[[Ctx], Path]:
    """A path in the test's folder: absent, a folder with a text file, a run folder, or a file."""

    def path(ctx: Ctx) -> Path:
        p = ctx.tmp / name
        if kind == "folder":
            p.mkdir()
            (p / "readme.txt").write_text("no images here")
        elif kind == "run":
            p.mkdir()
            (p / "last.pt").write_bytes(b"a day of training")
        elif kind == "file":
            p.write_text("not a folder")
        return p

    return path


def train_start(data: Callable[[Ctx], Path] | None = None, init: Callable[[Ctx], Path] | None = None,
                model: str = "pspnet", device: str = "cpu", out: Callable[[Ctx], Path] | None = None) -> Callable:
    """Train ▸ Start, the form filled for a one-iteration CPU run (on the Gleason fake, into run/); the
    widget must come back to rest."""

    def make(ctx: Ctx):
        _, w = ctx.fixture("train_widget")((data or gleason)(ctx), (out or beside("run"))(ctx), iters=1, model=model,
                                           init=init(ctx) if init else None, viewer=ctx.viewer)
        _offer_device(w, device)

        def act():
            if w.start_training():
                ctx.fixture("qtbot").waitUntil(lambda: not w.runner.running, timeout=120_000)
            assert w.status.resting and w._start.isEnabled() and not w._stop.isEnabled()

        return act

    return make


def stop_before_start(ctx: Ctx):
    _, w = ctx.fixture("train_widget")(gleason(ctx), ctx.tmp / "run", viewer=ctx.viewer)

    def act():
        assert w._on_stop() is False
        assert w.runner.worker is None and w.status.resting

    return act


def finetune(paint: int = 5, checkpoint: bool = True, layer: bool = True) -> Callable:
    """Train ▸ Fine-tune on the corrected core, its 'corrected' layer (all G3) painted ``paint`` at a pixel."""

    def make(ctx: Ctx):
        from napari_gleason._layers import find_layer, level0, set_layer
        from trainer.data.classes import GLEASON_SCHEME

        root = _core_on_screen(ctx)
        ckpt = ctx.tiny_run / "best.pt" if checkpoint else None
        _, w = ctx.fixture("train_widget")(root, ctx.tmp / "run", init=ckpt, viewer=ctx.viewer)
        if layer:
            image = find_layer(ctx.viewer, "image")
            corrected = np.full(level0(image).shape[:2], 1, np.uint8)  # class G3 everywhere
            set_layer(ctx.viewer, "corrected", corrected, core="c1", scheme=GLEASON_SCHEME, like=image)
            find_layer(ctx.viewer, "corrected").data[1, 1] = paint

        def act():
            assert w.finetune._on_finetune() is False
            assert not w.runner.running

        return act

    return make


def browser(action: str) -> Callable:
    """Dataset browser on a generic dataset whose core ``b`` has a 3×3 mask from bob (``a`` is on screen),
    then: load ``b``, open a plain folder, or open a review store with a damaged core."""

    def make(ctx: Ctx):
        from napari_gleason._qt import BrowserWidget

        root = write_generic(ctx.tmp / "generic data", {"a": {"ann": A}, "b": {"ann": B, "bob": A}},
                             shape=A.shape)
        Image.fromarray(np.full((3, 3), 3, np.uint8)).save(root / "masks" / "bob" / "b.png")
        w = BrowserWidget(ctx.viewer)
        ctx.viewer.window.add_dock_widget(w)
        assert w.open(root)
        ctx.wait(w)
        plain = beside("plain", "folder")(ctx)

        store = review_store(garbage_json("c2/labels"), cores=("c1", "c2"))(ctx)

        def act():
            if action == "load b":
                w.load("b")
            else:
                assert w.open(plain if action == "open plain" else store) is False
            ctx.wait(w)

        return act

    return make


def browser_damaged_core(how: str) -> Callable:
    """Dataset browser on a review store of c1 and c2 (c1 on screen) whose c2 has a chunk of expert 1's
    labels ``how`` (``deleted``, ``truncated``); then: load c2. c1 stays on screen and highlighted."""

    def make(ctx: Ctx):
        from napari_gleason._qt import BrowserWidget

        store = review_store(damage_chunk("c2/labels/expert_1/0", how), cores=("c1", "c2"))(ctx)
        w = BrowserWidget(ctx.viewer)
        ctx.viewer.window.add_dock_widget(w)
        assert w.open(store)
        ctx.wait(w)
        assert w.current == "c1"

        def act():
            w.load("c2")
            ctx.wait(w)
            assert w.current == "c1" and w.table.selectedItems()[0].text() == "c1"

        return act

    return make
