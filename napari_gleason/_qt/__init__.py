"""All Qt code of napari-gleason: the review widget and its panels, the dataset browser, and the
predict and train widgets."""

from __future__ import annotations

from .browser import BrowserWidget
from .docking import dock
from .predict import PredictWidget
from .review import ReviewWidget
from .train import TrainWidget

__all__ = ["BrowserWidget", "PredictWidget", "ReviewWidget", "TrainWidget", "dock"]
