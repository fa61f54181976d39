"""Analyses of the erosion series: eroded share per year, cumulative erosion and its most eroded
part, terrain classes, attribution of erosion change to land-cover change (paper Table 7), the
area under significant trends, and the comparison with a reference table (paper §4.4).

Erosion in t/(hm²·q) per quarter, t/(hm²·a) per year; cumulative erosion in t/hm². Every function
but :func:`top_threshold` and :func:`reference_comparison` returns a lazy result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from lpqlc.analysis.counts import bincount, class_index, digitize

__all__ = [
    "eroded_share",
    "cumulative",
    "top_threshold",
    "terrain_table",
    "aspect_sector",
    "ASPECT_SECTORS",
    "attribution",
    "trend_areas",
    "reference_comparison",
]

#: Aspect classes: flat, then 8 sectors of 45° centred on N, NE, … (clockwise from north).
ASPECT_SECTORS = ("flat", "N", "NE", "E", "SE", "S", "SW", "W", "NW")


def eroded_share(annual: xr.DataArray, eroded_from_t_hm2_a: float) -> xr.Dataset:
    """Per leading step (year): mean erosion (t/(hm²·a)) and the percent of valid pixels with
    A ≥ ``eroded_from_t_hm2_a`` (the lower bound of the first grade counted as eroded)."""
    valid = np.isfinite(annual)
    n = valid.sum(("y", "x"))
    return xr.Dataset({
        "mean_t_hm2_a": annual.where(valid).sum(("y", "x")) / n,
        "eroded_pct": 100 * (annual >= eroded_from_t_hm2_a).sum(("y", "x")) / n,
    })  # fmt: skip


def cumulative(annual: xr.DataArray, dim: str = "year") -> xr.DataArray:
    """Cumulative erosion over ``dim`` per pixel (t/hm²); NaN where any year is missing."""
    out = annual.sum(dim, skipna=False)
    return out.assign_attrs(units="t/hm²", long_name=f"cumulative soil loss over {annual.sizes[dim]} {dim}s")


def top_threshold(values: xr.DataArray, fraction: float, bins: int = 4096) -> float:
    """The value above which the top ``fraction`` of the valid pixels lie, from a histogram of ``bins``
    bins between the minimum and the maximum (two Dask computes: range, then histogram): exact to one
    bin width, with memory bounded per block, where an exact quantile would need the whole AOI at once."""
    import dask

    if not 0 < fraction <= 1:
        raise ValueError(f"top_threshold: fraction must lie in (0, 1], not {fraction}")
    lo, hi = dask.compute(values.min(), values.max())
    lo, hi = float(lo), float(hi)
    if not np.isfinite(lo) or hi <= lo:
        return lo
    edges = np.linspace(lo, hi, bins + 1)
    idx = digitize(values, list(edges[1:-1]))
    counts = np.asarray(bincount(idx, bins).values)
    above = np.cumsum(counts[::-1])[::-1]  # pixels in this bin or higher
    target = fraction * counts.sum()
    i = int(np.nonzero(above >= target)[0].max())
    return float(edges[i])


def aspect_sector(aspect_deg: xr.DataArray, slope_deg: xr.DataArray, flat_deg: float = 1.0) -> xr.DataArray:
    """Index into :data:`ASPECT_SECTORS`: 0 flat (slope < ``flat_deg``), 1 N (337.5–22.5°) … 8 NW;
    −1 no data. ``aspect_deg`` clockwise from north."""

    def fn(a: np.ndarray, s: np.ndarray) -> np.ndarray:
        sector = (np.floor(((a % 360) + 22.5) / 45.0) % 8 + 1).astype(np.int16)
        out = np.where(s < flat_deg, np.int16(0), sector)
        return np.where(np.isfinite(a) & np.isfinite(s), out, np.int16(-1)).astype(np.int16)

    return xr.apply_ufunc(fn, aspect_deg, slope_deg, dask="parallelized", output_dtypes=[np.int16])


def terrain_table(erosion: xr.DataArray, bins: xr.DataArray, nbins: int, eroded_from_t_hm2_a: float,
                  pixel_km2: float) -> xr.Dataset:  # fmt: skip
    """Per terrain bin (``bins`` (y, x) int, 0…nbins−1): area (km²), mean erosion and eroded-area
    share (%)."""
    valid = np.isfinite(erosion)
    key = xr.where(valid, bins, -1)
    n = bincount(key, nbins)
    total = bincount(key, nbins, weights=erosion)
    eroded = bincount(xr.where(erosion >= eroded_from_t_hm2_a, bins, -1), nbins)
    return xr.Dataset({"area_km2": n * pixel_km2, "mean_t_hm2_a": total / n.where(n > 0),
                       "eroded_pct": 100 * eroded / n.where(n > 0)})  # fmt: skip


def attribution(lc_then: xr.DataArray, lc_now: xr.DataArray, a_then: xr.DataArray, a_now: xr.DataArray,
                codes: Sequence[int]) -> xr.Dataset:  # fmt: skip
    """Erosion change attributed to land-cover change per class (paper Table 7), for one pair of maps.

    For class c: gain pixels are not c then and c now, loss pixels c then and not c now (both valid).
    ``gain_dA`` / ``loss_dA`` are the mean of A_now − A_then over them; ``now_A`` the mean A_now over
    pixels of class c now; ``gain_px``/``loss_px``/``now_px`` the pixel counts. Units those of A.
    Per quarter, pass the quarter's maps of the two years; the annual values are the sums of the four
    quarterly means (docs/analysis.md).
    """
    k = len(codes)
    i0, i1 = class_index(lc_then, codes), class_index(lc_now, codes)
    ok = (i0 >= 0) & (i1 >= 0) & np.isfinite(a_then) & np.isfinite(a_now)
    changed = ok & (i0 != i1)
    gain_key = xr.where(changed, i1, -1)
    loss_key = xr.where(changed, i0, -1)
    now_key = xr.where((i1 >= 0) & np.isfinite(a_now), i1, -1)
    d = a_now - a_then
    gain_px, loss_px, now_px = bincount(gain_key, k), bincount(loss_key, k), bincount(now_key, k)
    out = xr.Dataset({
        "gain_px": gain_px, "loss_px": loss_px, "now_px": now_px,
        "gain_dA": bincount(gain_key, k, weights=d) / gain_px.where(gain_px > 0),
        "loss_dA": bincount(loss_key, k, weights=d) / loss_px.where(loss_px > 0),
        "now_A": bincount(now_key, k, weights=a_now) / now_px.where(now_px > 0),
    })  # fmt: skip
    return out.rename(bin="class").assign_coords({"class": list(codes)})


def trend_areas(trend: xr.DataArray, pixel_km2: float, regions: xr.DataArray | None = None,
                region_names: Sequence[str] | None = None) -> xr.Dataset:  # fmt: skip
    """Area (km²) and share (% of pixels with a test) of significant decrease / none / increase per region.

    ``trend`` is the int8 map of :func:`lpqlc.analysis.trend.mann_kendall`; pixels without a test
    (``n`` below the minimum) must be −2 (see :func:`lpqlc.analysis.run.trend_products`)."""
    key = xr.where(trend >= -1, trend.astype(np.int16) + 1, -1)
    parts = [bincount(key, 3)]
    names = list(region_names or []) if regions is not None else []
    for i, _ in enumerate(names):
        parts.append(bincount(xr.where(regions == i + 1, key, -1), 3))
    n = xr.concat(parts, dim="region").rename(bin="trend")
    n = n.assign_coords(region=["all", *names], trend=["decrease", "none", "increase"])
    return xr.Dataset({"area_km2": n * pixel_km2, "share_pct": 100 * n / n.sum("trend")})


def reference_comparison(ours: Any, reference: Any) -> tuple[Any, float]:
    """Per-year error of our eroded share against a reference table, and the mean absolute error.

    ``ours``: pandas Series year → eroded %; ``reference``: DataFrame with columns ``year``,
    ``eroded_pct``. Returns (DataFrame year, reference_pct, ours_pct, error_pp; MAE in percentage points
    over the common years, NaN when there are none)."""
    import pandas as pd

    missing = {"year", "eroded_pct"} - set(reference.columns)
    if missing:
        raise ValueError(f"reference table lacks columns {sorted(missing)} (needs year, eroded_pct)")
    ref = reference.assign(year=reference["year"].astype(int)).set_index("year")["eroded_pct"].astype(float)
    mine = pd.Series(ours).rename(index=int).astype(float)
    table = pd.DataFrame({"reference_pct": ref, "ours_pct": mine}).dropna()
    table["error_pp"] = table["ours_pct"] - table["reference_pct"]
    mae = float(table["error_pp"].abs().mean()) if len(table) else float("nan")
    return table.rename_axis("year").reset_index(), mae
