"""How the bad-input catalogue (test_bad_input_catalogue.py) breaks things, one small function each.

Dataset breakers take a dataset folder and break one file in it; row makers take a :class:`Ctx` (the
row's temporary folder, fixtures on demand, a viewer) and return what the row's entry point is given:
an argv for the CLI, a call for a plugin function, a path for the reader, an action for a widget.
Everything is built on the tiny fakes (tests/fakes.py, tests/plugin/helpers_plugin.py) and the
session's ``tiny_run`` checkpoint, so that the whole catalogue runs in a couple of minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import make_fake_gleason
from helpers_plugin import A, B, blocks, make_two_expert_dataset, write_generic
from PIL import Image

from trainer.cli import main

PLUGIN_NAME = "napari-gleason"
TRAIN = ["--model", "pspnet", "--encoder", "resnet18", "--size", "32", "--iters", "1", "--device", "cpu",
         "--no-reweight", "--loss", "focal"]
CORE = "slide002_core001"  # a training core of the Gleason fake (experts 1, 3, 4); the first batch reads it
MASK = f"{CORE}_classimg_nonconvex.png"


@dataclass
class Ctx:
    """What a row's ``make`` may use: its folder, fixtures on demand, a viewer for GUI rows."""

    tmp: Path
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch
    _viewer: object = None

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    @property
    def viewer(self):
        if self._viewer is None:
            self._viewer = self.fixture("make_napari_viewer")()
        return self._viewer

    def wait(self, widget) -> None:
        self.fixture("wait_idle")(widget)

    @property
    def tiny_run(self) -> Path:
        return Path(self.fixture("tiny_run"))


# --- broken datasets (shared by the CLI, the reader and the train widget) ----------------------------
def gleason(ctx: Ctx) -> Path:
    return make_fake_gleason(ctx.tmp / "data set é").root


def image_of(root: Path, core: str = CORE) -> Path:
    return root / "Train Imgs" / f"{core}.jpg"


def mask_of(root: Path, expert: str = "1", core: str = CORE) -> Path:
    return root / f"Maps{expert}_T" / f"{core}_classimg_nonconvex.png"


def corrupt_image(root: Path) -> None:
    image_of(root).write_bytes(b"\xff\xd8 this is not a jpeg")


