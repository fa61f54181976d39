"""Temporal refinement (SCIENCE.md §1): each pixel's label becomes the most frequent class in a centred
window of quarters (5 by default: t−2 … t+2), truncated at the ends of the series.

Ties: the centre label wins if it is among the most frequent; otherwise the tied class nearest in time
to the centre (the earlier one at equal distance). Nodata (0) never votes and stays 0 at the centre.
Lazy on Dask: time is one chunk, space is chunked freely (the filter is per pixel).
"""

from __future__ import annotations

import dask.array as da
import numpy as np

__all__ = ["temporal_mode", "temporal_mode_numpy", "refine_window"]


def temporal_mode_numpy(stack: np.ndarray, window: int = 5) -> np.ndarray:
    """(T, …) uint8 class codes → refined (T, …) uint8 (see the module doc)."""
    if window % 2 != 1:
        raise ValueError(f"window must be odd, got {window}")
    t = stack.shape[0]
    r = window // 2
    out = np.empty_like(stack)
    codes = np.unique(stack)
    codes = codes[codes != 0]
    for i in range(t):
        lo, hi = max(0, i - r), min(t, i + r + 1)
        win = stack[lo:hi]
        centre = stack[i]
        if codes.size == 0:
            out[i] = centre
            continue
        counts = np.stack([(win == c).sum(0) for c in codes])  # (K, …)
        best = counts.max(0)
        # candidates: most frequent codes; pick the centre if it is one, else nearest in time
        choice = np.zeros_like(centre)
        chosen = np.zeros(centre.shape, bool)
        centre_count = np.zeros(centre.shape, counts.dtype)
        for k, c in enumerate(codes):
            centre_count = np.where(centre == c, counts[k], centre_count)
        keep_centre = (centre != 0) & (centre_count == best)
        choice[keep_centre] = centre[keep_centre]
        chosen |= keep_centre
        order = sorted(range(lo, hi), key=lambda j: (abs(j - i), j))
        for j in order:
            v = stack[j]
            vc = np.zeros(centre.shape, counts.dtype)
            for k, c in enumerate(codes):
                vc = np.where(v == c, counts[k], vc)
            take = ~chosen & (v != 0) & (vc == best) & (best > 0)
            choice[take] = v[take]
            chosen |= take
        choice[centre == 0] = 0
        out[i] = choice
    return out


def temporal_mode(stack: da.Array, window: int = 5) -> da.Array:
    """Lazy refinement of a (T, y, x) uint8 stack (time in one chunk)."""
    stack = stack.rechunk({0: -1})
    return stack.map_blocks(temporal_mode_numpy, window=window, dtype=np.uint8)


def refine_window(stack: da.Array, first: int, last: int, window: int = 5) -> da.Array:
    """Refined labels of time steps ``first`` … ``last`` (inclusive) only, reading just the context
    they need (``window // 2`` steps either side): a new quarter re-refines only what it touches."""
    r = window // 2
    t = stack.shape[0]
    lo, hi = max(0, first - r), min(t, last + r + 1)
    part = temporal_mode(stack[lo:hi], window)
    # within the slice, the steps near its cut ends see a truncated window only where the series ends
    return part[first - lo : last - lo + 1]
