"""Synthetic H&E-like prostate TMA cores with a known truth.

A core is a round, slightly irregular disc of tissue on a near-white glass background. Inside it a
few smooth random blobs assign the classes of the paper (benign, G3, G4, G5) and each class is
rendered with its own texture, chosen so that *roughness* (eq. 5: ``|I - Gauss(I)|``) rises with
grade, the prior the paper's GAF loss relies on:

- benign: pink fibrous stroma with large, well-formed glands (pale epithelial ring, basal purple
  nuclei, wide white lumen): mostly low-frequency;
- G3: many small discrete round glands with small lumens and more nuclei;
- G4: fused, cribriform epithelial sheets punched by several small lumens, denser purple;
- G5: solid sheets of small, crowded, dark nuclei and no lumens: the most high-frequency texture.

The colours come from a Beer-Lambert stain model (optical density = H * hematoxylin + E * eosin),
so mixtures look like H&E rather than like flat paint. Two *appearance* flags are kept beside the
truth because the simulated experts of :mod:`.experts` depend on them and an analysis may want
them (e.g. AUROC of the learnt expert weights on the regions an expert gets wrong):
:data:`FLAG_BORDERLINE_G3` (G3 rendered with larger, crowded glands) and :data:`FLAG_SMALL_G5`
(G5 components smaller than :data:`SMALL_FOCUS_AREA`). Three more patterns exist for the noisy
panel of :mod:`.panel` (:data:`FLAG_TEXTURED_G3`, :data:`FLAG_FOAMY_G3`, :data:`FLAG_POORLY_FORMED_G4`);
they are drawn only where their flag is set, which the default generator never does, so its cores
stay byte-identical.

Everything is vectorised (noise fields, distance transforms, gathers); the only Python loops run
over a handful of objects (harmonics, foci, classes), never over pixels. Sizes are expressed at a
reference size of 512 px and scaled, so a 1024 px core is the same tissue at twice the resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy import sparse
from scipy.spatial import cKDTree

BENIGN, G3, G4, G5 = 0, 1, 2, 3

#: Bit flags of :attr:`SyntheticCore.flags`.
FLAG_BORDERLINE_G3 = 1
FLAG_SMALL_G5 = 2
#: Patterns drawn only for the noisy panel (:mod:`.panel`), each over whole class regions; the
#: default generator never sets them, so its cores (and their random streams) are unchanged.
FLAG_TEXTURED_G3 = 4  # crowded small glands, dark amphophilic epithelium: G3 that looks like G4
FLAG_FOAMY_G3 = 8  # medium glands of pale, foamy cytoplasm, sparse nuclei: G3 that looks benign
FLAG_POORLY_FORMED_G4 = 16  # small, fused, poorly formed pink glands instead of cribriform sheets
PANEL_FLAGS = (FLAG_TEXTURED_G3, FLAG_FOAMY_G3, FLAG_POORLY_FORMED_G4)

#: Lengths and areas in this package are given at this core size and scaled with the real size.
REFERENCE_SIZE = 512

#: G5 components smaller than this (px² at 512²) are "small foci" (flag 2; missed by expert 5).
SMALL_FOCUS_AREA = 2500

# Optical density per unit of stain in (R, G, B). Hematoxylin after Ruifrok & Johnston (2001);
# eosin tilted toward blue absorption so stroma renders pink instead of magenta.
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29], dtype=np.float32)
_HEMATOXYLIN /= np.linalg.norm(_HEMATOXYLIN)
_EOSIN = np.array([0.12, 0.86, 0.50], dtype=np.float32)
_EOSIN /= np.linalg.norm(_EOSIN)


@dataclass
class SyntheticCore:
    """One synthetic core: the picture and the truth it was drawn from.

    ``image`` uint8 H×W×3 RGB; ``truth`` uint8 H×W class indices (benign outside the core, as in
    the paper's class map, where value 0 counts as benign); ``flags`` uint8 H×W bit flags
    (:data:`FLAG_BORDERLINE_G3`, :data:`FLAG_SMALL_G5`); ``core_mask`` bool H×W, True on tissue.
    """

    image: np.ndarray
    truth: np.ndarray
    flags: np.ndarray
    core_mask: np.ndarray

    @property
    def scale(self) -> float:
        """Pixels per reference pixel (size / 512)."""
        return self.truth.shape[0] / REFERENCE_SIZE


def _cubic_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """Sparse ``n_out × n_in`` cubic-convolution weights (Keys, a = -0.5), pixel-centre aligned.

    Upsampling with two sparse products is much faster than ``ndimage.zoom`` and, unlike linear
    interpolation, leaves no creases along the coarse grid (visible in thresholded fields).
    """
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(x).astype(int)
    rows, cols, vals = [], [], []
    for offset in (-1, 0, 1, 2):
        d = np.abs(x - (base + offset))
        vals.append(np.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2))
        rows.append(np.arange(n_out))
        cols.append(np.clip(base + offset, 0, n_in - 1))  # clamped edges: duplicates are summed
    coo = sparse.coo_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_out, n_in),
    )
    return coo.tocsr()


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise, standardised to mean 0 and std 1 (float32).

    Drawn and blurred at a reduced resolution, then interpolated up: a field that is smooth at
    scale ``sigma`` carries no detail finer than that, so this costs little and looks the same.
    """
    h, w = shape
    f = max(1.0, sigma / 3.0)
    low = (max(4, math.ceil(h / f)), max(4, math.ceil(w / f)))
    field = ndi.gaussian_filter(rng.standard_normal(low, dtype=np.float32), sigma / f, mode="wrap")
    if low != (h, w):
        field = _cubic_matrix(low[0], h) @ field  # rows up: (h × low_w)
        field = np.ascontiguousarray((_cubic_matrix(low[1], w) @ field.T).T)
    field -= field.mean()
    field /= field.std() + 1e-8
    return field


def _step(x: np.ndarray, edge: float, width: float) -> np.ndarray:
    """Soft indicator of ``x < edge`` with a linear ramp of ``width`` (anti-aliased outlines)."""
    return np.clip((edge - x) / width + 0.5, 0.0, 1.0)


def _nuclei(rng: np.random.Generator, shape: tuple[int, int], coverage: float, sigma: float) -> np.ndarray:
    """Round nuclei (soft dots of radius about ``1.2 * sigma``) covering about ``coverage`` of the area.

    Nuclei centres are a Bernoulli point process blurred by a Gaussian, rescaled so a lone nucleus
    peaks above 1 and is clipped to a flat top; crowded nuclei overlap into clumps, as in G5.
    """
    sigma = max(sigma, 0.4)
    density = coverage / (np.pi * (1.2 * sigma) ** 2)
    points = (rng.random(shape, dtype=np.float32) < density).astype(np.float32)
    delta = np.zeros((9, 9), np.float32)
    delta[4, 4] = 1.0
    peak = ndi.gaussian_filter(delta, sigma)[4, 4]  # a lone point's height after the blur
    return np.clip(ndi.gaussian_filter(points, sigma) * (1.8 / peak), 0.0, 1.0)


def _core_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A disc whose radius wobbles with a few low harmonics plus a ragged fine edge."""
    u = size / REFERENCE_SIZE
    yy, xx = np.indices((size, size), dtype=np.float32)
    cy, cx = size / 2 + rng.uniform(-0.03, 0.03, 2) * size
    r0 = size * rng.uniform(0.40, 0.45)
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    # Tabulate the outline over angle (cheaper than evaluating harmonics at every pixel).
    angles = np.linspace(-np.pi, np.pi, 2049, dtype=np.float32)
    outline = np.full_like(angles, r0)
    for k in range(2, 7):  # five harmonics: a slightly squashed, dented, never star-like outline
        outline += r0 * rng.uniform(0.0, 0.05) / k * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    edge = outline[np.rint((theta + np.pi) * (2048 / (2 * np.pi))).astype(np.intp)]
    edge += smooth_noise(rng, (size, size), 8 * u) * 2.0 * u
    return np.hypot(dy, dx) < edge


#: Per-core chance that G3, G4 and large G5 regions occur, loosely after Table 1.
DEFAULT_PRESENCE = (0.65, 0.8, 0.2)


def _layout(rng: np.random.Generator, core: np.ndarray,
            presence: tuple[float, float, float] = DEFAULT_PRESENCE) -> np.ndarray:
    """Class map from the argmax of smooth random fields, plus a few small G5 foci."""
    size = core.shape[0]
    u = size / REFERENCE_SIZE
    shape = core.shape
    # Per-core presence: benign everywhere, G4 common, large G5 rare (by default).
    has_g3, has_g4, has_g5 = (rng.random() < p for p in presence)
    if not (has_g3 or has_g4 or has_g5):
        has_g4 = True
    scores = np.full((4,) + shape, -np.inf, dtype=np.float32)
    sigma = size * rng.uniform(0.07, 0.11)
    scores[BENIGN] = smooth_noise(rng, shape, sigma) + rng.uniform(0.3, 0.8)
    for cls, present, offset in ((G3, has_g3, 0.0), (G4, has_g4, 0.0), (G5, has_g5, -0.7)):
        if present:
            scores[cls] = smooth_noise(rng, shape, sigma) + offset
    truth = np.argmax(scores, axis=0).astype(np.uint8)
    truth[~core] = BENIGN

    # Small G5 foci (a few tens of px across at 512²), mostly inside tumour as in real cores.
    depth = ndi.distance_transform_edt(core)
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):
        radius = rng.uniform(10, 17) * u
        inside = depth > radius + 4 * u
        candidates = np.flatnonzero(inside & (truth != BENIGN) & (truth != G5))
        if candidates.size == 0:
            candidates = np.flatnonzero(inside)
        if candidates.size == 0:
            break
        cy, cx = np.unravel_index(candidates[rng.integers(candidates.size)], shape)
        half = int(2 * radius) + 2
        y0, y1, x0, x1 = max(cy - half, 0), min(cy + half, size), max(cx - half, 0), min(cx + half, size)
        yy, xx = np.indices((y1 - y0, x1 - x0), dtype=np.float32)
        dy, dx = yy + y0 - cy, xx + x0 - cx
        angle, aspect = rng.uniform(0, np.pi), rng.uniform(0.6, 1.0)
        a = dy * np.cos(angle) + dx * np.sin(angle)
        b = (dx * np.cos(angle) - dy * np.sin(angle)) / aspect
        wobble = 1 + 0.15 * np.cos(rng.integers(2, 5) * np.arctan2(b, a) + rng.uniform(0, 2 * np.pi))
        focus = (np.hypot(a, b) < radius * wobble) & core[y0:y1, x0:x1]
        truth[y0:y1, x0:x1][focus] = G5
    return truth


def _appearance_flags(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """Bit flags: small G5 components, and part of the G3 area drawn with borderline glands."""
    u = truth.shape[0] / REFERENCE_SIZE
    labels, _ = ndi.label(truth == G5)
    areas = np.bincount(labels.ravel())
    small = areas < SMALL_FOCUS_AREA * u * u
    small[0] = False
    flags = np.where(small[labels], FLAG_SMALL_G5, 0).astype(np.uint8)
    if rng.random() < 0.75 and (truth == G3).any():
        patches = smooth_noise(rng, truth.shape, 0.05 * truth.shape[0]) > 0.2
        flags[(truth == G3) & patches] |= FLAG_BORDERLINE_G3
    return flags


def _gland_distance(
    rng: np.random.Generator,
    shape: tuple[int, int],
    spacing: float,
    radius: float,
    wobble: float,
    cap: float = 0.42,
) -> np.ndarray:
    """Distance to the nearest gland centre divided by that gland's radius (< 1: inside a gland).

    Centres sit on a jittered grid; each radius is capped at ``cap`` × the distance to the nearest
    other centre, so with ``cap < 0.5`` glands stay discrete. One Euclidean distance transform finds
    the nearest centre of every pixel at once; a gentle two-to-four-lobed radius and a smooth noise
    of relative amplitude ``wobble`` make the outlines organic instead of circular.
    """
    h, w = shape
    ys = np.arange(spacing / 2, h, spacing)
    xs = np.arange(spacing / 2, w, spacing)
    py, px = (g.ravel() for g in np.meshgrid(ys, xs, indexing="ij"))
    py = np.clip(py + rng.uniform(-0.4, 0.4, py.size) * spacing, 0, h - 1)
    px = np.clip(px + rng.uniform(-0.4, 0.4, px.size) * spacing, 0, w - 1)
    n = py.size
    r = radius * rng.uniform(0.75, 1.25, n)
    if n > 1:
        centres = np.column_stack([py, px])
        r = np.minimum(r, cap * cKDTree(centres).query(centres, k=2)[0][:, 1])
    lobes = rng.integers(2, 5, n)
    amp = rng.uniform(0, 0.12, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    seeds = np.zeros(shape, dtype=np.int32)
    seeds[np.round(py).astype(int), np.round(px).astype(int)] = np.arange(1, n + 1)
    dist, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    sid = seeds[iy, ix] - 1
    yy, xx = np.indices(shape, dtype=np.float32)
    theta = np.arctan2(yy - iy, xx - ix)
    reff = r[sid] * (1 + amp[sid] * np.cos(lobes[sid] * theta + phase[sid]))
    rel = dist / np.maximum(reff, 0.5)
    return (rel + wobble * smooth_noise(rng, shape, max(radius / 4, 1.0))).astype(np.float32)


def _stroma(rng: np.random.Generator, shape: tuple[int, int], u: float) -> tuple[np.ndarray, np.ndarray]:
    """Eosin-rich stroma: fibres (anisotropic noise whose direction drifts) and sparse nuclei."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    along_x = ndi.gaussian_filter(noise, (0.8 * u, 6 * u))
    along_y = ndi.gaussian_filter(noise, (6 * u, 0.8 * u))
    mix = _step(smooth_noise(rng, shape, 25 * u), 0.0, 1.5)
    fibres = mix * along_x / along_x.std() + (1 - mix) * along_y / along_y.std()
    h = 0.05 + 0.8 * _nuclei(rng, shape, 0.01, 1.0 * u)
    e = 0.50 + 0.07 * fibres + 0.05 * smooth_noise(rng, shape, 20 * u)
    return h, e


def _blend_pattern(flags: np.ndarray, flag: int, u: float) -> np.ndarray | None:
    """Soft (0-1) mask of where pattern ``flag`` is drawn, or None when the core has none of it."""
    marked = (flags & flag) > 0
    if not marked.any():
        return None
    return ndi.gaussian_filter(marked.astype(np.float32), 1.5 * u)


def _panel_g3(rng, flags, shape, u, stroma_h, stroma_e, h, e):
    """The noisy panel's two G3 patterns blended over ordinary G3 (no draws when neither occurs)."""
    textured = _blend_pattern(flags, FLAG_TEXTURED_G3, u)
    if textured is not None:  # crowded small glands, narrow lumens, dark amphophilic epithelium
        rel = _gland_distance(rng, shape, 15 * u, 6.5 * u, wobble=0.08, cap=0.48)
        gland, lumen = _step(rel, 1.0, 0.1), _step(rel, 0.3, 0.1)
        epi = gland - lumen
        dots = _nuclei(rng, shape, 0.45, 1.1 * u) * epi
        h_t = stroma_h * (1 - gland) + 0.50 * epi + 0.02 * lumen + 1.5 * dots
        e_t = stroma_e * (1 - gland) + 0.22 * epi + 0.03 * lumen
        h, e = (1 - textured) * h + textured * h_t, (1 - textured) * e + textured * e_t
    foamy = _blend_pattern(flags, FLAG_FOAMY_G3, u)
    if foamy is not None:  # medium glands of pale foamy cytoplasm, small basal nuclei: reads benign
        rel = _gland_distance(rng, shape, 30 * u, 12 * u, wobble=0.05, cap=0.45)
        gland, lumen = _step(rel, 1.0, 0.08), _step(rel, 0.45, 0.08)
        epi = gland - lumen
        foam = 0.04 * _nuclei(rng, shape, 0.5, 0.8 * u)  # bubbly cytoplasm
        dots = _nuclei(rng, shape, 0.3, 0.9 * u) * epi * _step(-rel, -0.8, 0.06)
        h_f = stroma_h * (1 - gland) + (0.03 + foam) * epi + 0.02 * lumen + 1.0 * dots
        e_f = stroma_e * (1 - gland) + (0.09 + foam) * epi + 0.03 * lumen
        h, e = (1 - foamy) * h + foamy * h_f, (1 - foamy) * e + foamy * e_f
    return h, e


def _panel_g4(rng, flags, shape, u, stroma_h, stroma_e, h, e):
    """The noisy panel's poorly formed G4 blended over cribriform G4 (no draws when absent)."""
    poorly = _blend_pattern(flags, FLAG_POORLY_FORMED_G4, u)
    if poorly is not None:  # small glands that touch and fuse (cap > 0.5), tiny lumens, pink
        rel = _gland_distance(rng, shape, 12 * u, 5.5 * u, wobble=0.15, cap=0.6)
        gland, lumen = _step(rel, 1.0, 0.1), _step(rel, 0.2, 0.1)
        epi = gland - lumen
        dots = _nuclei(rng, shape, 0.35, 1.1 * u) * epi
        h_p = stroma_h * (1 - gland) + 0.22 * epi + 0.03 * lumen + 1.2 * dots
        e_p = stroma_e * (1 - gland) + 0.48 * epi + 0.04 * lumen
        h, e = (1 - poorly) * h + poorly * h_p, (1 - poorly) * e + poorly * e_p
    return h, e


def _render(
    rng: np.random.Generator, truth: np.ndarray, flags: np.ndarray, core: np.ndarray
) -> np.ndarray:
    """Hematoxylin and eosin densities per class, blended at the class borders, then to RGB."""
    shape = truth.shape
    u = shape[0] / REFERENCE_SIZE
    stroma_h, stroma_e = _stroma(rng, shape, u)
    hem = np.zeros(shape, np.float32)
    eos = np.zeros(shape, np.float32)
    # Only the classes present are rendered: each costs a few full-image passes.
    for cls in np.unique(truth[core]):
        weight = ndi.gaussian_filter((truth == cls).astype(np.float32), 1.2 * u)
        if cls == BENIGN:  # large glands, wide lumen with an undulating (papillary) inner edge
            rel = _gland_distance(rng, shape, 70 * u, 30 * u, wobble=0.06)
            gland = _step(rel, 1.0, 0.05)
            lumen = _step(rel + 0.08 * smooth_noise(rng, shape, 2.5 * u), 0.6, 0.05)
            epi = gland - lumen
            basal = _step(-rel, -0.82, 0.06)  # nuclei in a row along the basement membrane
            dots = _nuclei(rng, shape, 0.5, 1.2 * u) * epi * basal
            h = stroma_h * (1 - gland) + 0.12 * epi + 0.02 * lumen + 1.2 * dots
            e = stroma_e * (1 - gland) + 0.20 * epi + 0.03 * lumen
        elif cls == G3:  # many small discrete glands, small lumens
            rel = _gland_distance(rng, shape, 22 * u, 8.5 * u, wobble=0.05, cap=0.45)
            lumen_edge = np.full(shape, 0.4, np.float32)
            border = flags & FLAG_BORDERLINE_G3
            if border.any():  # borderline: larger, crowded glands with narrower lumens
                rel_b = _gland_distance(rng, shape, 19 * u, 10 * u, wobble=0.06, cap=0.49)
                flagged = ndi.gaussian_filter(border.astype(np.float32), 1.5 * u) > 0.5
                rel = np.where(flagged, rel_b, rel)
                lumen_edge[flagged] = 0.32
            gland, lumen = _step(rel, 1.0, 0.1), _step(rel, lumen_edge, 0.1)
            epi = gland - lumen
            dots = _nuclei(rng, shape, 0.3, 1.2 * u) * epi
            h = stroma_h * (1 - gland) + 0.24 * epi + 0.02 * lumen + 1.3 * dots
            e = stroma_e * (1 - gland) + 0.30 * epi + 0.03 * lumen
            h, e = _panel_g3(rng, flags, shape, u, stroma_h, stroma_e, h, e)
        elif cls == G4:  # fused, cribriform sheets: several small lumens inside irregular epithelium
            sheet_field = smooth_noise(rng, shape, 7 * u)
            sheet = np.clip((sheet_field + 0.5) * 2.5, 0, 1)
            interior = np.clip((sheet_field - 0.1) * 2.5, 0, 1)
            holes = _step(_gland_distance(rng, shape, 11 * u, 2.8 * u, wobble=0.05), 1.0, 0.2)
            lumen = holes * interior
            epi = sheet - lumen
            dots = _nuclei(rng, shape, 0.4, 1.2 * u) * epi
            h = stroma_h * (1 - sheet) + 0.30 * epi + 0.03 * lumen + 1.4 * dots
            e = stroma_e * (1 - sheet) + 0.30 * epi + 0.04 * lumen
            h, e = _panel_g4(rng, flags, shape, u, stroma_h, stroma_e, h, e)
        else:  # G5: solid sheets of small, crowded, dark nuclei; no lumens
            dots = _nuclei(rng, shape, 0.4, 0.7 * u)
            h = 0.12 + 2.0 * dots
            e = 0.32 - 0.12 * dots
        hem += weight * h
        eos += weight * e

    # Glass: almost no stain, with a faint uneven illumination; a soft tissue edge.
    tissue = ndi.gaussian_filter(core.astype(np.float32), 0.8 * u)
    glass = 0.012 + 0.004 * smooth_noise(rng, shape, 40 * u)
    hem = tissue * hem + (1 - tissue) * glass
    eos = tissue * eos + (1 - tissue) * (glass + 0.01)
    # Stain intensity varies between slides; scale each stain per core.
    hem *= rng.uniform(0.85, 1.15)
    eos *= rng.uniform(0.85, 1.15)
    od = hem[..., None] * _HEMATOXYLIN + eos[..., None] * _EOSIN
    rgb = 255.0 * np.exp(-od) + rng.normal(0.0, 2.0, od.shape).astype(np.float32)
    rgb = ndi.gaussian_filter(rgb, (0.5 * u, 0.5 * u, 0))  # optics: nothing is pixel-sharp
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def make_core(rng: np.random.Generator | int, size: int = 512) -> SyntheticCore:
    """Draw one synthetic core of ``size``×``size`` pixels from ``rng`` (a Generator or a seed)."""
    rng = np.random.default_rng(rng)
    size = int(size)
    core = _core_mask(rng, size)
    truth = _layout(rng, core)
    flags = _appearance_flags(rng, truth)
    image = _render(rng, truth, flags, core)
    return SyntheticCore(image=image, truth=truth, flags=flags, core_mask=core)
