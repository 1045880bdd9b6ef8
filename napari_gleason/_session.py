"""What the widgets of one viewer share: one evented session per viewer (no Qt, no dock lookups).

The predict widget learns things about the core on screen that the review widget shows: whether
the loaded model can give the learned-weight consensus (eq. 2), and the confusion model's
per-expert confusion matrices. The review widget says which consensus layers the user chose to
see, so a learned consensus computed later by the predict widget appears (or not) accordingly.
The current checkpoint is shared the same way: the predict widget sets it when the user chooses
one, the train widget when a run writes one (the predict widget follows it), and the fine-tune
panel fine-tunes it, then asks for the core to be predicted again (``prediction_requested``).
Either widget may be docked first, or alone: each reads the session's current state when it is
made and follows its signals after that.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from trainer.prediction.confusion import CoreConfusion

if TYPE_CHECKING:
    import napari


class Session:
    """Shared state of one viewer's widgets; set through the setters, which emit on change."""

    learned_available_changed = Signal(bool)
    confusion_changed = Signal(object)  # CoreConfusion | None
    checkpoint_changed = Signal(object)  # str | None: the checkpoint file to predict with / fine-tune
    prediction_requested = Signal()  # predict the core on screen again (e.g. after fine-tuning)

    def __init__(self) -> None:
        self.checkpoint: str | None = None
        self.learned_available = False
        self.confusion: CoreConfusion | None = None
        self.consensus_shown: tuple[str, ...] = ("consensus:vote",)

    def set_learned_available(self, available: bool) -> None:
        available = bool(available)
        if available != self.learned_available:
            self.learned_available = available
            self.learned_available_changed.emit(available)

    def set_checkpoint(self, path: str | Path | None) -> None:
        """The current checkpoint (a file; stored resolved); emits only when it changes."""
        path = None if path is None else str(Path(path).resolve())
        if path != self.checkpoint:
            self.checkpoint = path
            self.checkpoint_changed.emit(path)

    def set_confusion(self, confusion: CoreConfusion | None) -> None:
        """The confusion model's estimate for a core (``None``: no such model, or no prediction)."""
        self.confusion = confusion
        self.confusion_changed.emit(confusion)

    def shows(self, role: str) -> bool:
        """Whether the consensus layer ``role`` should be visible (the review widget's choice)."""
        return role in self.consensus_shown


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_of(viewer: napari.viewer.Viewer) -> Session:
    """The session of ``viewer`` (made on first use, gone with the viewer)."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session()
    return session


__all__ = ["Session", "session_of"]