def truncate_image(root: Path) -> None:
    path = image_of(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def float_image(root: Path) -> None:
    image_of(root).unlink()
    Image.fromarray(np.zeros((48, 40), np.float32)).save(image_of(root).with_suffix(".tif"))


def resize_mask(root: Path) -> None:
    Image.fromarray(np.ones((10, 10), np.uint8)).save(mask_of(root))


def mask_value_7(root: Path) -> None:
    values = np.asarray(Image.open(mask_of(root)).convert("L")).copy()
    values[0, 0] = 7
    Image.fromarray(values).save(mask_of(root))


def rgb_mask_channels_differ(root: Path) -> None:
    rgb = np.asarray(Image.open(mask_of(root, "4")).convert("RGB")).copy()  # expert 4 draws grey-valued RGB
    rgb[0, 0] = (1, 3, 4)
    Image.fromarray(rgb).save(mask_of(root, "4"))


def empty_expert_folder(root: Path) -> None:
    for path in (root / "Maps1_T").iterdir():
        path.unlink()


def no_expert_folders(root: Path) -> None:
    for folder in root.glob("Maps*_T"):
        shutil.rmtree(folder)


def drop_training_experts(root: Path) -> None:
    for expert in ("3", "4"):
        shutil.rmtree(root / f"Maps{expert}_T")


def broken_classes_json(root: Path) -> None:
    (root / "classes.json").write_text("{not json")


def generic(ctx: Ctx) -> Path:
    return write_generic(ctx.tmp / "generic data", {"x": {"ann": A}, "y": {"ann": B}}, shape=A.shape)


def new_folder(name: str, kind: str) -> Callable[[Path], Path]:
    """``--data`` is ``name`` beside the dataset: ``absent``, ``empty``, or holding only a ``text`` file."""

    def data(root: Path) -> Path:
        path = root.parent / name
        if kind != "absent":
            path.mkdir()
        if kind == "text":
            (path / "readme.txt").write_text("no images here")
        return path

    return data


# --- CLI rows ----------------------------------------------------------------------------------
def train_on(*breaks: Callable[[Path], None], data: Callable[[Path], Path] = lambda root: root,
             args: tuple[str, ...] = (), layout: Callable[[Ctx], Path] = gleason) -> Callable:
    """``train --data data(root)`` on the Gleason fake (or ``layout``) after ``breaks`` broke it."""

    def make(ctx: Ctx) -> list[str]:
        root = layout(ctx)
        for b in breaks:
            b(root)
        return ["train", "--data", str(data(root)), *TRAIN, "--out", str(ctx.tmp / "run"),
                *(a.format(tmp=ctx.tmp) for a in args)]

    return make


def with_file(name: str, text: str, argv: Callable) -> Callable:
    """``argv`` after writing ``text`` to ``name`` in the test's folder (``{tmp}`` in argv: that folder)."""

    def make(ctx: Ctx) -> list[str]:
        (ctx.tmp / name).write_text(text)
        return argv(ctx)

    return make


def config(text: str) -> Callable:
    return with_file("cfg.yaml", text, lambda ctx: ["train", "--config", str(ctx.tmp / "cfg.yaml"),
                                                      "--out", str(ctx.tmp / "run")])


def split_file(text: str) -> Callable:
    return with_file("split.json", text, train_on(args=("--split-file", "{tmp}/split.json")))


def without_cuda(make: Callable) -> Callable:
    def checked(ctx: Ctx):
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        return make(ctx)

    return checked


def earlier_run(then: str) -> Callable:
    """A finished one-iteration run in ``run/``; then ``train`` into it again, or resume it diverging."""

    def make(ctx: Ctx) -> list[str]:
        again = train_on()(ctx)
        assert main(again) == 0
        if then == "train into it again":
            return again
        return ["train", "--resume", str(ctx.tmp / "run"), "--iters", "40", "--lr", "1e30"]

    return make


def synth_into_full_folder(ctx: Ctx) -> list[str]:
    (ctx.tmp / "full").mkdir()
    (ctx.tmp / "full" / "x.txt").write_text("x")
    return ["synth", "--out", str(ctx.tmp / "full"), "--cores", "2", "--size", "64"]


def corrupt_corrected_mask(ctx: Ctx) -> list[str]:
    (ctx.tmp / "fixed.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    argv = train_on()(ctx)
    return [*argv, "--corrected", str(image_of(ctx.tmp / "data set é")), str(ctx.tmp / "fixed.png")]


def full_disk_at_first_checkpoint(ctx: Ctx) -> list[str]:
    ctx.monkeypatch.setattr(os, "fsync", _no_space)
    return train_on()(ctx)


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def _read_only(*args, **kwargs):
    raise PermissionError(13, "Read-only file system")


#: (module, name, replacement) that make the disk read-only / full while an action runs
READ_ONLY = (tempfile, "mkstemp", _read_only)
DISK_FULL = (os, "fsync", _no_space)


# --- checkpoints (for CLI predict / train --init and the predict and train widgets) ------------------
def _from_tiny_run(ctx: Ctx, name: str, change: Callable[[dict], None]) -> Path:
    payload = torch.load(ctx.tiny_run / "best.pt", weights_only=True)
    change(payload)
    torch.save(payload, ctx.tmp / name)
    return ctx.tmp / name


def ckpt_other_architecture(ctx: Ctx) -> Path:  # PSPNet weights said to be a U-Net's
    return _from_tiny_run(ctx, "other architecture.pt", lambda p: p["model_config"].update(name="unet"))


def ckpt_damaged_confusion(ctx: Ctx) -> Path:
    """A confusion-model checkpoint whose confusion head has the wrong shape (issue 10)."""
    from trainer.annotators import ConfusionCNN

    net = ConfusionCNN(3, 4, stride=8)
    state = net.state_dict()
    state["head.weight"] = state["head.weight"][:1]

    def change(p: dict) -> None:
        p.update(weighting=None, weighting_config=None, confusion=state, confusion_config=dict(net.config))

    return _from_tiny_run(ctx, "bad confusion.pt", change)


def ckpt_six_classes(ctx: Ctx) -> Path:  # its config says 6 classes, its weights hold 4
    return _from_tiny_run(ctx, "six.pt", lambda p: p["model_config"].update(num_classes=6))


def ckpt_three_classes(ctx: Ctx) -> Path:
    """A sound 3-class model: it loads, but cannot label a Gleason core (4 classes)."""
    from trainer.data.classes import ClassScheme
    from trainer.models import create_model

    model = create_model("pspnet", 3, encoder="resnet18")
    scheme = ClassScheme(("benign", "low", "high"), {0: 0, 1: 1, 2: 2}).to_dict()
    return _from_tiny_run(ctx, "three classes.pt", lambda p: p.update(
        model=model.state_dict(), model_config=dict(model.config), scheme=scheme))


def ckpt_newer_format(ctx: Ctx) -> Path:
    return _from_tiny_run(ctx, "newer.pt", lambda p: p.update(version=99))


def ckpt_truncated(ctx: Ctx) -> Path:
    data = (ctx.tiny_run / "best.pt").read_bytes()
    (ctx.tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return ctx.tmp / "cut.pt"


def ckpt_garbage(ctx: Ctx) -> Path:
    (ctx.tmp / "junk.pt").write_bytes(b"x" * 300)
    return ctx.tmp / "junk.pt"


def ckpt_foreign(ctx: Ctx) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}}, ctx.tmp / "foreign.pt")
    return ctx.tmp / "foreign.pt"


