"""A = R·K·LS·C·P per quarter and the annual sum, and the SL 190-2007 erosion grades (SCIENCE.md §3).

Quarterly A in t/(hm²·q), annual A in t/(hm²·a) (the sum of a year's four quarters; a year lacking a
quarter gets no annual value). Grades: 1 slight (< 10), 2 light (10–25), 3 moderate (25–50),
4 strong (50–80), 5 severe (80–150), 6 extreme (≥ 150); 0 = nodata.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lpqlc.config.science import GradesConfig

__all__ = ["rusle", "annual_erosion", "erosion_grade", "quarter_years"]


def quarter_years(quarters: xr.DataArray | np.ndarray) -> np.ndarray:
    """Year of each ``YYYYQn`` label."""
    return np.array([int(str(q)[:4]) for q in np.asarray(quarters)])


def rusle(r: xr.DataArray, k: xr.DataArray, ls: xr.DataArray, c: xr.DataArray, p: xr.DataArray) -> xr.Dataset:
    """Quarterly and annual soil loss.

    ``r``: (quarter, y, x) or (quarter,) R in MJ·mm/(hm²·h·q); ``k`` (y, x); ``ls`` (y, x);
    ``c``, ``p``: (quarter, y, x) or (y, x). Returns ``a_quarter`` (quarter, y, x) t/(hm²·q) and
    ``a_annual`` (year, y, x) t/(hm²·a), for the years whose four quarters are all present.
    """
    a_q = (r * (k * ls) * c * p).astype(np.float32, copy=False)
    a_q.attrs.update(units="t hm-2 q-1", long_name="quarterly soil loss (RUSLE)")
    return xr.Dataset({"a_quarter": a_q, "a_annual": annual_erosion(a_q)})


def annual_erosion(a_quarter: xr.DataArray) -> xr.DataArray:
    """Σ of the four quarters of each complete year (year, y, x), t/(hm²·a)."""
    years = quarter_years(a_quarter["quarter"].values)
    complete = [y for y in sorted(set(years)) if (years == y).sum() == 4]
    sums = [a_quarter.isel(quarter=np.flatnonzero(years == y)).sum("quarter", skipna=False) for y in complete]
    if sums:
        out = xr.concat(sums, "year").assign_coords(year=complete).astype(np.float32, copy=False)
    else:
        out = a_quarter.isel(quarter=[]).rename(quarter="year").drop_vars("year", errors="ignore")
        out = out.assign_coords(year=np.array([], dtype=int)).astype(np.float32)
    out.attrs.update(units="t hm-2 a-1", long_name="annual soil loss (RUSLE)")
    return out


def _grade_block(a: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    g = (np.digitize(a, breaks) + 1).astype(np.uint8)
    g[np.isnan(a)] = 0
    return g


def erosion_grade(a: xr.DataArray, cfg: GradesConfig = GradesConfig()) -> xr.DataArray:
    """Grade code (uint8) of annual A: 1 … len(names), 0 where A is NaN."""
    out = xr.apply_ufunc(_grade_block, a, kwargs={"breaks": np.asarray(cfg.breaks)}, dask="parallelized",
                         output_dtypes=[np.uint8])  # fmt: skip
    out.attrs.update(long_name="soil erosion grade (SL 190-2007)", flag_values=list(range(1, len(cfg.names) + 1)),
                     flag_meanings=" ".join(cfg.names))  # fmt: skip
    return out.rename("grade")
