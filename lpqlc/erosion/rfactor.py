"""Rainfall erosivity R by the half-month daily model (SCIENCE.md §3; Xie et al. 2016).

R_k = α·Σ_j P_j^β over the erosive days j (P_j ≥ threshold) of half-month k (days 1–15 and 16–end of
each month, 24 a year); α is the warm-season value in May–September, the cold-season one otherwise.
Quarterly R = the sum of its six half-months, annual R = the sum of all 24. Units: P in mm/day,
R in MJ·mm/(hm²·h) per period. A missing day (NaN) is never read as a dry day unless the configured
gap policy (``RFactorConfig.gap_policy``, docs/erosion.md) says so: by default its half-month is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from lpqlc.config.science import RFactorConfig

__all__ = ["half_month_index", "r_half_months", "r_factor", "r_annual"]


def half_month_index(time: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """0–23 half-month of the year for each date: 2·(month − 1) + (day > 15)."""
    t = pd.DatetimeIndex(time)
    return np.asarray(2 * (t.month - 1) + (t.day > 15), dtype=np.int64)


def _erosive(precip: xr.DataArray, cfg: RFactorConfig) -> xr.DataArray:
    """α·P^β on erosive days, 0 on the others; NaN (a missing day) stays NaN."""
    t = pd.DatetimeIndex(precip["time"].values)
    alpha = np.where(np.isin(t.month, cfg.warm_months), cfg.alpha_warm, cfg.alpha_cold)
    a = xr.DataArray(alpha, dims="time", coords={"time": precip["time"]})
    p = precip.where((precip >= cfg.threshold_mm) | precip.isnull(), 0.0)
    return (p**cfg.beta) * a


def _half_month_sums(precip: xr.DataArray, cfg: RFactorConfig) -> xr.DataArray:
    """R per half-month present, dim ``period`` (labels ``YYYY-HH``, HH 0–23), with the gap policy applied.

    ``cfg.gap_policy``: ``"nan"`` — a half-month with a missing day is NaN; ``"dry"`` — missing days
    count as dry (no erosive rain); ``"scale"`` — the observed days' sum × days / observed days, when at
    least ``cfg.gap_min_observed`` of the half-month's days are observed, else NaN.
    """
    t = pd.DatetimeIndex(precip["time"].values)
    keys = np.array([f"{y}-{h:02d}" for y, h in zip(t.year, half_month_index(t), strict=True)])
    e = _erosive(precip, cfg).assign_coords(period=("time", keys))
    if cfg.gap_policy == "nan":
        return e.groupby("period").sum("time", skipna=False)
    total = e.groupby("period").sum("time", skipna=True)
    if cfg.gap_policy == "dry":
        return total
    missing = precip.isnull().assign_coords(period=("time", keys)).groupby("period").sum("time")
    days = xr.DataArray(pd.Series(keys).value_counts().reindex(total["period"].values).values.astype(np.float64),
                        dims="period", coords={"period": total["period"]})  # fmt: skip
    observed = days - missing
    return (total * days / observed).where(observed >= cfg.gap_min_observed * days)


def r_half_months(precip: xr.DataArray, cfg: RFactorConfig = RFactorConfig()) -> xr.DataArray:
    """R per year and half-month, dims (year, half_month, …) from daily precipitation (time, …) in mm.

    Missing days (NaN) follow ``cfg.gap_policy`` (default: the half-month is NaN). Lazy when ``precip``
    is Dask-backed.
    """
    sums = _half_month_sums(precip, cfg)
    labels = sums["period"].values
    years = np.array([int(k[:4]) for k in labels])
    halves = np.array([int(k[5:]) for k in labels])
    idx = pd.MultiIndex.from_arrays([years, halves], names=["year", "half_month"])
    out = sums.assign_coords(xr.Coordinates.from_pandas_multiindex(idx, "period")).unstack("period")
    out = out.transpose("year", "half_month", ...)
    out.attrs.update(units="MJ mm hm-2 h-1 per half-month", long_name="rainfall erosivity")
    return out


def r_factor(precip: xr.DataArray, cfg: RFactorConfig = RFactorConfig()) -> xr.DataArray:
    """Quarterly R, dims (quarter, …): coordinate ``quarter`` holds labels like ``2021Q3``.

    Each quarter's R is the sum of its six half-months (NaN if one is NaN under the gap policy).
    Units MJ·mm/(hm²·h·q).
    """
    sums = _half_month_sums(precip, cfg)
    labels = np.array([f"{k[:4]}Q{int(k[5:]) // 6 + 1}" for k in sums["period"].values])
    out = sums.assign_coords(quarter=("period", labels)).groupby("quarter").sum("period", skipna=False)
    out.attrs.update(units="MJ mm hm-2 h-1 q-1", long_name="quarterly rainfall erosivity")
    return out


def r_annual(r_quarterly: xr.DataArray) -> xr.DataArray:
    """Annual R (year, …) as the sum of the four quarters of each year present."""
    years = np.array([int(str(q)[:4]) for q in r_quarterly["quarter"].values])
    out = r_quarterly.assign_coords(year=("quarter", years)).groupby("year").sum("quarter", skipna=False)
    out.attrs.update(units="MJ mm hm-2 h-1 a-1", long_name="annual rainfall erosivity")
    return out
