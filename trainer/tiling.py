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

from .data.augment import MEAN, normalise_tensor
from .inference import Predictor, class_map

Sink = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray | None], None]


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` and step ``stride``; last tile flush."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """2-D window: 1 in the middle, a linear ramp over ``overlap`` pixels at each edge, never 0."""
    ramp = np.minimum(np.arange(1, tile + 1), np.arange(tile, 0, -1)) / (overlap + 1)
    w1 = np.clip(ramp, 1.0 / (overlap + 1), 1.0).astype(np.float32)
    return np.outer(w1, w1)


@dataclass
class TiledResult:
    classes: np.ndarray | None
    probabilities: np.ndarray | None
    weights: np.ndarray | None  # E×H×W, in predictor.experts order
    seconds: float
    tiles: int
    errors: np.ndarray | None = None  # E×H×W: chance each expert's label is wrong (confusion model, prior)


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
                  progress: Callable[[int, int], None] | None = None, band_rows: int = 256) -> TiledResult:
    """Predict ``source`` (H×W×3 array-like, uint8) tile by tile.

    With ``sink`` given, each finished band of rows (at most ``band_rows``) is handed to
    ``sink(y0, y1, classes, probs, weights)`` (plus ``errors=`` with a confusion model) and nothing is kept; otherwise full-size arrays are
    returned.
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
                out = pred.model(x_in).float()
                if use_w:
                    wmap = pred.weighting(x_in, present=present.expand(len(chunk), -1), size=out.shape[-2:]).float()
                    out = torch.cat([out, wmap], dim=1)
                if d:
                    log_a = pred.confusion(x_in, size=out.shape[-2:]).float()
                    diag = torch.diagonal(log_a.exp(), dim1=2, dim2=3)  # B×N×h×w×C
                    out = torch.cat([out, diag.permute(0, 1, 4, 2, 3).flatten(1, 2)], dim=1)
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
    return TiledResult(out_classes, out_probs, out_weights, time.perf_counter() - t0, n_tiles, out_errors)


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


__all__ = ["predict_tiled", "tile_starts", "blend_window", "zarr_sink", "TiledResult"]
