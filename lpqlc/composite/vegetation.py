"""Fractional vegetation cover from NDVI, with the area's NDVI endmembers (SCIENCE.md §3, C factor).

FVC = clip((NDVI − NDVI_soil)/(NDVI_veg − NDVI_soil), 0, 1). The endmembers are either fixed
(``fvc.method: fixed``) or the ``soil_percentile``/``veg_percentile`` of NDVI over the whole area, a
global reduction: it is taken from an NDVI histogram (``composite.ndvi_histogram_bins`` bins over
[−1, 1]), which Dask sums chunk by chunk in bounded memory and which tiles processed apart merge
exactly. Percentiles are exact to half a bin width (2.5·10⁻⁴ with the default 4000 bins).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from lpqlc.config.science import FVCConfig
from lpqlc.errors import LpqlcError

__all__ = ["ndvi_histogram", "percentile_from_histogram", "ndvi_endmembers", "fvc", "lazy_fvc", "HIST_RANGE"]

HIST_RANGE = (-1.0, 1.0)


def ndvi_histogram(ndvi: xr.DataArray | np.ndarray, bins: int) -> Any:
    """Counts of finite NDVI values in ``bins`` equal bins over [−1, 1] (int64 array, lazy if Dask)."""
    data = ndvi.data if isinstance(ndvi, xr.DataArray) else ndvi
    if isinstance(data, da.Array):
        counts, _ = da.histogram(data, bins=bins, range=HIST_RANGE)
        return counts
    counts, _ = np.histogram(data[np.isfinite(data)], bins=bins, range=HIST_RANGE)
    return counts


def percentile_from_histogram(counts: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0–100) of the values a histogram over [−1, 1] counts (bin centre)."""
    counts = np.asarray(counts)
    total = int(counts.sum())
    if total == 0:
        raise LpqlcError("NDVI has no valid pixel in the area: FVC percentiles are undefined (use fvc.method: fixed)")
    edges = np.linspace(*HIST_RANGE, counts.size + 1)
    idx = int(np.searchsorted(np.cumsum(counts), q / 100.0 * total, side="left"))
    idx = min(idx, counts.size - 1)
    return float(0.5 * (edges[idx] + edges[idx + 1]))


def ndvi_endmembers(cfg: FVCConfig, counts: np.ndarray | None = None) -> tuple[float, float]:
    """(NDVI_soil, NDVI_veg): fixed from config, or the configured percentiles of a histogram."""
    if cfg.method == "fixed":
        return cfg.ndvi_soil, cfg.ndvi_veg
    if counts is None:
        raise LpqlcError("fvc.method 'percentile' needs the area's NDVI histogram")
    soil = percentile_from_histogram(counts, cfg.soil_percentile)
    veg = percentile_from_histogram(counts, cfg.veg_percentile)
    if veg <= soil:
        raise LpqlcError(f"NDVI endmembers collapse (soil {soil:.4f} ≥ veg {veg:.4f}): the area is too uniform")
    return soil, veg


def fvc(ndvi: xr.DataArray, soil: Any, veg: Any) -> xr.DataArray:
    """FVC (0–1, float32) from NDVI and endmembers (floats or lazy Dask scalars); NaN stays NaN."""
    out = ((ndvi - soil) / (veg - soil)).clip(0.0, 1.0).astype(np.float32)
    out.attrs.update(units="1", long_name="fractional vegetation cover", nodata=np.nan)
    return out.rename("fvc")


def lazy_fvc(ndvi: xr.DataArray, cfg: FVCConfig, bins: int) -> xr.DataArray:
    """FVC with endmembers left lazy: the percentile path is a global reduction over ``ndvi``."""
    if cfg.method == "fixed":
        return fvc(ndvi, cfg.ndvi_soil, cfg.ndvi_veg)
    counts = ndvi_histogram(ndvi, bins)
    soil = da.from_delayed(_endmember(counts, cfg, 0), shape=(), dtype=np.float64)
    veg = da.from_delayed(_endmember(counts, cfg, 1), shape=(), dtype=np.float64)
    return fvc(ndvi, soil, veg)


def _endmember(counts: Any, cfg: FVCConfig, which: int) -> Any:
    import dask

    return dask.delayed(lambda c: ndvi_endmembers(cfg, c)[which], pure=True)(counts)
