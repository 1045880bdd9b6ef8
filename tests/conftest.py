"""Shared fixtures: tiny data and runs for every test; the napari ones for tests/napari_gleason/_qt and
the catalogue.

GUI fixtures build on napari's pytest plugin (``make_napari_viewer``, headless under pytest-xvfb)
and pytest-qt's ``qtbot``; they are only instantiated by tests that ask for them.

Layout: the folders mirror the packages (tests/trainer/data/ for trainer/data/, tests/napari_gleason/_qt/
for the widgets); project-wide tests and the shared helpers (fakes*.py, tiny_runs.py, broken_*.py, ...) sit
here. Every folder is a package (``__init__.py``), so a test is ``tests.trainer.data.test_x`` and never
shadows the real ``trainer``; helpers are imported as ``tests.fakes``, paths come from ``tests.paths``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm/SMP must fail at once, not after 40 s
# the data check's cache (trainer.data.check) goes to a folder of this session, not ~/.cache
os.environ.setdefault("NAPARI_GLEASON_CACHE", __import__("tempfile").mkdtemp(prefix="napari-gleason-test-cache-"))

import pytest


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A small synthetic Gleason-layout dataset (known truth, six biased experts), 96² cores."""
    from trainer.synthetic import write_dataset

    out = tmp_path_factory.mktemp("synthetic") / "gleason synthetic"
    write_dataset(out, cores=10, size=96, seed=7)
    return out


def _tiny_run(data, out, loss: dict | None = None) -> str:
    """Train 2 iterations of PSPNet-r18 at 64² on ``data`` into ``out`` with the ``loss`` options."""
    from trainer.config import RunConfig
    from trainer.engine import train

    # stride 8: the authors' stride-4 weighting trunk would cost ~2 s an iteration here, and these
    # runs are fixtures for prediction, not tests of that architecture (tests/trainer/test_reweighting.py)
    cfg = RunConfig.from_dict({"loss": {"weight_stride": 8, **(loss or {})}})
    cfg.data.path = str(data)
    cfg.data.size = 64
    cfg.model.name, cfg.model.encoder = "pspnet", "resnet18"
    cfg.train.iters, cfg.train.val_every, cfg.train.checkpoint_every = 2, 2, 2
    cfg.train.device = "cpu"
    cfg.train.out = str(out)
    for _ in train(cfg):
        pass
    return cfg.train.out


@pytest.fixture(scope="session")
def tiny_run(synthetic_data, tmp_path_factory):
    """A 2-iteration PSPNet-r18 run at 64² with GAFL + re-weighting: its folder holds last.pt/best.pt."""
    return _tiny_run(synthetic_data, tmp_path_factory.mktemp("runs") / "tiny run")


@pytest.fixture(scope="session")
def tiny_confusion_run(synthetic_data, tmp_path_factory):
    """As ``tiny_run`` with the confusion model (``--confusion``, stride-8 trunk) in place of the
    weighting CNN, λ2 > 0 from iteration 2 on."""
    return _tiny_run(synthetic_data, tmp_path_factory.mktemp("runs") / "tiny confusion run",
                     {"confusion": True, "weight_stride": 8, "lambda_step": 1})


@pytest.fixture
def two_expert_dataset(tmp_path):
    """Gleason folder: core ``c1`` (experts 1, 2) and ``c2`` (experts 1, 3); see
    tests/napari_gleason/helpers_plugin.py."""
    from tests.napari_gleason.helpers_plugin import make_two_expert_dataset

    return make_two_expert_dataset(tmp_path / "gleason data")


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    """Recent checkpoints go to a temporary folder, never to the user's ~/.config."""
    monkeypatch.setenv("NAPARI_GLEASON_HOME", str(tmp_path / "napari-gleason settings"))


@pytest.fixture(autouse=True, scope="session")
def _torch_stack_before_gl():
    """Import torchvision (and with it triton, if installed) before the first viewer maps Mesa's LLVM.

    The widgets guard against that clash themselves (napari_gleason._llvm_guard, tested in a
    subprocess); this only makes the session fixtures that train in the main thread (tiny_run)
    independent of which test happens to run first — a GUI test or a catalogue row.
    """
    import torchvision  # noqa: F401


# --- napari -------------------------------------------------------------------------------------
@pytest.fixture
def notes():
    """Every napari notification shown during the test (napari ``Notification`` objects)."""
    from napari.utils.notifications import notification_manager

    got = []

    def keep(notification):
        got.append(notification)

    notification_manager.notification_ready.connect(keep)
    yield got
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture
def wait_idle(qtbot):
    """Wait until a widget's workers are done (their results land in Qt slots)."""

    def wait(widget, timeout: int = 60_000):
        qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)

    return wait


@pytest.fixture
def train_widget(make_napari_viewer):
    """A viewer with the train widget docked, its form filled for a tiny CPU run."""
    from napari_gleason._qt import TrainWidget

    def make(data, out, iters=3, init=None, model="pspnet", viewer=None):
        viewer = viewer or make_napari_viewer()
        w = TrainWidget(viewer)
        viewer.window.add_dock_widget(w, name="train")
        w.data.setText(str(data))
        w.out.setText(str(out))
        w.model.setCurrentText(model)
        if w.encoder.isEnabled():
            w.encoder.setCurrentText("resnet18")
        w.iters.setValue(iters)
        w.batch_size.setValue(2)
        w.size.setValue(64)
        w.device.setCurrentText("cpu")
        w.init.setText(str(init or ""))
        return viewer, w

    return make


@pytest.fixture
def run_to_end(qtbot):
    """Do ``action`` (e.g. press Start) and wait for the run it starts or stops to end."""

    def run(widget, action, timeout: int = 120_000):
        with qtbot.waitSignal(widget.runner.signals.finished, timeout=timeout) as blocker:
            assert action() is not False, "nothing was started or stopped"
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=5_000)
        return blocker.args[0]

    return run


@pytest.fixture
def predict_viewer(make_napari_viewer, synthetic_data, wait_idle):
    """Core ``slide001_core004`` (experts 1, 2, 4) shown with a scale and a translate, so outputs
    must be registered to it; the predict widget (and with ``review=True`` the review widget) docked.
    Returns (viewer, predict widget or None, review widget or None)."""
    from napari_gleason._core_sources import FolderSource
    from napari_gleason._layers import find_layer, show_core
    from napari_gleason._qt import PredictWidget, ReviewWidget

    def make(review=False, predict=True):
        viewer = make_napari_viewer()
        core = FolderSource.open(synthetic_data).load("slide001_core004")
        core.scale = (0.5, 2.0)
        show_core(viewer, core)
        find_layer(viewer, "image").translate = (3.0, -4.0)
        rev = w = None
        if review:
            rev = ReviewWidget(viewer)
            viewer.window.add_dock_widget(rev, name="review")
            wait_idle(rev)
        if predict:
            w = PredictWidget(viewer)
            viewer.window.add_dock_widget(w, name="predict")
            w.device.setCurrentText("cpu")
        return viewer, w, rev

    return make


@pytest.fixture
def review(make_napari_viewer, wait_idle):
    """``make(core, scale=(1, 1))``: a viewer showing ``core`` with the review widget docked and idle."""
    from napari_gleason._layers import show_core
    from napari_gleason._qt import ReviewWidget

    viewer = make_napari_viewer()

    def make(core, scale=(1.0, 1.0)):
        core.scale = scale
        show_core(viewer, core)
        widget = ReviewWidget(viewer)
        viewer.window.add_dock_widget(widget)
        wait_idle(widget)
        return viewer, widget

    return make
