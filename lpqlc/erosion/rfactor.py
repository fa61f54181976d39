"""Rainfall erosivity R by the half-month daily model (SCIENCE.md §3; Xie et al. 2016).

R_k = α·Σ_j P_j^β over the erosive days j (P_j ≥ threshold) of half-month k (days 1–15 and 16–end of
each month, 24 a year); α is the warm-season value in May–September, the cold-season one otherwise.
Quarterly R = the sum of its six half-months, annual R = the sum of all 24. Units: P in mm/day,
R in MJ·mm/(hm²·h) per period.
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
    t = pd.DatetimeIndex(precip["time"].values)
    alpha = np.where(np.isin(t.month, cfg.warm_months), cfg.alpha_warm, cfg.alpha_cold)
    a = xr.DataArray(alpha, dims="time", coords={"time": precip["time"]})
    p = precip.where(precip >= cfg.threshold_mm, 0.0)
    return (p**cfg.beta) * a


def r_half_months(precip: xr.DataArray, cfg: RFactorConfig = RFactorConfig()) -> xr.DataArray:
    """R per year and half-month, dims (year, half_month, …) from daily precipitation (time, …) in mm.

    NaN precipitation (nodata) stays NaN in its period. Lazy when ``precip`` is Dask-backed.
    """
    e = _erosive(precip, cfg)
    t = pd.DatetimeIndex(precip["time"].values)
    e = e.assign_coords(year=("time", t.year.values), half_month=("time", half_month_index(t)))
    out = e.groupby(["year", "half_month"]).sum("time", skipna=False)
    out.attrs.update(units="MJ mm hm-2 h-1 per half-month", long_name="rainfall erosivity")
    return out


def r_factor(precip: xr.DataArray, cfg: RFactorConfig = RFactorConfig()) -> xr.DataArray:
    """Quarterly R, dims (quarter, …): coordinate ``quarter`` holds labels like ``2021Q3``.

    Each quarter's R is the sum of its six half-months. Units MJ·mm/(hm²·h·q).
    """
    e = _erosive(precip, cfg)
    t = pd.DatetimeIndex(precip["time"].values)
    labels = np.array([f"{y}Q{(m - 1) // 3 + 1}" for y, m in zip(t.year, t.month, strict=True)])
    out = e.assign_coords(quarter=("time", labels)).groupby("quarter").sum("time", skipna=False)
    out.attrs.update(units="MJ mm hm-2 h-1 q-1", long_name="quarterly rainfall erosivity")
    return out


def r_annual(r_quarterly: xr.DataArray) -> xr.DataArray:
    """Annual R (year, …) as the sum of the four quarters of each year present."""
    years = np.array([int(str(q)[:4]) for q in r_quarterly["quarter"].values])
    out = r_quarterly.assign_coords(year=("quarter", years)).groupby("year").sum("quarter", skipna=False)
    out.attrs.update(units="MJ mm hm-2 h-1 a-1", long_name="annual rainfall erosivity")
    return out
