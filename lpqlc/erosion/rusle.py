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
    a_q = (r * k * ls * c * p).astype(np.float32)
    a_q.attrs.update(units="t hm-2 q-1", long_name="quarterly soil loss (RUSLE)")
    return xr.Dataset({"a_quarter": a_q, "a_annual": annual_erosion(a_q)})


def annual_erosion(a_quarter: xr.DataArray) -> xr.DataArray:
    """Σ of the four quarters of each complete year (year, y, x), t/(hm²·a)."""
    years = quarter_years(a_quarter["quarter"].values)
    complete = [y for y in sorted(set(years)) if (years == y).sum() == 4]
    a = a_quarter.assign_coords(year=("quarter", years))
    a = a.isel(quarter=np.isin(years, complete))
    out = a.groupby("year").sum("quarter", skipna=False).astype(np.float32)
    out.attrs.update(units="t hm-2 a-1", long_name="annual soil loss (RUSLE)")
    return out


def erosion_grade(a: xr.DataArray, cfg: GradesConfig = GradesConfig()) -> xr.DataArray:
    """Grade code (uint8) of annual A: 1 … len(names), 0 where A is NaN."""
    g = xr.apply_ufunc(np.digitize, a, kwargs={"bins": np.asarray(cfg.breaks)}, dask="parallelized",
                       output_dtypes=[np.int64]) + 1  # fmt: skip
    out = xr.where(a.isnull(), 0, g).astype(np.uint8)
    out.attrs.update(long_name="soil erosion grade (SL 190-2007)", flag_values=list(range(1, len(cfg.names) + 1)),
                     flag_meanings=" ".join(cfg.names))  # fmt: skip
    return out.rename("grade")
