"""Tiled inference at (near-)native resolution with overlapping tiles and blended logits.

The paper predicts a whole core resized to 1024²; a 5120² core then loses detail. Here the core
is cut into overlapping tiles read lazily from any array-like source (a numpy array or a zarr
array of the review store), each tile's logits (and the weighting CNN's weight maps, or the
diagonals of the confusion model's matrices) are weighted
by a window that falls off towards the tile's edges, summed into a band accumulator, normalised
by the summed window, and written out band by band. Memory is bounded by one row of tiles,
``tile × width`` values per output channel, never the whole core — as in mmsegmentation's sliding-window
inference, every pixel is asserted to be covered.

``scale`` < 1 runs the model at a lower magnification (e.g. 0.2 to match a model trained on
5120² cores resized to 1024²): each tile covers ``tile/scale`` source pixels, its logits are
upsampled back, and outputs stay at source resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import MEAN, normalise_tensor
from .predictor import Predictor, class_map

Sink = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray | None], None]


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` and step ``stride``; last tile flush."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D window: 1 in the middle, a linear ramp over ``overlap`` pixels at each end, never 0."""
    ramp = np.minimum(np.arange(1, tile + 1), np.arange(tile, 0, -1)) / (overlap + 1)
    return np.clip(ramp, 1.0 / (overlap + 1), 1.0).astype(np.float32)


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """2-D window: the outer product of two :func:`blend_ramp`\\ s."""
    w1 = blend_ramp(tile, overlap)
    return np.outer(w1, w1)


def window_sums(length: int, starts: list[int], ramp: np.ndarray) -> np.ndarray:
    """Σ over the tiles of their 1-D windows at each position (the blend's normaliser along one
    axis; the 2-D one is the outer product of the two, the window being separable)."""
    total = np.zeros(max(length, starts[-1] + ramp.size), np.float64)
    for s0 in starts:
        total[s0:s0 + ramp.size] += ramp
    return total


@dataclass
class TiledResult:
    classes: np.ndarray | None
    probabilities: np.ndarray | None
    weights: np.ndarray | None  # E×H×W, in predictor.experts order
    seconds: float
    tiles: int
    errors: np.ndarray | None = None  # E×H×W: chance each expert's label is wrong (confusion model, prior)
    #: E×C×C mean confusion over the tissue, row = true class, column = label (NaN: no mass), summed
    #: from the tiles (each pixel counted once, by its share of the blend) — no second pass
    confusion: np.ndarray | None = None
    share: np.ndarray | None = None  # C: each class's share of the tissue (mean probability)


def _read_tile(source, y0: int, x0: int, size: int) -> np.ndarray:
    """Read ``size``² from ``source`` at (y0, x0), padding past the edges with the mean colour."""
    h, w = source.shape[:2]
    region = np.asarray(source[y0:min(y0 + size, h), x0:min(x0 + size, w)])
    if region.ndim == 2:
        region = np.repeat(region[..., None], 3, axis=2)
    region = region[..., :3]
    if region.shape[0] < size or region.shape[1] < size:
        pad = np.empty((size, size, 3), dtype=region.dtype)
        pad[...] = np.asarray(MEAN, dtype=np.float32).round().astype(region.dtype)
        pad[: region.shape[0], : region.shape[1]] = region
        region = pad
    return region


