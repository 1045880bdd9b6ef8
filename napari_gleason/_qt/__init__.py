"""All Qt code of napari-gleason: the review widget and its panels, the dataset browser, and the
predict and train widgets."""

from __future__ import annotations

from .browser import BrowserWidget
from .predict import PredictWidget
from .review import ReviewWidget
from .train import TrainWidget

__all__ = ["BrowserWidget", "PredictWidget", "ReviewWidget", "TrainWidget", "dock"]

PLUGIN = "napari-gleason"
DISPLAY_NAMES = {ReviewWidget: "Review experts", BrowserWidget: "Dataset browser",
                 PredictWidget: "Predict", TrainWidget: "Train and fine-tune"}


def dock(viewer, cls):
    """Dock the widget ``cls`` once per viewer and return it (the plugin's own dock if registered).

    Going through the manifest keeps one instance whether the user opened it from the Plugins
    menu or the reader did; when the plugin is not registered (a bare checkout), the same name is
    used directly so the widget is still reused, not duplicated.
    """
    name = DISPLAY_NAMES[cls]
    try:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        if isinstance(widget, cls):
            return widget
    except (KeyError, ValueError, RuntimeError):
        pass
    full = f"{name} ({PLUGIN})"
    existing = viewer.window.dock_widgets.get(full)
    if isinstance(existing, cls):
        return existing
    widget = cls(viewer)
    viewer.window.add_dock_widget(widget, name=full, area="right")
    return widget
