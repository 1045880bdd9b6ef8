"""How the bad-input catalogue (test_bad_input_catalogue.py) breaks things, one small function each.

Dataset breakers take a dataset folder and break one file in it; row makers take a :class:`Ctx` (the
row's temporary folder, fixtures on demand, a viewer) and return what the row's entry point is given:
an argv for the CLI, a call for a plugin function, a path for the reader, an action for a widget.
Everything is built on the tiny fakes (tests/fakes.py, tests/napari_gleason/helpers_plugin.py) and the
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
from tests.fakes import make_fake_gleason
from tests.full_disk import DEV_FULL, fill_disk
from tests.napari_gleason.helpers_plugin import A, B, blocks, make_two_expert_dataset, write_generic
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


def resize_every_mask(root: Path) -> None:
    """Every expert's mask of ``CORE`` (experts 1, 3, 4) 10×10: nothing of the core can be shown."""
    for expert in ("1", "3", "4"):
        Image.fromarray(np.ones((10, 10), np.uint8)).save(mask_of(root, expert))


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
    """The disk fills as torch.save writes the run's first checkpoint (the kernel's ENOSPC, see
    tests/full_disk.py): torch raises its own RuntimeError around it."""
    fill_disk(ctx.monkeypatch, match=_a_checkpoint)
    return train_on()(ctx)


def full_disk_at_next_checkpoint(ctx: Ctx) -> list[str]:
    """A finished one-iteration run in ``run/``, resumed to two iterations as the disk fills: the
    checkpoints it holds must stay byte-identical."""
    assert main(train_on()(ctx)) == 0
    fill_disk(ctx.monkeypatch, match=_a_checkpoint)
    return ["train", "--resume", str(ctx.tmp / "run"), "--iters", "2"]


def _a_checkpoint(tmp: Path) -> bool:
    return tmp.name.startswith((".last.pt.", ".best.pt."))


def predict_on_full_disk(ctx: Ctx) -> list[str]:
    """``predict --image`` as the disk fills (every file the prediction writes)."""
    argv = predict_cli()(ctx)
    fill_disk(ctx.monkeypatch)
    return argv


def _mkstemp_on_full_disk(suffix=None, prefix=None, dir=None, text=False):
    """``tempfile.mkstemp`` whose file is ``/dev/full``: every write to it meets the kernel's ENOSPC."""
    fd, name = _REAL_MKSTEMP(suffix, prefix, dir, text)
    os.close(fd)
    return os.open(DEV_FULL, os.O_WRONLY), name


_REAL_MKSTEMP = tempfile.mkstemp


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def _read_only(*args, **kwargs):
    raise PermissionError(13, "Read-only file system")


#: (module, name, replacement) that make the disk read-only / full while an action runs
READ_ONLY = (tempfile, "mkstemp", _read_only)
DISK_FULL = (os, "fsync", _no_space)
DISK_FULL_AT_WRITE = (tempfile, "mkstemp", _mkstemp_on_full_disk)


# --- checkpoints: tests/broken_checkpoints.py ------------------------------------------------------
from tests.broken_checkpoints import tiny_best  # noqa: E402  (the default checkpoint of the rows below)


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


def damage_chunk(relative: str, how: str) -> Callable[[Path], None]:
    """The first chunk file of the array ``relative`` (in the store) ``deleted`` or ``truncated`` (half of it kept)."""

    def damage(store: Path) -> None:
        chunk = sorted(p for p in (store / relative / "c").rglob("*") if p.is_file())[0]
        if how == "deleted":
            chunk.unlink()
        else:
            chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])

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


# --- QuPath GeoJSON experts (a generic dataset: expert ann as PNG, expert qupath as GeoJSON) ---------
def qupath_generic(ctx: Ctx) -> Path:
    from tests.fakes_qupath import make_mixed_dataset

    return make_mixed_dataset(ctx.tmp / "qupath data")


def broken_geojson(kind: str) -> Callable[[Path], None]:
    """Every core's ``masks/qupath/<core>.geojson`` made ``kind``: ``invalid JSON``, ``unknown class``
    (``Gleason 7``), ``outside the image`` (x up to 90 on a 32 px wide core), ``self-intersecting``
    (a bow tie crossing at x=2, y=2)."""
    from tests.fakes_qupath import collection, feature, poly, square

    docs = {
        "unknown class": collection(feature("Gleason 7", poly(square(0, 0, 4, 4)))),
        "outside the image": collection(feature("Gleason 3", poly(square(0, 0, 90, 4)))),
        "self-intersecting": collection(feature("Gleason 4", poly([(0, 0), (4, 4), (4, 0), (0, 4), (0, 0)]))),
    }

    def damage(root: Path) -> None:
        for path in sorted((root / "masks" / "qupath").glob("*.geojson")):
            path.write_text('{"type": "FeatureCollection", "features": [' if kind == "invalid JSON"
                            else json.dumps(docs[kind]))

    return damage


# --- python -m trainer export ------------------------------------------------------------------------
def export_cli(how: str) -> Callable:
    """``export`` given a file of no kind it converts, ``--out`` in an expert's folder (through '..'), or an
    output folder that cannot be written (read-only) or created (below a file)."""

    def make(ctx: Ctx) -> list[str]:
        if how == "expert folder":
            root = gleason(ctx)
            return ["export", "--data", str(root), "--out", str(root / "Maps_vote" / ".." / "Maps3_T")]
        (ctx.tmp / "notes.txt").write_text("not a mask")
        if how == "unknown kind":
            return ["export", str(ctx.tmp / "notes.txt"), "--out", str(ctx.tmp / "exported")]
        np.save(ctx.tmp / "core_roughness.npy", np.zeros((40, 48), np.float32))
        if how == "read-only":
            ctx.monkeypatch.setattr(*READ_ONLY)
            return ["export", str(ctx.tmp / "core_roughness.npy"), "--out", str(ctx.tmp / "exported")]
        return ["export", str(ctx.tmp / "core_roughness.npy"), "--out", str(ctx.tmp / "notes.txt" / "exported")]

    return make
