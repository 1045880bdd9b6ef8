"""Layer roles, class colours and update-in-place: how napari-gleason puts data into a viewer.

Every layer the plugin makes carries its *role* in ``layer.metadata["napari_gleason"]["role"]``:
``image``, ``expert:<name>``, ``consensus:<kind>`` (``vote``, ``staple``, later ``learned``),
``corrected``, ``truth``, ``disagreement``, ``roughness``, and for part 2 ``prediction``,
``probability:<class>``, ``weight:<expert>`` (weighting CNN) or ``error:<expert>`` (confusion model). The role, not the layer name, is what widgets look
for, so a user may rename layers freely. A role's *prefix* (before ``:``) decides the layer type
and its look (:data:`ROLE_STYLES`); new roles need one entry there, nothing else.

Labels layers show *display values*, not the trainer's class indices, because napari reserves
label 0 for "no label" (transparent) while class 0 is benign: see :class:`._core.LabelCoding`.
Every labels layer carries its class names as napari ``features`` (:func:`label_features`), so the
status bar names the class under the cursor; its colours come from :meth:`LabelCoding.colormap`,
the one source the legend (:mod:`._qt.legend`) and the probability maps use too.

``set_layer`` updates an existing layer of a role in place (keeping the user's opacity and
visibility) instead of piling up ``vote [1]``, ``vote [2]``; derived layers copy the image
layer's ``scale`` and ``translate`` so they stay registered to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer.data.classes import ClassScheme, LabelCoding
from trainer.data.core import Core, natural_sorted, role_prefix

if TYPE_CHECKING:  # napari is only needed to type-check; layer tuples need no viewer
    import napari

META_KEY = "napari_gleason"

#: Layer type, stacking rank (bottom first) and default look of each role prefix.
ROLE_STYLES: dict[str, dict[str, Any]] = {
    "image": {"type": "image", "rank": 0, "pyramid": True, "kw": {"rgb": True}},
    "roughness": {"type": "image", "rank": 1, "pyramid": True,
                  "kw": {"colormap": "magma", "opacity": 0.6, "visible": False}},
    # reliability heat maps: a fixed 0-1 range with napari's colour bar; NaN (off the tissue) is transparent
    "weight": {"type": "image", "rank": 2, "pyramid": True, "colorbar": True,
               "kw": {"colormap": "viridis", "opacity": 0.6, "contrast_limits": (0.0, 1.0), "visible": False}},
    "error": {"type": "image", "rank": 2, "pyramid": True, "colorbar": True,
              "kw": {"colormap": "plasma", "opacity": 0.6, "contrast_limits": (0.0, 1.0), "visible": False}},
    "probability": {"type": "image", "rank": 3, "pyramid": True,
                    "kw": {"opacity": 0.7, "contrast_limits": (0.0, 1.0), "visible": False}},
    "disagreement": {"type": "image", "rank": 4, "pyramid": True,
                     "kw": {"opacity": 0.8, "contrast_limits": (0.0, 1.0)}},
    "expert": {"type": "labels", "rank": 5, "pyramid": True, "kw": {"opacity": 0.55}},
    "truth": {"type": "labels", "rank": 6, "pyramid": True, "kw": {"opacity": 0.6, "visible": False}},
    "consensus": {"type": "labels", "rank": 7, "pyramid": True, "kw": {"opacity": 0.6, "visible": False}},
    "prediction": {"type": "labels", "rank": 8, "pyramid": True, "kw": {"opacity": 0.6}},
    # the one layer a pathologist paints on: napari cannot paint multiscale labels (#1587)
    "corrected": {"type": "labels", "rank": 9, "pyramid": False, "kw": {"opacity": 0.7}},
}

#: Read-only layers larger than this (either side) are shown through a pyramid of strided views
#: (no copy): napari then uploads only the level and region on screen, which is what keeps a
#: 5120² core with six experts fast to draw. Analysis always reads level 0 (:func:`level0`).
PYRAMID_ABOVE = 2048


def role_style(role: str) -> dict[str, Any]:
    """The :data:`ROLE_STYLES` entry of ``role``; a ``KeyError`` listing valid prefixes otherwise."""
    try:
        return ROLE_STYLES[role_prefix(role)]
    except KeyError:
        raise KeyError(f"unknown layer role {role!r}; prefixes: {sorted(ROLE_STYLES)}") from None


def _meta(role: str, core: str, scheme: ClassScheme | None, origin: dict | None, opened: str | None = None) -> dict:
    meta: dict[str, Any] = {"role": role, "core": core}
    if opened is not None:
        meta["opened"] = opened
    if scheme is not None:
        meta["scheme"] = scheme.to_dict()
    if origin:
        meta["origin"] = dict(origin)
    return {META_KEY: meta}


def layer_tuple(
    role: str,
    data: Any,
    *,
    core: str,
    scheme: ClassScheme | None = None,
    origin: dict | None = None,
    scale: Sequence[float] = (1.0, 1.0),
    translate: Sequence[float] = (0.0, 0.0),
    name: str | None = None,
    in_label_values: bool = False,
    opened: str | None = None,
    **overrides: Any,
) -> tuple[Any, dict, str]:
    """A napari ``LayerData`` tuple for ``role``: its look, name, metadata and geometry.

    Labels roles take *class maps* and need ``scheme``; they are converted to display values
    here (unless ``in_label_values``: already label values) so every caller gets the same colours. Image
    roles take arrays as they are. ``opened`` marks the layers of one opening of a core (a token):
    the review widget tells a newly opened core's layers from the previous core's by it.
    """
    style = role_style(role)
    kw: dict[str, Any] = dict(style["kw"])
    prefix = role_prefix(role)
    if style["type"] == "labels":
        if scheme is None:
            raise ValueError(f"role {role!r} is a labels layer and needs the class scheme")
        coding = LabelCoding.from_scheme(scheme)
        data = data if in_label_values else coding.to_labels(data)
        kw["colormap"] = coding.colormap()
        kw["features"] = label_features(coding)
    elif prefix == "disagreement":
        kw["colormap"] = _alpha_colormap("gleason-disagreement", (1.0, 0.0, 1.0))
    elif prefix == "probability" and scheme is not None:
        cls = role.split(":", 1)[1]
        coding = LabelCoding.from_scheme(scheme)
        rgb = coding.colors[coding.names.index(cls)] if cls in coding.names else (255, 255, 255)
        kw["colormap"] = _alpha_colormap(f"gleason-{cls}", tuple(v / 255 for v in rgb))
    if style["pyramid"]:
        data = display_pyramid(data)
    if isinstance(data, (list, tuple)) and len(data) == 1:
        data = data[0]  # napari rejects a one-level "multiscale" list
    if isinstance(data, (list, tuple)):
        kw["multiscale"] = True
    kw.update(name=name or role, scale=tuple(scale), translate=tuple(translate),
              metadata=_meta(role, core, scheme, origin, opened))
    kw.update(overrides)
    return data, kw, style["type"]


#: The class name napari shows for label value 0 (what the trainer calls ``IGNORE_INDEX``).
NO_LABEL = "unlabelled"


def label_features(coding: LabelCoding) -> dict[str, list]:
    """The ``features`` table of a labels layer: one row per label value, 0 (unlabelled) first,
    its ``class`` name. napari's status bar and tooltip show ``class: G4`` under the cursor (a
    ``Labels`` layer looks a value up in the ``index`` column and prints each other column), so a
    pathologist reads a name, not the label value."""
    return {"index": [0, *coding.values], "class": [NO_LABEL, *coding.names]}


def display_pyramid(data: Any) -> Any:
    """``[data, data[::2, ::2], …]`` down to about 1024 px, or ``data`` itself when small/lazy."""
    if isinstance(data, (list, tuple)) or not isinstance(data, np.ndarray) or max(data.shape[:2]) <= PYRAMID_ABOVE:
        return data
    levels = [data]
    while max(levels[-1].shape[:2]) > 1024:
        levels.append(levels[-1][::2, ::2])  # nearest: labels keep their values, views cost nothing
    return levels


def _alpha_colormap(name: str, rgb: tuple[float, float, float]):
    """Transparent at 0, opaque ``rgb`` at 1: overlays that leave agreeing tissue untouched."""
    from napari.utils.colormaps import Colormap

    return Colormap(colors=[[*rgb, 0.0], [*rgb, 1.0]], name=name, display_name=name)


def core_layer_tuples(core: Core) -> list[tuple[Any, dict, str]]:
    """Image, one labels layer per expert, then any extras, all registered to the image and marked
    with one ``opened`` token."""
    geo = {"core": core.name, "scheme": core.scheme, "origin": core.origin, "scale": core.scale,
           "opened": uuid.uuid4().hex}
    out = [layer_tuple("image", core.image, name=core.name, **geo)]
    out += [layer_tuple(role, m, in_label_values=in_label_values, **geo) for role, (m, in_label_values) in core.label_roles().items()]
    out += [layer_tuple(role, m, **geo) for role, m in core.maps.items()]
    return out


# --- viewer side ---------------------------------------------------------------------------


def role_of(layer) -> str | None:
    """The role of a layer made by napari-gleason, else ``None``."""
    meta = getattr(layer, "metadata", None) or {}
    return (meta.get(META_KEY) or {}).get("role")


def find_layer(viewer: napari.Viewer, role: str):
    """The layer holding ``role`` (first one if a user duplicated it), else ``None``."""
    return next((lyr for lyr in viewer.layers if role_of(lyr) == role), None)


def layers_with_prefix(viewer: napari.Viewer, prefix: str) -> list:
    """Layers whose role starts with ``prefix`` (e.g. every ``expert:*``), in stacking order."""
    return [lyr for lyr in viewer.layers if (r := role_of(lyr)) and role_prefix(r) == prefix]


def expert_name(layer) -> str:
    return role_of(layer).split(":", 1)[1]


def layer_scheme(layer) -> ClassScheme | None:
    d = ((layer.metadata or {}).get(META_KEY) or {}).get("scheme")
    return None if d is None else ClassScheme.from_dict(d)


def layer_origin(layer) -> dict:
    return dict(((layer.metadata or {}).get(META_KEY) or {}).get("origin") or {})


def layer_core(layer) -> str | None:
    return ((layer.metadata or {}).get(META_KEY) or {}).get("core")


def layer_meta(layer, key: str, default: Any = None) -> Any:
    """One entry of napari-gleason's metadata of ``layer`` (``opened``, ``browse``, …)."""
    return ((getattr(layer, "metadata", None) or {}).get(META_KEY) or {}).get(key, default)


