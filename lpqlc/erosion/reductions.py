"""Summaries as Dask reductions over tiles: class counts, transition counts, sums and counts of finite
values, and a display-sized map. Each returns a lazy Dask array: one ``dask.compute`` of several of
them reads every chunk once, and only per-chunk partial results (a few hundred numbers) travel to the
client — never an AOI-sized array.

Hand-written on ``map_blocks`` + ``sum``: ``numpy.bincount`` has no Dask reduction over a chunked 2-D
array that keeps a fixed length, and xarray's groupby on class codes builds one task per class.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["class_counts", "pair_counts", "finite_sum_count", "display_image"]


def _dask(a: xr.DataArray | np.ndarray | da.Array) -> da.Array:
    data = a.data if isinstance(a, xr.DataArray) else a
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=1024)


def _counts_block(b: np.ndarray, n: int) -> np.ndarray:
    flat = b.reshape(-1, b.shape[-2] * b.shape[-1])
    out = np.stack([np.bincount(row[(row >= 0) & (row < n)].astype(np.int64), minlength=n) for row in flat])
    return out.reshape(*b.shape[:-2], 1, 1, n)


def class_counts(codes: xr.DataArray | da.Array, n: int = 256) -> da.Array:
    """Lazy pixel counts per code 0 … n−1 of an integer raster (…, y, x): shape (…, n), int64."""
    a = _dask(codes)
    if not np.issubdtype(a.dtype, np.integer):
        a = da.where(da.isfinite(a), a, -1).astype(np.int64)
    lead = a.chunks[:-2]
    out = a.map_blocks(_counts_block, n, dtype=np.int64, new_axis=a.ndim,
                       chunks=(*lead, (1,) * len(a.chunks[-2]), (1,) * len(a.chunks[-1]), (n,)))  # fmt: skip
    return out.sum(axis=(a.ndim - 2, a.ndim - 1))


def pair_counts(first: xr.DataArray | da.Array, last: xr.DataArray | da.Array, codes: list[int]) -> da.Array:
    """Lazy (len(codes), len(codes)) counts of pixels going from ``codes[i]`` in ``first`` to ``codes[j]``
    in ``last`` (y, x); pixels with another code (nodata) in either are left out."""
    n = len(codes)
    lut = np.full(256, -1, np.int64)
    lut[np.asarray(codes)] = np.arange(n)
    a, b = _dask(first), _dask(last)

    def pair(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        i, j = lut[x.astype(np.intp)], lut[y.astype(np.intp)]
        return np.where((i >= 0) & (j >= 0), i * n + j, -1)

    idx = da.map_blocks(pair, a, b.rechunk(a.chunks), dtype=np.int64)
    return class_counts(idx, n * n).reshape(n, n)


def finite_sum_count(values: xr.DataArray | da.Array) -> tuple[da.Array, da.Array]:
    """Lazy (sum, count) of the finite values over the last two axes (y, x), float64 and int64."""
    a = _dask(values).astype(np.float64)
    ok = da.isfinite(a)
    return da.where(ok, a, 0.0).sum(axis=(-2, -1)), ok.sum(axis=(-2, -1))


def display_image(image: xr.DataArray, max_px: int = 800) -> xr.DataArray:
    """A lazy, at most ``max_px`` on its longer side, nearest-neighbour view (every k-th pixel) of a
    (y, x) map, for figures."""
    step = max(1, math.ceil(max(image.shape[-2:]) / max_px))
    return image.isel({image.dims[-2]: slice(None, None, step), image.dims[-1]: slice(None, None, step)})
