"""How the plugin's docks share napari's side of the window, so that every button stays reachable.

On a 1600×1000 window napari's right dock area is about 520 px wide and 950 px tall. Stacked one
above the other, the review widget, the dataset browser and the train widget each got a strip of it:
the browser showed one row of its table, the train widget none of its Start/Stop row. Here:

- the train widget shares a tab with the review widget (napari's ``tabify``: each gets the whole
  height, one click on the tab switches), and is raised when it is opened;
- the browser stays below the review widget (the two are used together) with at least
  :data:`BROWSER_SHARE` of the height, so its table shows several rows;
- a widget whose panels sit in a scroll area is at least as wide as what the scroll area holds
  (:func:`fit_width`), so no button is cut off at the right edge.

The arrangement is made once per widget, when it is first shown in a dock (opened from the Plugins
menu, by the reader, or by a script: napari docks it in each case).
"""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QWidget

#: The share of the dock area's height the browser gets below the review widget.
BROWSER_SHARE = 0.4


def dock_of(widget: QWidget) -> QDockWidget | None:
    """The dock holding ``widget``, or ``None`` when it is not docked."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def fit_width(widget: QWidget, scroll: QScrollArea) -> None:
    """Make ``widget`` at least as wide as the contents of its ``scroll`` area need (with the vertical
    scroll bar and frames), so nothing in it is cut off at the right edge."""
    body = scroll.widget()
    margins = widget.layout().contentsMargins() if widget.layout() is not None else None
    need = (body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth()
            + (margins.left() + margins.right() if margins is not None else 0))
    widget.setMinimumWidth(max(widget.minimumWidth(), need))


def _plugin_docks(main: QMainWindow) -> dict[str, QDockWidget]:
    """kind (``review``, ``browser``, ``train``) -> the open dock of that napari-gleason widget in
    ``main`` (open: shown, or behind another dock's tab)."""
    def kind_of(w: QWidget) -> str | None:
        return getattr(type(w), "dock_kind", None)  # the widget classes say which they are

    out = {}
    for dock in main.findChildren(QDockWidget):
        inner = dock.widget()
        if inner is None or dock.isFloating() or not dock.toggleViewAction().isChecked():
            continue
        kind = kind_of(inner)
        if kind is None:  # napari may wrap a plugin's widget: look one level in
            kind = next((kind_of(w) for w in inner.findChildren(QWidget) if kind_of(w)), None)
        if kind is not None and kind not in out:
            out[kind] = dock
    return out


def arrange(widget: QWidget) -> None:
    """Place ``widget``'s dock beside the plugin's other docks (see the module docstring)."""
    dock = dock_of(widget)
    main = dock.parentWidget() if dock is not None else None
    if not isinstance(main, QMainWindow) or dock.isFloating():
        return
    docks = _plugin_docks(main)
    review, browser, train = docks.get("review"), docks.get("browser"), docks.get("train")
    area = main.dockWidgetArea
    if review is not None and train is not None and area(review) == area(train):
        if train not in main.tabifiedDockWidgets(review):
            main.tabifyDockWidget(review, train)
        if dock in (review, train):  # the one just opened is the one wanted
            dock.raise_()
    if review is None or browser is None or area(review) != area(browser) \
            or browser in main.tabifiedDockWidgets(review):
        return
    # the tab on show above the browser: the review dock, or the train dock sharing its tab
    if dock in (review, train):
        top = dock  # just raised (its isVisible() follows only later)
    else:
        top = next((d for d in (review, train) if d is not None and d.isVisible() and area(d) == area(review)), review)
    total = top.height() + browser.height()
    share = max(int(BROWSER_SHARE * total), browser.minimumSizeHint().height())
    main.resizeDocks([top, browser], [total - share, share], Qt.Orientation.Vertical)


class ArrangeOnFirstShow:
    """Mixin for the plugin's dock widgets: :func:`arrange` once, after the first show in a dock;
    at every show, :func:`fit_width` to its ``fit_scroll`` (when it sets one): sizes are only true
    once the style has polished the widgets."""

    _arranged = False
    fit_scroll: QScrollArea | None = None

    def showEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        super().showEvent(event)
        if self.fit_scroll is not None:
            fit_width(self, self.fit_scroll)
        if not self._arranged and dock_of(self) is not None:
            self._arranged = True
            timer = QTimer(self)  # once napari has placed the dock; dies with the widget
            timer.setSingleShot(True)
            timer.timeout.connect(lambda: (arrange(self), timer.deleteLater()))
            timer.start(0)


PLUGIN = "napari-gleason"


def dock(viewer, cls):
    """Dock the widget ``cls`` once per viewer and return it (the plugin's own dock if registered).

    Going through the manifest keeps one instance whether the user opened it from the Plugins
    menu or the reader did; when the plugin is not registered (a bare checkout), the same name is
    used directly so the widget is still reused, not duplicated. ``cls.display_name`` is its name
    in napari.yaml.
    """
    name = cls.display_name
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