def _insert_index(viewer: napari.Viewer, role: str) -> int:
    """Stack by role rank: image at the bottom, editable labels on top."""
    rank = role_style(role)["rank"]
    index = 0
    for i, lyr in enumerate(viewer.layers):
        r = role_of(lyr)
        if r is not None and role_style(r)["rank"] <= rank:
            index = i + 1
    return index


def _same_kind(layer, kind: str, kw: dict) -> bool:
    """Whether ``layer`` can take the new data in place (same type, multiscale-ness and rgb)."""
    from napari.layers import Image, Labels

    if bool(layer.multiscale) != bool(kw.get("multiscale", False)):
        return False
    if kind == "image":
        return isinstance(layer, Image) and bool(layer.rgb) == bool(kw.get("rgb", False))
    return isinstance(layer, Labels)


#: Roles whose new layer becomes the selected one: the layer the pathologist paints on (its brush
#: controls must show). Every other layer a worker adds (consensus, disagreement, roughness,
#: predictions, heat maps) appears without taking the selection from the layer the user is on —
#: which also spares napari rebuilding its layer-controls panel and restyling its buttons, a
#: 100-200 ms stall of the GUI thread per layer on a software-rendered display.
ACTIVATE_ON_INSERT = frozenset({"corrected"})


def _insert_unselected(viewer: napari.Viewer, index: int, layer) -> None:
    """Insert ``layer`` at ``index`` and leave the layer selection as it was, without telling anyone
    that it changed meanwhile: napari makes every inserted layer the active one, and each listener
    of that (the controls panel, the layer buttons' style, the layer list) would redo its work twice.
    Public API only (a plugin's viewer is a proxy that refuses private attributes from napari 0.10)."""
    selection = viewer.layers.selection
    before = set(selection)
    with selection.events.blocker_all():
        viewer.layers.insert(index, layer)
        selection.clear()
        selection.update(before)  # one layer: active and current again, as before


