"""Sample data through napari's menu, and a screenshot that shows something."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from napari_gleason._layers import role_of
from napari_gleason.demo import build

from tests.paths import ROOT


def test_open_sample_gives_core_six_experts_and_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-gleason", "synthetic_core")
    assert [role_of(lyr) for lyr in viewer.layers] == ["image", *(f"expert:{e}" for e in "123456")]
    viewer.layers.clear()
    viewer.open_sample("napari-gleason", "synthetic_core_truth")
    assert role_of(viewer.layers[-1]) == "truth"


def _class_pixels(shot: np.ndarray) -> dict[str, int]:
    """Pixels where one channel clearly dominates: the G3 red, G4 green, G5 blue of the labels."""
    r, g, b = (shot[..., i].astype(int) for i in range(3))
    return {"red": int((r - np.maximum(g, b) > 60).sum()),
            "green": int((g - np.maximum(r, b) > 40).sum()),
            "blue": int((b - np.maximum(r, g) > 60).sum())}


def test_demo_window_screenshot_is_not_blank(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 800)
    widget = build(viewer, size=256, seed=3)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.shape[0] > 300 and shot.shape[1] > 600
    assert shot[..., :3].std() > 20
    assert len(np.unique(shot[..., :3].reshape(-1, 3), axis=0)) > 500
    assert all(n > 200 for n in _class_pixels(shot).values()), _class_pixels(shot)  # G3, G4, G5 visible
    assert widget.isVisible()
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    assert canvas[..., :3].std() > 20


def test_demo_ends_with_core_experts_prediction_and_error_maps_side_by_side(make_napari_viewer, tiny_confusion_run):
    from napari_gleason.demo import predict_core_on_screen, show_confusion, side_by_side

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 800)
    review = build(viewer, size=256, seed=3)
    predict_core_on_screen(viewer, tiny_confusion_run)
    shown = side_by_side(viewer)
    show_confusion(review)
    want = ["image", "prediction", "expert:1", "error:1", "expert:3", "error:3", "expert:4", "error:4"]
    assert [role_of(lyr) for lyr in shown] == want
    assert [role_of(lyr) for lyr in viewer.layers if lyr.visible] == want  # the grid shows these, in this order
    assert viewer.canvas.grid.enabled and viewer.canvas.grid.actual_shape(viewer.layers) == (4, 2)
    assert all(lyr.colorbar.visible for lyr in shown if role_of(lyr).startswith("error"))
    assert sorted(review.confusion.tables) == ["1", "3", "4"]
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert all(n > 100 for n in _class_pixels(shot).values()), _class_pixels(shot)


def test_demo_command_headless_writes_and_prints_a_screenshot(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["HF_HUB_OFFLINE"] = "1"
    shot = tmp_path / "demo.png"
    out = subprocess.run([sys.executable, "-m", "napari_gleason.demo", "--size", "256", "--screenshot", str(shot)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == str(shot)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[0] >= 600 and image[..., :3].std() > 20
    assert all(n > 200 for n in _class_pixels(image).values())
