"""RUSLE factors against SCIENCE.md §3: worked examples, every table edge, and a real DEM."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lpqlc.config.science import CFactorConfig, GradesConfig, LSFactorConfig, PFactorConfig, RFactorConfig
from lpqlc.erosion import (
    c_factor,
    erosion_grade,
    k_epic,
    k_factor,
    ls_factor,
    p_factor,
    r_annual,
    r_factor,
    r_half_months,
    rusle,
    s_factor,
    slope_degrees,
)
from lpqlc.erosion.soil import openlandmap_oc_percent

from .test_composite import CountingScheduler


def _da(values: list[float] | np.ndarray, dtype: type = np.float64) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=dtype), dims="i")


# ---------------------------------------------------------------------------------------------- K
def test_k_worked_example_loam() -> None:
    assert k_epic(40.0, 40.0, 20.0, 1.0) == pytest.approx(0.295, abs=5e-4)
    assert k_factor(40.0, 40.0, 20.0, 1.0) == pytest.approx((-0.01383 + 0.51575 * k_epic(40.0, 40.0, 20.0, 1.0)) * 0.1317)


def test_k_guards_against_the_common_bugs() -> None:
    k = k_epic(40.0, 40.0, 20.0, 1.0)
    assert k_epic(40.0, 40.0, 20.0, 1.724) < k  # organic matter fed as carbon lowers K: convert first
    from lpqlc.config.science import KFactorConfig

    om = k_factor(40.0, 40.0, 20.0, 1.724, KFactorConfig(carbon_kind="organic_matter"))
    assert om == pytest.approx(k_factor(40.0, 40.0, 20.0, 1.0))
    assert openlandmap_oc_percent(2) == pytest.approx(1.0)  # 2 × 5 g/kg = 10 g/kg = 1 %
    lazy = k_factor(_da([40.0]).chunk(), _da([40.0]).chunk(), _da([20.0]).chunk(), _da([1.0]).chunk())
    assert lazy.chunks is not None and float(lazy.compute()[0]) == pytest.approx(k_factor(40.0, 40.0, 20.0, 1.0))


# ---------------------------------------------------------------------------------------------- C
def test_c_table_at_every_fvc_edge() -> None:
    cfg = CFactorConfig()
    edges = [0.0, 0.0999, 0.1, 0.2999, 0.3, 0.4999, 0.5, 0.6999, 0.7, 0.8999, 0.9, 1.0]
    expect_bin = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    for code, row in cfg.table.items():
        c = c_factor(_da([code] * len(edges), np.uint8), _da(edges))
        assert np.allclose(c.values, [row[b] for b in expect_bin]), code
    assert c_factor(_da([10], np.uint8), _da([0.1])).item() == pytest.approx(0.080)
    assert c_factor(_da([30], np.uint8), _da([0.9])).item() == pytest.approx(0.011)


def test_cropland_c_formula_and_clip() -> None:
    fvc = [0.0, 0.01, 0.049, 0.05, 0.2, 0.5, 1.0]
    c = c_factor(_da([40] * len(fvc), np.uint8), _da(fvc)).values
    assert np.allclose(c[:3], 1.0)  # FVC ≤ 0.049 → C ≥ 1, clipped
    assert c[3] == pytest.approx(0.221 - 0.595 * np.log10(0.05), rel=1e-6) and c[3] < 1
    assert c[4] == pytest.approx(0.221 - 0.595 * np.log10(0.2), rel=1e-6)
    assert c[6] == pytest.approx(0.221, rel=1e-6)
    # the exact crossing: C = 1 at FVC = 10^((0.221 − 1)/0.595) ≈ 0.0492
    edge = 10 ** ((0.221 - 1) / 0.595)
    assert 0.049 < edge < 0.0495


def test_fixed_c_classes_nodata_and_missing_fvc() -> None:
    codes = [50, 60, 80, 90, 0, 70, 10]
    c = c_factor(_da(codes, np.uint8), _da([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, np.nan])).values
    assert c[:4].tolist() == pytest.approx([0.01, 0.7, 0.0, 0.0])
    assert np.isnan(c[4:]).all()  # nodata, an unmapped code, forest without FVC


# ---------------------------------------------------------------------------------------------- P
def test_p_table_at_every_slope_edge() -> None:
    cfg = PFactorConfig()
    slopes = [0.0, 4.999, 5.0, 6.999, 7.0, 8.999, 9.0, 11.999, 12.0, 19.999, 20.0, 23.999, 24.0, 60.0]
    expect = [0.49, 0.49, 0.59, 0.59, 0.65, 0.65, 0.70, 0.70, 0.81, 0.81, 0.95, 0.95, 1.0, 1.0]
    p = p_factor(_da([40] * len(slopes), np.uint8), _da(slopes)).values
    assert np.allclose(p, expect)
    for code, value in cfg.by_class.items():
        assert p_factor(_da([code], np.uint8), _da([30.0])).item() == pytest.approx(value)
    assert np.isnan(p_factor(_da([0], np.uint8), _da([3.0])).item())


# ---------------------------------------------------------------------------------------------- S
def test_s_pieces_at_5_and_10_degrees() -> None:
    sin = np.sin(np.deg2rad([4.999, 5.0, 9.999, 10.0, 30.0]))
    s = s_factor(np.array([4.999, 5.0, 9.999, 10.0, 30.0]))
    assert s[0] == pytest.approx(10.8 * sin[0] + 0.03)
    assert s[1] == pytest.approx(16.8 * sin[1] - 0.50)
    assert s[2] == pytest.approx(16.8 * sin[2] - 0.50)
    assert s[3] == pytest.approx(21.91 * sin[3] - 0.96)
    assert s[4] == pytest.approx(21.91 * sin[4] - 0.96)
    assert s_factor(0.0) == pytest.approx(0.03)
    lazy = s_factor(_da([5.0, 10.0]).chunk())
    assert lazy.chunks is not None and np.allclose(lazy.values, s[[1, 3]])


# ---------------------------------------------------------------------------------------------- R
def test_r_threshold_half_months_and_seasons() -> None:
    cfg = RFactorConfig()
    time = pd.date_range("2021-01-01", "2021-12-31", freq="D")
    p = np.zeros(time.size)

    def put(day: str, mm: float) -> None:
        p[time.get_loc(pd.Timestamp(day))] = mm

    put("2021-01-10", 9.99)  # below the threshold: not erosive
    put("2021-01-20", 10.0)  # at the threshold: erosive, cold season, 2nd half of January
    put("2021-07-15", 30.0)  # warm, 1st half of July
    put("2021-07-16", 20.0)  # warm, 2nd half of July
    put("2021-10-01", 12.0)  # cold again (October)
    precip = xr.DataArray(p, dims="time", coords={"time": time})
    half = r_half_months(precip, cfg)
    assert half.sizes["half_month"] == 24
    h = half.sel(year=2021).values
    assert h[0] == 0.0
    assert h[1] == pytest.approx(0.3101 * 10.0**1.7265)
    assert h[12] == pytest.approx(0.3937 * 30.0**1.7265) and h[13] == pytest.approx(0.3937 * 20.0**1.7265)
    assert h[18] == pytest.approx(0.3101 * 12.0**1.7265)
    rq = r_factor(precip, cfg)
    assert list(rq["quarter"].values) == ["2021Q1", "2021Q2", "2021Q3", "2021Q4"]
    assert rq.sel(quarter="2021Q3").item() == pytest.approx(h[12:18].sum())
    assert float(rq.sum()) == pytest.approx(float(h.sum()))
    assert r_annual(rq).sel(year=2021).item() == pytest.approx(float(h.sum()))
    # a 12 mm threshold (Zhang et al. 2002) drops the 10 mm day
    assert r_factor(precip, RFactorConfig(threshold_mm=12.0)).sel(quarter="2021Q1").item() == 0.0


def test_missing_rain_is_never_a_dry_day() -> None:
    time = pd.date_range("2021-01-01", "2021-12-31", freq="D")
    p = np.zeros((time.size, 2))
    p[time.get_loc(pd.Timestamp("2021-07-05"))] = 30.0  # a storm in the 1st half of July, both pixels
    p[time.get_loc(pd.Timestamp("2021-07-10")), 1] = np.nan  # pixel 1 misses a day of that half-month
    precip = xr.DataArray(p, dims=("time", "i"), coords={"time": time})
    storm = 0.3937 * 30.0**1.7265
    half = r_half_months(precip).sel(year=2021)
    assert half.sel(half_month=12, i=0).item() == pytest.approx(storm)
    assert np.isnan(half.sel(half_month=12, i=1).item())  # not the dry-day value 0, nor the storm's alone
    assert np.isfinite(half.sel(i=1).drop_sel(half_month=12)).all()  # only that half-month
    rq = r_factor(precip)
    assert rq.sel(quarter="2021Q3", i=0).item() == pytest.approx(storm)
    assert np.isnan(rq.sel(quarter="2021Q3", i=1).item()) and np.isfinite(rq.sel(quarter="2021Q2", i=1).item())
    assert np.isnan(r_annual(rq).sel(year=2021, i=1).item())
    # the documented fills: "dry" reads the gap as a dry day; "scale" scales the observed days
    dry = r_factor(precip, RFactorConfig(gap_policy="dry")).sel(quarter="2021Q3", i=1).item()
    assert dry == pytest.approx(storm)
    scaled = r_half_months(precip, RFactorConfig(gap_policy="scale")).sel(year=2021, half_month=12, i=1).item()
    assert scaled == pytest.approx(storm * 15 / 14)
    # "scale" gives up when too little of the half-month is observed
    p2 = p.copy()
    p2[time.get_loc(pd.Timestamp("2021-07-01")):time.get_loc(pd.Timestamp("2021-07-05")), 1] = np.nan
    sparse = xr.DataArray(p2, dims=("time", "i"), coords={"time": time})
    assert np.isnan(r_half_months(sparse, RFactorConfig(gap_policy="scale")).sel(year=2021, half_month=12, i=1).item())
    # lazy input stays lazy and gives the same
    lazy = r_factor(precip.chunk({"time": 100}))
    assert lazy.chunks is not None and np.allclose(lazy.values, rq.values, equal_nan=True)


# ------------------------------------------------------------------------------------------ grades
def test_grades_at_every_threshold() -> None:
    cfg = GradesConfig()
    a = [0.0, 9.999, 10.0, 24.999, 25.0, 49.999, 50.0, 79.999, 80.0, 149.999, 150.0, 1e4, np.nan]
    g = erosion_grade(_da(a), cfg).values
    assert g.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 0]
    assert erosion_grade(_da(a)).attrs["flag_meanings"].split() == list(cfg.names)


# ---------------------------------------------------------------------------------- RUSLE assembly
def _quarterly(rng: np.random.Generator, quarters: list[str], shape: tuple[int, int]) -> xr.DataArray:
    return xr.DataArray(rng.uniform(0, 1, (len(quarters), *shape)), dims=("quarter", "y", "x"),
                        coords={"quarter": quarters})  # fmt: skip


def test_quarterly_sums_equal_annual_and_graph_is_lazy() -> None:
    rng = np.random.default_rng(1)
    quarters = [f"{y}Q{q}" for y in (2021, 2022) for q in range(1, 5)] + ["2023Q1"]
    shape = (40, 30)
    r = _quarterly(rng, quarters, shape) * 500
    c = _quarterly(rng, quarters, shape)
    p = _quarterly(rng, quarters, shape)
    k = xr.DataArray(rng.uniform(0.01, 0.05, shape), dims=("y", "x"))
    ls = xr.DataArray(rng.uniform(0, 20, shape), dims=("y", "x"))
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        out = rusle(*(v.chunk({"y": 16, "x": 16}) for v in (r, k, ls, c, p)))
        grade = erosion_grade(out.a_annual)
    assert counter.calls == 0 and out.a_quarter.chunks is not None and grade.chunks is not None
    got = out.compute()
    assert list(got.a_annual["year"].values) == [2021, 2022]  # 2023 lacks three quarters
    for year in (2021, 2022):
        qs = [q for q in quarters if q.startswith(str(year))]
        assert np.allclose(got.a_quarter.sel(quarter=qs).sum("quarter"), got.a_annual.sel(year=year), rtol=1e-5)
    assert np.allclose(got.a_quarter, (r * k * ls * c * p).values, rtol=1e-5)


# ------------------------------------------------------------------------------- real DEM (matplotlib)
def _jacksboro() -> xr.DataArray:
    import matplotlib
    from odc.geo.xr import assign_crs

    path = Path(matplotlib.get_data_path()) / "sample_data" / "jacksboro_fault_dem.npz"
    with np.load(path) as npz:
        z = npz["elevation"].astype(np.float64)
        xmin, xmax, ymin, ymax = (float(npz[k]) for k in ("xmin", "xmax", "ymin", "ymax"))
        dx, dy = float(npz["dx"]), float(npz["dy"])
    ymin, ymax = sorted((ymin, ymax))  # the file swaps them
    ny, nx = z.shape
    ys = ymax - dy * (np.arange(ny) + 0.5)
    xs = xmin + dx * (np.arange(nx) + 0.5)
    # row 0 of the array is the southern edge (imshow origin 'lower'): flip to north-up
    dem = xr.DataArray(z[::-1], dims=("y", "x"), coords={"y": ys, "x": xs})
    return assign_crs(dem, "EPSG:4326")


def test_real_dem_slope_s_and_ls_are_sane() -> None:
    dem = _jacksboro()
    slope = slope_degrees(dem)
    assert float(slope.min()) >= 0 and 10 < float(slope.max()) < 70 and float(slope.mean()) > 1
    assert np.allclose(slope_degrees(dem.chunk({"y": 100, "x": 100})).values, slope.values)
    s = s_factor(slope)
    order = np.argsort(slope.values.ravel())
    assert np.all(np.diff(s.values.ravel()[order]) >= -0.02)  # S rises with slope (but for Liu's 5°/10° steps)
    ls = ls_factor(dem, LSFactorConfig())
    assert ls.shape == dem.shape and bool(np.isfinite(ls).all()) and float(ls.min()) >= 0
    flat, steep = slope.values < 2, slope.values > 15
    assert float(np.median(ls.values[steep])) > 5 * float(np.median(ls.values[flat]))
    capped = ls_factor(dem, LSFactorConfig(slope_length_cap_m=60.0))
    assert float(capped.max()) <= float(ls.max()) and float(capped.mean()) < float(ls.mean())
