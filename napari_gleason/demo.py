"""``python -m napari_gleason.demo``: napari with the sample core, its experts, consensus,
disagreement and roughness layers and the review widget docked; then the model's half: the small
checkpoint shipped in ``sample_data/demo_model.pt`` (a confusion model, ``--confusion``) predicts the
core through the predict widget, and the window ends in napari's grid mode with the core, the
training experts' labels, the prediction and each expert's ``error:<expert>`` map side by side
(the review widget shows the experts' estimated confusion matrices).

With a display it opens the window and runs napari. Without one (no ``DISPLAY``) it starts a
virtual X server (``Xvfb``) itself, renders the same window, writes a screenshot of the whole
window and prints its path. ``--screenshot PATH`` also writes one with a display; ``--no-show``
exits after the screenshot instead of entering napari's event loop; ``--checkpoint`` predicts
with another checkpoint, ``--no-model`` skips the model's half.

``python -m napari_gleason.demo --make-model`` rebuilds the shipped checkpoint (see
:mod:`._demo_model` and sample_data/README.md). The virtual display is :mod:`._virtual_display`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import sample_data
from ._demo_model import DEMO_STOP_AT, make_demo_model
from ._virtual_display import start_virtual_display

DEFAULT_SHOT = Path("out") / "napari-gleason-demo.png"
#: The small checkpoint the demo predicts with (``sample_data/``, installed as ``napari_gleason.sample_data``).
DEMO_MODEL = sample_data.DEMO_MODEL
#: The training experts of the default split (the paper's 1, 3, 4): each is shown beside its error map.
GRID_EXPERTS = ("1", "3", "4")


def wait_until_idle(widget, timeout: float = 120.0) -> None:
    """Process Qt events until the widget's workers are done (they update layers in Qt slots)."""
    from ._qt.scripted import wait_until_idle as wait

    wait(widget, timeout)


def build(viewer, size: int, seed: int):
    """Show the sample core in ``viewer`` with the review widget docked; return the widget."""
    from ._layers import find_layer, show_core
    from ._qt import ReviewWidget, dock
    from ._sample_data import synthetic_core

    show_core(viewer, synthetic_core(seed=seed, size=size))
    widget = dock(viewer, ReviewWidget)
    wait_until_idle(widget)
    # A readable first picture: the majority vote filled, expert 3 as outlines on top of it, the
    # disagreement map showing through; the other experts are a click away in the widget.
    widget.experts.show_alone("3")
    expert = find_layer(viewer, "expert:3")
    expert.contour = max(2, size // 256)
    expert.opacity = 1.0
    widget.consensus.show_consensus("vote")
    find_layer(viewer, "consensus:vote").opacity = 0.45
    rough = find_layer(viewer, "roughness")
    if rough is not None:
        rough.visible = False
    viewer.layers.selection.active = expert
    viewer.reset_view()
    return widget


def predict_core_on_screen(viewer, checkpoint: str | Path):
    """Dock the predict widget, predict the core on screen with ``checkpoint`` on the CPU; return the widget."""
    from ._qt import PredictWidget, dock

    widget = dock(viewer, PredictWidget)
    widget.device.setCurrentText("cpu")
    widget.offer_checkpoint(checkpoint)
    if not widget.predict():
        raise SystemExit(f"the predict widget did not start with {checkpoint}")
    wait_until_idle(widget)
    if widget.output is None:
        raise SystemExit(f"predicting with {checkpoint} failed (see the message above)")
    return widget


def side_by_side(viewer, experts=GRID_EXPERTS) -> list:
    """napari's grid mode, two columns: the core beside the prediction, then each of ``experts``'
    labels beside its reliability map (``error:`` or ``weight:``). Every other layer is hidden (the
    review and predict widgets still hold them). Returns the gridded layers in reading order."""
    from ._layers import find_layer, layers_with_prefix

    kind = "error" if layers_with_prefix(viewer, "error") else "weight"
    pairs = [("image", "prediction"), *((f"expert:{e}", f"{kind}:{e}") for e in experts)]
    shown = [lyr for pair in pairs for role in pair if (lyr := find_layer(viewer, role)) is not None]
    for layer in viewer.layers:
        layer.visible = False
    for i, layer in enumerate(shown):  # the grid fills its cells in layer-list order
        viewer.layers.move(viewer.layers.index(layer), i)
        layer.visible = True
        layer.name_overlay.visible = True
        if layer is not shown[0]:  # alone in its cell, on the canvas: opaque and filled
            layer.opacity = 1.0
            if hasattr(layer, "contour"):
                layer.contour = 0
        if getattr(layer, "colorbar", None) is not None and layer.colorbar.visible:
            layer.colorbar.size = (10, 70)  # a grid cell is small: keep the core in view
            layer.colorbar.font_size = 8
    viewer.canvas.grid.shape = (-(-len(shown) // 2), 2)
    viewer.canvas.grid.spacing = 6
    viewer.canvas.grid.enabled = True
    viewer.reset_view()
    return shown


def show_confusion(review) -> None:
    """Scroll the review widget to its confusion tables (they sit below the agreement table)."""
    from ._qt.scripted import show_confusion as show

    show(review)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_gleason.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--screenshot", type=Path,
                        help=f"write a PNG of the whole window (headless default: {DEFAULT_SHOT})")
    parser.add_argument("--no-show", action="store_true", help="exit after rendering instead of running napari")
    parser.add_argument("--size", type=int, default=1024, help="sample core size in pixels (default 1024)")
    parser.add_argument("--seed", type=int, default=3, help="sample core seed (default 3)")
    parser.add_argument("--checkpoint", type=Path, default=DEMO_MODEL,
                        help="checkpoint (or run folder) to predict the core with (default: the shipped "
                             "sample_data/demo_model.pt, a confusion model)")
    parser.add_argument("--no-model", action="store_true", help="the review half only: no prediction")
    parser.add_argument("--make-model", action="store_true",
                        help=f"rebuild {DEMO_MODEL.name} ({DEMO_STOP_AT} iterations of CPU training) and exit")
    args = parser.parse_args(argv)
    if args.make_model:
        print(make_demo_model(args.checkpoint), flush=True)
        return 0

    model = None if args.no_model else Path(args.checkpoint)
    if model is not None and not model.exists():
        if model != DEMO_MODEL:
            raise SystemExit(f"no checkpoint at {model}")
        # removed from the checkout or the installation: show the review half and say how to get the rest
        print(f"no demo model at {model} (--make-model rebuilds it): review only", file=sys.stderr)
        model = None

    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if headless:
        start_virtual_display()
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    import napari

    viewer = napari.Viewer(title="napari-gleason demo", show=True)
    viewer.window.resize(1560, 960)
    review = build(viewer, args.size, args.seed)
    if model is not None:
        predict_core_on_screen(viewer, model)
        side_by_side(viewer)
        show_confusion(review)
    shot = args.screenshot or (DEFAULT_SHOT if headless or args.no_show else None)
    if shot is not None:
        shot = shot.resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(shot), canvas_only=False, flash=False)
        print(shot, flush=True)
    if headless or args.no_show:
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