class _RunsCode:
    """Unpickled, this would create ``pwned`` in the test's folder (the nothing-written check sees it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def ckpt_pickle_payload(ctx: Ctx) -> Path:
    torch.save({"format": "napari-gleason/checkpoint", "model_config": {}, "model": _RunsCode(ctx.tmp / "pwned")},
               ctx.tmp / "evil.pt")
    return ctx.tmp / "evil.pt"


def ckpt_missing(ctx: Ctx) -> Path:
    return ctx.tmp / "missing.pt"


def ckpt_empty_run_folder(ctx: Ctx) -> Path:
    (ctx.tmp / "empty run").mkdir()
    return ctx.tmp / "empty run"


def tiny_best(ctx: Ctx) -> Path:
    return ctx.tiny_run / "best.pt"


def predict_cli(checkpoint: Callable[[Ctx], Path] = tiny_best, image: Callable[[Path], None] | None = None,
                earlier_output: bool = False) -> Callable:
    def make(ctx: Ctx) -> list[str]:
        ckpt = checkpoint(ctx)
        path = ctx.tmp / "core.png"
        Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(path)
        if image:
            image(path)
        if earlier_output:
            (ctx.tmp / "predicted").mkdir()
            (ctx.tmp / "predicted" / "core_classimg_nonconvex.png").write_bytes(b"an earlier prediction")
        return ["predict", "--checkpoint", str(ckpt), "--image", str(path), "--out", str(ctx.tmp / "predicted")]

    return make


def init_from(checkpoint: Callable[[Ctx], Path], model: str = "pspnet") -> Callable:
    def make(ctx: Ctx) -> list[str]:
        argv = train_on(args=("--init", str(checkpoint(ctx))))(ctx)
        argv[argv.index("--model") + 1] = model
        return argv

    return make


# --- plugin rows (no viewer) -------------------------------------------------------------------
def settings(**change) -> Callable:
    """The train widget's form, Qt-free: values the widget's own controls cannot even offer."""

    def make(ctx: Ctx):
        from napari_gleason._train_settings import TrainSettings

        (ctx.tmp / "data").mkdir()
        form = {"data": str(ctx.tmp / "data"), "out": str(ctx.tmp / "run"), **change}
        return TrainSettings(**form).to_run_config

    return make


def export_into(target: str) -> Callable:
    def make(ctx: Ctx):
        from napari_gleason._export import export_mask
        from trainer.data.classes import GLEASON_SCHEME

        root = make_two_expert_dataset(ctx.tmp / "gleason data")
        return lambda: export_mask(blocks(A, 4), "c1", GLEASON_SCHEME, root / target, dataset_root=root,
                                   ask_overwrite=lambda p: True)

    return make


def export_core_named(name: str) -> Callable:
    """Export c1's vote under a core name read from elsewhere (a shared review store), into the default folder."""

    def make(ctx: Ctx):
        from napari_gleason._export import export_mask
        from trainer.data.classes import GLEASON_SCHEME

        root = make_two_expert_dataset(ctx.tmp / "gleason data")
        return lambda: export_mask(blocks(A, 4), name, GLEASON_SCHEME, root / "Maps_consensus", dataset_root=root,
                                   ask_overwrite=lambda p: True)

    return make


