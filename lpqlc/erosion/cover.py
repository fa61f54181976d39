"""Cover-management C and support-practice P from land cover, FVC and slope (SCIENCE.md §3, Tables 1–2).

Land cover holds the ESA WorldCover codes of the 8 classes (0 = nodata). C: forest, shrubland and
grassland by FVC class (Table 1); cropland C = 0.221 − 0.595·log10(FVC) clipped to [0, 1] (so C = 1
for FVC ≤ 0.049); fixed values for built-up, bare land, water and wetland. P: per class, cropland by
slope class (Table 2). Unknown codes and nodata give NaN. Intervals hold their lower bound.
All functions are elementwise and stay lazy on Dask-backed inputs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lpqlc.config.science import CFactorConfig, PFactorConfig

__all__ = ["c_factor", "p_factor", "classify_bins"]


def classify_bins(x: xr.DataArray, breaks: tuple[float, ...]) -> xr.DataArray:
    """Bin index (0 … len(breaks)) of each value: bin i holds breaks[i−1] ≤ x < breaks[i]."""
    return xr.apply_ufunc(np.digitize, x, kwargs={"bins": np.asarray(breaks)}, dask="parallelized",
                          output_dtypes=[np.int64])  # fmt: skip


def _lookup(index: xr.DataArray, values: tuple[float, ...]) -> xr.DataArray:
    table = np.asarray(values, dtype=np.float32)
    return xr.apply_ufunc(lambda i: table[i], index, dask="parallelized", output_dtypes=[np.float32])


def _cropland_c(fvc: np.ndarray, a: float, b: float) -> np.ndarray:
    """C = a − b·log10(FVC) clipped to [0, 1]; FVC = 0 gives 1 (log10 → −∞), NaN stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(a - b * np.log10(fvc), 0.0, 1.0).astype(np.float32)


def c_factor(landcover: xr.DataArray, fvc: xr.DataArray, cfg: CFactorConfig = CFactorConfig()) -> xr.DataArray:
    """C (0–1, float32) per pixel from the class code and FVC (0–1); same shape as the inputs."""
    bins = classify_bins(fvc, cfg.fvc_breaks)
    out = xr.full_like(fvc, np.nan, dtype=np.float32)
    for code, row in cfg.table.items():
        out = xr.where(landcover == code, _lookup(bins, row), out)
    crop = xr.apply_ufunc(_cropland_c, fvc, kwargs={"a": cfg.cropland_a, "b": cfg.cropland_b},
                          dask="parallelized", output_dtypes=[np.float32])  # fmt: skip
    out = xr.where(landcover == cfg.cropland_code, crop, out)
    for code, value in cfg.fixed.items():
        out = xr.where(landcover == code, np.float32(value), out)
    needs_fvc = landcover.isin([*cfg.table, cfg.cropland_code])
    out = xr.where(needs_fvc & fvc.isnull(), np.nan, out).astype(np.float32)
    out.attrs.update(units="1", long_name="cover-management factor C")
    return out.rename("c")


def p_factor(landcover: xr.DataArray, slope_deg: xr.DataArray, cfg: PFactorConfig = PFactorConfig()) -> xr.DataArray:
    """P (0–1, float32) per pixel from the class code and slope in degrees."""
    out = xr.full_like(slope_deg, np.nan, dtype=np.float32)
    for code, value in cfg.by_class.items():
        out = xr.where(landcover == code, np.float32(value), out)
    crop = _lookup(classify_bins(slope_deg, cfg.cropland_slope_breaks_deg), cfg.cropland_values)
    crop = xr.where(slope_deg.isnull(), np.nan, crop)
    out = xr.where(landcover == cfg.cropland_code, crop, out).astype(np.float32)
    out.attrs.update(units="1", long_name="support-practice factor P")
    return out.rename("p")
