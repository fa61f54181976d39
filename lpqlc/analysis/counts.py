"""Counting and binning over (…, y, x) rasters as Dask reductions: the building block of every table.

Every area, transition and per-bin mean of :mod:`lpqlc.analysis` is a (weighted) histogram of an
integer key per pixel. ``numpy.bincount`` is the right tool per block but has no Dask or xarray
counterpart that keeps leading axes (``dask.array.bincount`` is 1-D only; flox needs the groups as
an in-memory array); so each block is counted with numpy and the per-block counts are summed —
memory per task is one block plus ``nbins`` numbers, whatever the AOI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr

__all__ = ["bincount", "class_index", "digitize", "rasterize_blocks"]


def _block_counts(keys: np.ndarray, weights: np.ndarray | None, nbins: int) -> np.ndarray:
    lead = keys.shape[:-2]
    flat_k = keys.reshape(-1, keys.shape[-2] * keys.shape[-1]) if lead else keys.reshape(1, -1)
    flat_w = None if weights is None else np.broadcast_to(weights, keys.shape).reshape(flat_k.shape)
    rows = []
    for r, k in enumerate(flat_k):
        ok = (k >= 0) & (k < nbins)
        if flat_w is not None:
            w = flat_w[r]
            ok &= np.isfinite(w)
            rows.append(np.bincount(k[ok], weights=w[ok].astype(np.float64), minlength=nbins)[:nbins])
        else:
            rows.append(np.bincount(k[ok], minlength=nbins)[:nbins].astype(np.float64))
    return np.stack(rows).reshape(*lead, 1, 1, nbins)


def bincount(keys: xr.DataArray, nbins: int, weights: xr.DataArray | None = None, *,
             dim: str = "bin") -> xr.DataArray:  # fmt: skip
    """Per leading index of ``keys`` (…, y, x): how many pixels (or the sum of ``weights``) have each key
    0…``nbins``−1, as a float64 (…, ``dim``) DataArray. Negative or too large keys and non-finite
    weights are left out. Lazy when ``keys`` is dask-backed."""
    if keys.dims[-2:] != ("y", "x"):
        raise ValueError(f"bincount: keys must end with dimensions (y, x), not {keys.dims}")
    lead = keys.dims[:-2]
    if weights is not None:
        weights = weights.broadcast_like(keys).transpose(*keys.dims)
    if keys.chunks is None and (weights is None or weights.chunks is None):
        out = _block_counts(keys.values, None if weights is None else weights.values, nbins)
        data: Any = out.reshape(*out.shape[:-3], nbins)
    else:
        k = keys.data if keys.chunks is not None else dsa.from_array(keys.values, chunks=weights.data.chunks)  # type: ignore[union-attr]
        w = None
        if weights is not None:
            w = dsa.asarray(weights.data).rechunk(k.chunks)
        chunks = (*k.chunks[:-2], (1,) * len(k.chunks[-2]), (1,) * len(k.chunks[-1]), (nbins,))
        args = (k,) if w is None else (k, w)

        def fn(kb: np.ndarray, wb: np.ndarray | None = None) -> np.ndarray:
            return _block_counts(kb, wb, nbins)

        per_block = dsa.map_blocks(fn, *args, chunks=chunks, new_axis=k.ndim, dtype=np.float64)
        data = per_block.sum(axis=(-3, -2))
    coords = {d: keys.coords[d] for d in lead if d in keys.coords}
    return xr.DataArray(data, dims=(*lead, dim), coords=coords)


def class_index(lc: xr.DataArray, codes: Sequence[int]) -> xr.DataArray:
    """Class codes → their position in ``codes`` (int16); −1 for nodata and unknown codes."""
    top = max(max(codes) + 1, 256)
    lut = np.full(top, -1, np.int16)
    lut[np.asarray(codes)] = np.arange(len(codes), dtype=np.int16)

    def look(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a).astype(np.int64)
        return np.where((a >= 0) & (a < top), lut[np.clip(a, 0, top - 1)], np.int16(-1)).astype(np.int16)

    return xr.apply_ufunc(look, lc, dask="parallelized", output_dtypes=[np.int16])


def digitize(values: xr.DataArray, breaks: Sequence[float]) -> xr.DataArray:
    """Bin index (int16) of each value against increasing ``breaks`` (bin i holds
    breaks[i−1] ≤ v < breaks[i]); −1 where the value is not finite."""
    edges = np.asarray(breaks, np.float64)

    def fn(a: np.ndarray) -> np.ndarray:
        out = np.digitize(a, edges).astype(np.int16)
        return np.where(np.isfinite(a), out, np.int16(-1)).astype(np.int16)

    return xr.apply_ufunc(fn, values, dask="parallelized", output_dtypes=[np.int16])


def rasterize_blocks(shapes: Sequence[tuple[Any, int]], like: xr.DataArray, transform: Any) -> xr.DataArray:
    """Burn (geometry in the grid's CRS, value ≥ 1) into a uint8 (y, x) raster shaped and chunked like
    ``like`` (0 outside every shape), one block at a time: no AOI-sized array on the client."""
    from affine import Affine
    from rasterio.features import rasterize

    shapes = list(shapes)

    def fn(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        (y0, _), (x0, _) = block_info[0]["array-location"][-2:]
        t = transform * Affine.translation(x0, y0)
        if not shapes:
            return np.zeros(block.shape[-2:], np.uint8)
        return rasterize(shapes, out_shape=block.shape[-2:], transform=t, fill=0, dtype="uint8")

    base = like.isel({d: 0 for d in like.dims[:-2]}, drop=True) if like.ndim > 2 else like
    data = base.data if base.chunks is not None else dsa.from_array(base.values, chunks=base.shape)
    out = dsa.map_blocks(fn, data, dtype=np.uint8)
    coords = {d: base.coords[d] for d in ("y", "x") if d in base.coords}
    return xr.DataArray(out, dims=("y", "x"), coords=coords)