def set_layer(viewer: napari.Viewer, role: str, data: Any, *, like=None, **kwargs: Any):
    """Show ``data`` as the layer of ``role``: update that layer in place, or add it.

    ``like`` (the image layer) lends its scale and translate. Visibility, opacity and blending of
    an existing layer stay as the user left them; data, colormap, metadata and geometry follow. A
    new layer keeps the user's layer selection unless its role is in :data:`ACTIVATE_ON_INSERT`.
    """
    if like is not None:
        kwargs.setdefault("scale", tuple(like.scale))
        kwargs.setdefault("translate", tuple(like.translate))
    new_data, kw, kind = layer_tuple(role, data, **kwargs)
    layer = find_layer(viewer, role)
    if layer is not None and _same_kind(layer, kind, kw):
        layer.metadata = kw["metadata"]
        layer.scale, layer.translate = kw["scale"], kw["translate"]
        layer.data = new_data
        if "colormap" in kw:
            layer.colormap = kw["colormap"]
        if "features" in kw:
            layer.features = kw["features"]
        if kind == "image" and not kw.get("rgb") and "contrast_limits" in kw:
            layer.contrast_limits = kw["contrast_limits"]
        elif kind == "image" and not kw.get("rgb"):
            layer.reset_contrast_limits()
        layer.name = kw["name"]
        return layer
    from napari.layers import Layer

    new = Layer.create(new_data, kw, kind)
    if role_style(role).get("colorbar"):
        new.colorbar.visible = True  # shown with the layer; the user may hide it, an update keeps that
    if layer is not None:  # another kind (e.g. single -> multiscale image): replace at its place
        index = viewer.layers.index(layer)
        viewer.layers.remove(layer)
    else:
        index = _insert_index(viewer, role)
    if role_prefix(role) in ACTIVATE_ON_INSERT:
        viewer.layers.insert(index, new)
    else:
        _insert_unselected(viewer, index, new)
    return new