@torch.inference_mode()
def predict_tiled(pred: Predictor, source, tile: int | None = None, overlap: int = 128, scale: float = 1.0,
                  batch: int = 4, sink: Sink | None = None, with_weights: bool = True,
                  progress: Callable[[int, int], None] | None = None, band_rows: int = 256,
                  tissue: np.ndarray | None = None) -> TiledResult:
    """Predict ``source`` (H×W×3 array-like, uint8) tile by tile.

    With ``sink`` given, each finished band of rows (at most ``band_rows``) is handed to
    ``sink(y0, y1, classes, probs, weights)`` (plus ``errors=`` with a confusion model) and nothing is
    kept; otherwise full-size arrays are returned. With a confusion model the per-core matrices are
    summed from the tiles over ``tissue`` (bool H×W; default every pixel).
    """
    t0 = time.perf_counter()
    h, w = int(source.shape[0]), int(source.shape[1])
    tile = int(tile or pred.size)
    src_tile = max(1, int(round(tile / scale)))
    src_overlap = min(int(round(overlap / scale)), src_tile // 2)
    stride = max(1, src_tile - src_overlap)
    ys, xs = tile_starts(h, src_tile, stride), tile_starts(w, src_tile, stride)
    window = torch.from_numpy(blend_window(src_tile, src_overlap)).to(pred.device)
    c = pred.scheme.num_classes
    use_w = with_weights and pred.weighting is not None and len(pred.experts) > 0
    e = len(pred.experts) if use_w else 0
    present = torch.ones(1, max(e, 1), dtype=torch.bool, device=pred.device)
    # Confusion model: the prior error 1 − Σ_j A[j, j] p_j needs only the matrices' diagonals, so
    # those N·C channels are blended (not the N·C·C matrices) and combined with p band by band.
    n_err = len(pred.experts) if (with_weights and pred.confusion is not None and pred.experts) else 0
    d = n_err * c
    if n_err:  # the matrices: Σ_x u(x)·p_j·A[i, j] and Σ_x u(x)·p_j, u = tissue × this tile's blend share
        ramp = blend_ramp(src_tile, src_overlap)
        norm_y, norm_x = window_sums(h, ys, ramp), window_sums(w, xs, ramp)
        num = torch.zeros(n_err, c, c, dtype=torch.float64, device=pred.device)
        den = torch.zeros(c, dtype=torch.float64, device=pred.device)

    out_classes = np.zeros((h, w), np.uint8) if sink is None else None
    out_probs = np.zeros((c, h, w), np.float32) if sink is None else None
    out_weights = np.zeros((e, h, w), np.float32) if (sink is None and e) else None
    out_errors = np.zeros((n_err, h, w), np.float32) if (sink is None and n_err) else None

    # The accumulators hold exactly one row of tiles (src_tile rows); after each row of tiles the
    # finished rows are normalised and handed out, the overlap moves to the top, the rest is zeroed.
    width = xs[-1] + src_tile
    acc = torch.zeros(c + e + d, src_tile, width, device=pred.device)
    wacc = torch.zeros(src_tile, width, device=pred.device)
    acc_y0, done_tiles, n_tiles = 0, 0, len(ys) * len(xs)
    for i, y in enumerate(ys):
        assert y == acc_y0, "row of tiles does not start where the accumulator does"
        for j in range(0, len(xs), batch):
            chunk = xs[j:j + batch]
            tiles = np.stack([_read_tile(source, y, x, src_tile) for x in chunk])
            x_in = torch.from_numpy(tiles).to(pred.device).permute(0, 3, 1, 2).float()
            if src_tile != tile:
                x_in = F.interpolate(x_in, size=(tile, tile), mode="bilinear", align_corners=False, antialias=True)
            x_in = pred.prepare(normalise_tensor(x_in))
            with pred.autocast():
                if d and pred.heads:
                    out, feats = pred.model(x_in, features=True)
                    out = out.float()
                else:
                    out = pred.model(x_in).float()
                if use_w:
                    wmap = pred.weighting(x_in, present=present.expand(len(chunk), -1), size=out.shape[-2:]).float()
                    out = torch.cat([out, wmap], dim=1)
                if d:
                    # the heads' matrices at the decoder's resolution, the trunk's at the tile's
                    log_a = (pred.confusion(feats) if pred.heads else pred.confusion(x_in, size=out.shape[-2:])).float()
                    padded = pred.model.padded_size(tile, tile) if pred.heads else (tile, tile)
                    a = log_a.exp()
                    _add_matrices(num, den, out[:, :c], a, padded, _tile_shares(chunk, y, src_tile, tile, ramp,
                                                                                 norm_y, norm_x, tissue, h, w))
                    diag = torch.diagonal(a, dim1=2, dim2=3).permute(0, 1, 4, 2, 3).flatten(1, 2)  # B×(N·C)×h×w
                    del log_a, a
                    if tuple(diag.shape[-2:]) != (tile, tile):
                        diag = F.interpolate(diag, size=padded, mode="bilinear", align_corners=False)[..., :tile, :tile]
                    out = torch.cat([out, diag], dim=1)
            out = out.contiguous()
            del x_in
            if src_tile != tile:
                out = F.interpolate(out, size=(src_tile, src_tile), mode="bilinear", align_corners=False)
            for k, x in enumerate(chunk):
                acc[:, :, x:x + src_tile].addcmul_(out[k], window)
                wacc[:, x:x + src_tile] += window
            del out
            done_tiles += len(chunk)
            if progress is not None:
                progress(done_tiles, n_tiles)
        next_y = ys[i + 1] if i + 1 < len(ys) else h
        rows = next_y - acc_y0
        # hand out the finished rows in bands of at most band_rows: the softmax, the sink's own
        # work and the copies to numpy stay small whatever the tile size
        for s0 in range(0, rows, band_rows):
            s1 = min(rows, s0 + band_rows)
            band_w = wacc[s0:s1, :w]
            assert bool((band_w > 0).all()), "tiling left pixels uncovered"
            band = acc[:, s0:s1, :w] / band_w
            probs = torch.softmax(band[:c], dim=0)
            classes = class_map(probs).cpu().numpy()
            probs_np = probs.cpu().numpy()
            weights_np = band[c:c + e].cpu().numpy() if e else None
            errors_np = None
            if d:
                diag = band[c + e:].view(n_err, c, *band.shape[1:])
                errors_np = (1 - (diag * probs[None]).sum(1)).clamp(0, 1).cpu().numpy()
            y0, y1 = acc_y0 + s0, acc_y0 + s1
            if sink is not None:
                if d:
                    sink(y0, y1, classes, probs_np, weights_np, errors=errors_np)
                else:
                    sink(y0, y1, classes, probs_np, weights_np)
            else:
                out_classes[y0:y1] = classes
                out_probs[:, y0:y1] = probs_np
                if e:
                    out_weights[:, y0:y1] = weights_np
                if d:
                    out_errors[:, y0:y1] = errors_np
            del band, probs
        keep = src_tile - rows
        if keep > 0:
            acc[:, :keep] = acc[:, rows:rows + keep].clone()
            wacc[:keep] = wacc[rows:rows + keep].clone()
        acc[:, max(keep, 0):] = 0
        wacc[max(keep, 0):] = 0
        acc_y0 = next_y
    confusion = share = None
    if n_err:
        rows = num / den[None, :, None]
        confusion = torch.where(den[None, :, None] > 0, rows, torch.full_like(rows, float("nan"))).cpu().numpy()
        share = (den / den.sum().clamp_min(1e-12)).cpu().numpy()
    return TiledResult(out_classes, out_probs, out_weights, time.perf_counter() - t0, n_tiles, out_errors,
                       confusion, share)


def _tile_shares(xs: list[int], y: int, src_tile: int, tile: int, ramp: np.ndarray, norm_y: np.ndarray,
                 norm_x: np.ndarray, tissue, h: int, w: int) -> torch.Tensor:
    """``B×1×tile×tile``: each pixel's share of these tiles in the blend (window / Σ windows), times
    the tissue mask (0 past the core's edge), at the network's input resolution."""
    wy = ramp / norm_y[y:y + src_tile]
    out = np.zeros((len(xs), 1, src_tile, src_tile), np.float32)
    for k, x in enumerate(xs):
        u = np.outer(wy, ramp / norm_x[x:x + src_tile])
        inside = np.zeros((src_tile, src_tile), np.float32)
        ih, iw = max(0, min(src_tile, h - y)), max(0, min(src_tile, w - x))
        inside[:ih, :iw] = 1.0 if tissue is None else np.asarray(tissue[y:y + ih, x:x + iw], np.float32)
        out[k, 0] = u * inside
    t = torch.from_numpy(out)
    if src_tile != tile:  # area resize keeps each tile's total share (up to the pixel-count ratio)
        t = F.interpolate(t, size=(tile, tile), mode="area") * (src_tile / tile) ** 2
    return t


def _add_matrices(num: torch.Tensor, den: torch.Tensor, logits: torch.Tensor, a: torch.Tensor,
                  padded: tuple[int, int], shares: torch.Tensor) -> None:
    """Add the tiles' ``Σ u·p_j·A[i, j]`` (into ``num[n, j, i]``) and ``Σ u·p_j`` (into ``den``) on the
    matrices' grid; ``logits`` ``B×C×T×T`` (tile, the input's size), ``a`` ``B×N×C×C×g×g`` over the
    ``padded`` input, ``shares`` ``B×1×T×T`` (:func:`_tile_shares`)."""
    t = logits.shape[-1]
    grid = tuple(a.shape[-2:])
    pad = (0, padded[1] - t, 0, padded[0] - t)
    logits = F.pad(logits, pad, mode="replicate") if any(pad) else logits
    u = F.pad(shares.to(logits.device), pad) if any(pad) else shares.to(logits.device)
    if grid != tuple(padded):
        logits = F.interpolate(logits, size=grid, mode="bilinear", align_corners=False, antialias=True)
        u = F.interpolate(u, size=grid, mode="area") * (padded[0] * padded[1]) / (grid[0] * grid[1])
    p = torch.softmax(logits, dim=1).double() * u.double()  # B×C×g×g, weighted
    num += torch.einsum("bjhw,bnijhw->nji", p, a.double())
    den += p.sum(dim=(0, 2, 3))


def zarr_sink(classes_arr, probs_arr=None, weights_arr=None, errors_arr=None) -> Sink:
    """A sink writing bands into (zarr) arrays: classes H×W, probabilities C×H×W, weights and
    errors E×H×W."""

    def write(y0: int, y1: int, classes, probs, weights, errors=None) -> None:
        classes_arr[y0:y1] = classes
        if probs_arr is not None:
            probs_arr[:, y0:y1] = probs.astype(probs_arr.dtype, copy=False)
        if weights_arr is not None and weights is not None:
            weights_arr[:, y0:y1] = weights.astype(weights_arr.dtype, copy=False)
        if errors_arr is not None and errors is not None:
            errors_arr[:, y0:y1] = errors.astype(errors_arr.dtype, copy=False)

    return write


__all__ = ["predict_tiled", "tile_starts", "blend_ramp", "blend_window", "window_sums", "zarr_sink", "TiledResult"]