def predict_into_expert_folder(ctx: Ctx) -> list[str]:
    """``predict --out`` an expert's folder of a Gleason dataset, reached through '..' (the image lies beside it)."""
    root = gleason(ctx)
    return ["predict", "--checkpoint", str(tiny_best(ctx)), "--image", str(image_of(root)),
            "--out", str(root / "Maps_predicted" / ".." / "Maps3_T")]


# --- reader rows ---------------------------------------------------------------------------------
def opens(*breaks: Callable[[Path], None], path: Callable[[Path], Path] = image_of,
          layout: Callable[[Ctx], Path] = gleason) -> Callable:
    """Open ``path(root)`` (the broken core's image by default) after ``breaks`` broke the dataset."""

    def make(ctx: Ctx) -> Path:
        root = layout(ctx)
        for b in breaks:
            b(root)
        return path(root)

    return make


def rename_all_masks(root: Path) -> None:
    for mask in root.glob("Maps*_T/*.png"):
        mask.rename(mask.with_name("zz_" + mask.name))


def review_store(damage: Callable[[Path], None], cores: tuple[str, ...] = ("c1",)) -> Callable:
    """``review.zarr`` caching ``cores`` of the two-expert dataset, then ``damage``d."""

    def make(ctx: Ctx) -> Path:
        from napari_gleason._core_sources import FolderSource
        from trainer.review_store import ReviewStore

        source = FolderSource.open(make_two_expert_dataset(ctx.tmp / "gleason data"))
        store = ReviewStore.create(ctx.tmp / "review.zarr", source.scheme)
        for name in cores:
            store.write_core(source.load(name))
        damage(store.path)
        return store.path

    return make


def newer_format(store: Path) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["napari_gleason"]["format_version"] = 99
    (store / "zarr.json").write_text(json.dumps(meta))


def garbage_json(relative: str) -> Callable[[Path], None]:
    return lambda store: (store / relative / "zarr.json").write_text("{garbage")


def garbage_chunks(relative: str) -> Callable[[Path], None]:
    def damage(store: Path) -> None:
        for path in (store / relative).rglob("*"):
            if path.is_file() and path.name != "zarr.json":
                path.write_bytes(b"garbage")

    return damage


def core_named(relative: str, name: str) -> Callable[[Path], None]:
    """A crafted store: the core in folder ``relative`` claims to be named ``name``."""

    def damage(store: Path) -> None:
        meta = json.loads((store / relative / "zarr.json").read_text())
        meta["attributes"]["napari_gleason"]["core"] = name
        (store / relative / "zarr.json").write_text(json.dumps(meta))

    return damage


def remove(relative: str) -> Callable[[Path], None]:
    return lambda store: shutil.rmtree(store / relative)


# --- widget rows -------------------------------------------------------------------------------
def _core_on_screen(ctx: Ctx) -> Path:
    root = make_two_expert_dataset(ctx.tmp / "gleason data")
    ctx.viewer.open(root / "Train Imgs" / "c1.png", plugin=PLUGIN_NAME)
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
            w._on_predict()
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
            if w._on_start():
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
