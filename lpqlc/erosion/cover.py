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


def _edges(breaks: tuple[float, ...]) -> np.ndarray:
    """Bin edges whose np.digitize puts NaN in a bin of its own (index len(breaks) + 1)."""
    return np.asarray((*breaks, np.inf))


def _c_table(cfg: CFactorConfig) -> np.ndarray:
    """(256 × (bins + 1)) C by class code and FVC bin; the last column is FVC = NaN (NaN for the
    classes whose C depends on FVC, the fixed value for the others); NaN rows: no rule."""
    nb = len(cfg.fvc_breaks) + 1
    table = np.full((256, nb + 1), np.nan, np.float32)
    for code, row in cfg.table.items():
        table[code, :nb] = row
    for code, value in cfg.fixed.items():
        table[code] = value
    return table


def _c_block(lc: np.ndarray, fvc: np.ndarray, table: np.ndarray, edges: np.ndarray, crop_code: int,
             a: float, b: float) -> np.ndarray:  # fmt: skip
    code, fvc = np.broadcast_arrays(lc.astype(np.intp, copy=False), fvc)
    c = table[code, np.digitize(fvc, edges)]
    crop = code == crop_code
    with np.errstate(divide="ignore", invalid="ignore"):
        c[crop] = np.clip(a - b * np.log10(fvc[crop]), 0.0, 1.0)
    return c


def c_factor(landcover: xr.DataArray, fvc: xr.DataArray, cfg: CFactorConfig = CFactorConfig()) -> xr.DataArray:
    """C (0–1, float32) per pixel from the class code (uint8) and FVC (0–1); same shape as the inputs.

    One lookup per pixel (class × FVC bin table), the cropland formula where the class is cropland.
    """
    out = xr.apply_ufunc(
        _c_block, landcover, fvc, dask="parallelized", output_dtypes=[np.float32],
        kwargs={"table": _c_table(cfg), "edges": _edges(cfg.fvc_breaks), "crop_code": cfg.cropland_code,
                "a": cfg.cropland_a, "b": cfg.cropland_b},
    )  # fmt: skip
    out.attrs.update(units="1", long_name="cover-management factor C")
    return out.rename("c")


def _p_block(lc: np.ndarray, slope: np.ndarray, by_class: np.ndarray, crop_code: int, edges: np.ndarray,
             crop_values: np.ndarray) -> np.ndarray:  # fmt: skip
    code, slope = np.broadcast_arrays(lc.astype(np.intp, copy=False), slope)
    p = by_class[code]
    crop = code == crop_code
    p[crop] = crop_values[np.digitize(slope[crop], edges)]  # the last value (NaN) is NaN slope's
    return p


def p_factor(landcover: xr.DataArray, slope_deg: xr.DataArray, cfg: PFactorConfig = PFactorConfig()) -> xr.DataArray:
    """P (0–1, float32) per pixel from the class code (uint8) and slope in degrees."""
    by_class = np.full(256, np.nan, np.float32)
    for code, value in cfg.by_class.items():
        by_class[code] = value
    out = xr.apply_ufunc(
        _p_block, landcover, slope_deg, dask="parallelized", output_dtypes=[np.float32],
        kwargs={"by_class": by_class, "crop_code": cfg.cropland_code, "edges": _edges(cfg.cropland_slope_breaks_deg),
                "crop_values": np.asarray((*cfg.cropland_values, np.nan), np.float32)},
    )  # fmt: skip
    out.attrs.update(units="1", long_name="support-practice factor P")
    return out.rename("p")
