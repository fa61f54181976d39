"""The restoration scenario (SCIENCE.md §4, paper §5.2): land cover reallocated by suitability, hierarchy
Forest > Grassland > Cropland, and RUSLE rerun on the optimised map.

Rules (thresholds and the slope unit in :class:`~lpqlc.config.science.ScenarioConfig`; docs/scenario.md
says where each comes from and which readings are interpretations):

- forest-suitable: existing forest; grassland or bare land with annual precipitation > 450 mm and
  elevation < 4000 m;
- cropland-suitable: existing cropland on slopes < 15, or 15 ≤ slope < 25 where silt < 45 %; bare land
  with precipitation > 350 mm, elevation < 3000 m and slope < 15; cropland failing these goes to forest
  where the forest climate holds (precipitation > 450 mm, elevation < 4000 m), else to grassland;
- grassland-suitable: existing grassland; cropland or bare land with precipitation > 250 mm not
  suitable for forest or cropland;
- every other class, nodata, and any pixel lacking one of the inputs is left as it is.

Everything here is elementwise or a chunk-wise reduction on Dask-backed inputs; the only compute point
is :func:`class_fvc_medians` (a small histogram table).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from lpqlc.config.science import RusleConfig, ScenarioConfig
from lpqlc.erosion import c_factor, p_factor, rusle

__all__ = [
    "optimise_landcover",
    "class_fvc_medians",
    "converted_fvc",
    "scenario_erosion",
    "reallocation_counts",
]


def _optimise_block(
    lc: np.ndarray,
    precip: np.ndarray,
    elev: np.ndarray,
    slope_deg: np.ndarray,
    silt: np.ndarray,
    cfg: ScenarioConfig,
) -> np.ndarray:
    lc, precip, elev, slope_deg, silt = np.broadcast_arrays(lc, precip, elev, slope_deg, silt)
    out = lc.copy()
    slope = 100.0 * np.tan(np.deg2rad(slope_deg)) if cfg.slope_unit == "percent" else slope_deg
    known = np.isfinite(precip) & np.isfinite(elev) & np.isfinite(slope) & np.isfinite(silt)
    forest_climate = (precip > cfg.forest_min_precip_mm) & (elev < cfg.forest_max_elevation_m)
    grass_climate = precip > cfg.grassland_min_precip_mm
    crop_ok = (slope < cfg.cropland_max_slope) | (
        (slope >= cfg.cropland_max_slope)
        & (slope < cfg.cropland_max_slope_low_silt)
        & (silt < cfg.cropland_low_silt_max_pct)
    )
    bare_crop = (
        (precip > cfg.bare_to_cropland_min_precip_mm)
        & (elev < cfg.bare_to_cropland_max_elevation_m)
        & (slope < cfg.bare_to_cropland_max_slope)
    )
    # grassland → forest where the forest climate holds
    out[known & (lc == cfg.grassland_code) & forest_climate] = cfg.forest_code
    # bare land: forest, else cropland, else grassland, else bare
    bare = known & (lc == cfg.bare_code)
    out[bare & forest_climate] = cfg.forest_code
    out[bare & ~forest_climate & bare_crop] = cfg.cropland_code
    out[bare & ~forest_climate & ~bare_crop & grass_climate] = cfg.grassland_code
    # cropland kept where suitable; else forest, else grassland
    failing = known & (lc == cfg.cropland_code) & ~crop_ok
    out[failing & forest_climate] = cfg.forest_code
    to_grass = failing & ~forest_climate
    if cfg.dry_unsuitable_cropland == "keep":
        to_grass &= grass_climate
    out[to_grass] = cfg.grassland_code
    return out


def optimise_landcover(
    landcover: xr.DataArray,
    precip_annual_mm: xr.DataArray,
    elevation_m: xr.DataArray,
    slope: xr.DataArray,
    silt_pct: xr.DataArray,
    cfg: ScenarioConfig = ScenarioConfig(),
) -> xr.DataArray:
    """The optimised land cover (class codes, the dtype of ``landcover``), same shape as the inputs.

    ``landcover``: class codes (ESA WorldCover; 0 nodata) (y, x); ``precip_annual_mm``: annual
    precipitation, mm; ``elevation_m``: m; ``slope``: slope in **degrees** (as the erosion job's slope
    layer; converted to percent, 100·tan θ, when ``cfg.slope_unit`` is ``percent``); ``silt_pct``:
    surface silt, %. All on one grid; elementwise and lazy on Dask-backed inputs.
    """
    out = xr.apply_ufunc(
        _optimise_block, landcover, precip_annual_mm, elevation_m, slope, silt_pct,
        kwargs={"cfg": cfg}, dask="parallelized", output_dtypes=[landcover.dtype],
    )  # fmt: skip
    out.attrs = {**landcover.attrs, "long_name": "optimised land cover (restoration scenario)"}
    return out.rename("landcover")


def _targets(cfg: ScenarioConfig) -> tuple[int, ...]:
    return (cfg.forest_code, cfg.grassland_code, cfg.cropland_code)


def _hist_block(lc: np.ndarray, fvc: np.ndarray, regions: np.ndarray, targets: np.ndarray, n_regions: int,
                bins: int) -> np.ndarray:  # fmt: skip
    lut = np.full(256, -1, np.int64)
    lut[targets] = np.arange(len(targets))
    t = lut[lc.astype(np.intp)]
    reg = regions.astype(np.int64)
    ok = (t >= 0) & np.isfinite(fvc) & (reg < n_regions)
    fb = np.clip((np.nan_to_num(fvc) * bins).astype(np.int64), 0, bins - 1)
    idx = ((reg * len(targets) + t) * bins + fb)[ok]
    return np.bincount(idx, minlength=n_regions * len(targets) * bins)[None, None, :]


def class_fvc_medians(landcover: xr.DataArray, fvc: xr.DataArray, regions: xr.DataArray, n_regions: int,
                      cfg: ScenarioConfig = ScenarioConfig()) -> np.ndarray:  # fmt: skip
    """Median FVC (0–1) of each target class (forest, grassland, cropland) per subregion code, from a
    histogram of ``cfg.median_bins`` bins: the centre of the bin holding the (lower) median, so
    within half a bin of it.

    ``landcover`` (y, x) class codes; ``fvc`` (y, x) 0–1; ``regions`` (y, x) subregion codes
    0 … ``n_regions`` − 1 (0: outside every subregion). Returns a (256, 256) float32 table indexed
    [region, class code]: NaN for classes that are not targets; a (region, class) with no pixel takes
    the class's median over all regions (NaN if the class is absent everywhere).

    This is a compute point: one chunk-wise pass (a bincount per block, summed), small result.
    A hand-written histogram because an exact median per group would need the whole AOI in memory.
    """
    targets = np.asarray(_targets(cfg))
    bins = cfg.median_bins
    lc, f, reg = (
        a.data if isinstance(a.data, da.Array) else da.from_array(np.asarray(a.data))
        for a in (landcover, fvc, regions)
    )
    lc, f, reg = da.broadcast_arrays(lc, f, reg)
    chunks = lc.chunks
    f, reg = f.rechunk(chunks), reg.rechunk(chunks)
    nb = n_regions * len(targets) * bins
    counts = da.map_blocks(_hist_block, lc, f, reg, targets=targets, n_regions=n_regions, bins=bins,
                           new_axis=2, chunks=((1,) * len(chunks[0]), (1,) * len(chunks[1]), (nb,)),
                           dtype=np.int64).sum(axis=(0, 1))  # fmt: skip
    hist = np.asarray(counts.compute()).reshape(n_regions, len(targets), bins)
    table = np.full((256, 256), np.nan, np.float32)
    centres = (np.arange(bins) + 0.5) / bins

    def median(h: np.ndarray) -> float:
        n = h.sum()
        if n == 0:
            return float("nan")
        return float(centres[np.searchsorted(np.cumsum(h), n / 2.0)])

    for j, code in enumerate(targets):
        overall = median(hist[:, j].sum(axis=0))
        table[:, code] = overall
        for r in range(n_regions):
            m = median(hist[r, j])
            if np.isfinite(m):
                table[r, code] = m
    return table


def _converted_fvc_block(base: np.ndarray, scen: np.ndarray, fvc: np.ndarray, regions: np.ndarray,
                         table: np.ndarray) -> np.ndarray:  # fmt: skip
    base, scen, fvc, regions = np.broadcast_arrays(base, scen, fvc, regions)
    out = fvc.astype(np.float32, copy=True)
    conv = base != scen
    v = table[np.minimum(regions[conv].astype(np.intp), 255), scen[conv].astype(np.intp)]
    out[conv] = np.where(np.isfinite(v), v, out[conv])
    return out


def converted_fvc(baseline: xr.DataArray, scenario: xr.DataArray, fvc: xr.DataArray, regions: xr.DataArray,
                  medians: np.ndarray | None) -> xr.DataArray:  # fmt: skip
    """FVC (0–1, float32) for the scenario's C: the pixel's own where the class did not change; where it
    did, ``medians[region, new class]`` (:func:`class_fvc_medians`), or the pixel's own FVC where that
    is NaN or ``medians`` is None (``converted_fvc: pixel``). Elementwise, lazy."""
    if medians is None:
        return fvc.astype(np.float32)
    out = xr.apply_ufunc(_converted_fvc_block, baseline, scenario, fvc, regions, kwargs={"table": medians},
                         dask="parallelized", output_dtypes=[np.float32])  # fmt: skip
    return out.rename("fvc")


def scenario_erosion(
    baseline: xr.DataArray,
    scenario: xr.DataArray,
    fvc: xr.DataArray,
    r: xr.DataArray,
    k: xr.DataArray,
    ls: xr.DataArray,
    slope_deg: xr.DataArray,
    regions: xr.DataArray,
    medians: np.ndarray | None,
    rusle_cfg: RusleConfig = RusleConfig(),
    cfg: ScenarioConfig = ScenarioConfig(),
) -> xr.Dataset:
    """Soil loss before and after the reallocation, same R, K, LS and P rules, lazy.

    ``baseline``/``scenario`` (y, x) class codes; ``fvc`` and ``r`` (quarter, y, x) with ``YYYYQn``
    labels (one quarter, or the four of a year for ``cfg.period == "year"``); ``k``, ``ls``,
    ``slope_deg``, ``regions`` (y, x). ``medians``: see :func:`converted_fvc` (one table, or a list
    of tables per quarter via a leading axis). Returns ``erosion_baseline`` and ``erosion`` (y, x),
    t/(hm²·a) for a year, t/(hm²·q) for a quarter, computed with :func:`lpqlc.erosion.rusle`.
    """
    quarters = [str(q) for q in fvc["quarter"].values]
    tables = [None] * len(quarters) if medians is None else list(np.reshape(medians, (-1, 256, 256)))
    if len(tables) != len(quarters):
        raise ValueError(f"{len(tables)} median tables for {len(quarters)} quarters")
    fvc_s = xr.concat([converted_fvc(baseline, scenario, fvc.sel(quarter=q), regions, t)
                       for q, t in zip(quarters, tables, strict=True)], "quarter")  # fmt: skip
    fvc_s = fvc_s.assign_coords(quarter=quarters)
    out = {}
    for name, lc, f in (("erosion_baseline", baseline, fvc), ("erosion", scenario, fvc_s)):
        ds = rusle(r, k, ls, c_factor(lc, f, rusle_cfg.c), p_factor(lc, slope_deg, rusle_cfg.p))
        if cfg.period == "year":
            if ds["a_annual"].sizes["year"] != 1:
                raise ValueError(f"a year needs its four quarters, got {quarters}")
            a = ds["a_annual"].isel(year=0, drop=True)
        else:
            if len(quarters) != 1:
                raise ValueError(f"period 'quarter' takes one quarter, got {quarters}")
            a = ds["a_quarter"].isel(quarter=0, drop=True)
        out[name] = a.astype(np.float32)
    return xr.Dataset(out)


def reallocation_counts(baseline: np.ndarray, scenario: np.ndarray, codes: list[int]) -> np.ndarray:
    """(len(codes) × len(codes)) pixel counts from class ``codes[i]`` (rows) to ``codes[j]`` (columns)."""
    lut = np.full(256, -1, np.int64)
    lut[codes] = np.arange(len(codes))
    a, b = lut[baseline.astype(np.intp)], lut[scenario.astype(np.intp)]
    ok = (a >= 0) & (b >= 0)
    n = len(codes)
    return np.bincount(a[ok] * n + b[ok], minlength=n * n).reshape(n, n)