def remove_role(viewer: napari.Viewer, role: str) -> None:
    layer = find_layer(viewer, role)
    if layer is not None:
        viewer.layers.remove(layer)


def show_core(viewer: napari.Viewer, core: Core) -> dict[str, Any]:
    """Show ``core``: the image, one layer per expert, its extras; drop what belonged to the last core.

    Expert layers of experts this core lacks are removed; derived layers (consensus, disagreement,
    roughness, predictions) of the previous core are removed too, so nothing stale stays on screen:
    the review widget recomputes them for the new core.
    """
    geo = {"core": core.name, "scheme": core.scheme, "origin": core.origin, "scale": core.scale,
           "opened": uuid.uuid4().hex}
    image = set_layer(viewer, "image", core.image, name=core.name, **geo)
    shown = {"image": image}
    roles = core.label_roles()
    for lyr in list(viewer.layers):
        r = role_of(lyr)
        if r is not None and r != "image" and r not in roles and r not in core.maps:
            viewer.layers.remove(lyr)
    for role, (m, in_label_values) in roles.items():
        shown[role] = set_layer(viewer, role, m, like=image, in_label_values=in_label_values, **geo)
    for role, m in core.maps.items():
        shown[role] = set_layer(viewer, role, m, like=image, **geo)
    return shown


@dataclass
class CoreInfo:
    """What the widgets need to know about the core on screen (read from the layers' metadata)."""

    name: str
    scheme: ClassScheme
    coding: LabelCoding
    image: Any
    experts: dict[str, Any]
    origin: dict

    @property
    def dataset_root(self) -> Path | None:
        root = self.origin.get("dataset")
        return None if root is None else Path(root)


def current_core(viewer: napari.Viewer) -> CoreInfo | None:
    """The core on screen: its image layer, scheme and expert layers; ``None`` if there is none."""
    image = find_layer(viewer, "image")
    if image is None:
        return None
    scheme = layer_scheme(image)
    if scheme is None:
        return None
    layers = {expert_name(lyr): lyr for lyr in layers_with_prefix(viewer, "expert")}
    experts = {e: layers[e] for e in natural_sorted(layers)}  # every view lists them in this order
    return CoreInfo(layer_core(image) or image.name, scheme, LabelCoding.from_scheme(scheme), image,
                    experts, layer_origin(image))


def level0(layer) -> Any:
    """Full-resolution data of a layer (the first level of a multiscale one)."""
    return layer.data[0] if layer.multiscale else layer.data
