"""The scenario's reallocation rules on a hand-built raster, its FVC medians and its erosion graph."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

from lpqlc.analysis.scenario import (
    class_fvc_medians,
    optimise_landcover,
    reallocation_counts,
    scenario_erosion,
)
from lpqlc.config.science import RusleConfig, ScenarioConfig
from lpqlc.erosion import c_factor, p_factor, rusle

from .test_composite import CountingScheduler

F, S, G, C, W, WL = 10, 20, 30, 40, 80, 90
BU, BARE = 50, 60
NAN = float("nan")


def pct(p: float) -> float:
    """Slope in degrees whose percent slope (100·tan θ) is ``p``."""
    return float(np.degrees(np.arctan(p / 100.0)))


# (class, precip mm, elevation m, slope °, silt %, expected with percent thresholds, expected with degrees)
CASES = [
    # forest-suitable
    (F, 100, 5000, 40, 60, F, F),  # existing forest stays
    (G, 451, 3999, 30, 60, F, F),  # grassland above 450 mm, below 4000 m → forest
    (G, 450, 3000, 30, 60, G, G),  # precipitation not > 450
    (G, 500, 4000, 30, 60, G, G),  # elevation not < 4000
    (BARE, 451, 3999, 40, 60, F, F),  # bare land in the forest climate → forest
    # bare land → cropland
    (BARE, 351, 2999, pct(14.9), 60, C, C),
    (BARE, 350, 2999, pct(14.9), 60, G, G),  # precipitation not > 350 → grassland (> 250)
    (BARE, 400, 3000, pct(14.9), 60, G, G),  # elevation not < 3000
    (BARE, 400, 2000, pct(15.1), 60, G, C),  # slope 15.1 % ≥ 15 %; but 8.6° < 15°
    (BARE, 400, 2000, 14.9, 60, G, C),  # 14.9° (26.6 %)
    (BARE, 400, 2000, 15.1, 60, G, G),  # 15.1° in both units
    # bare land → grassland or kept
    (BARE, 251, 2000, 40, 60, G, G),
    (BARE, 250, 2000, 40, 60, BARE, BARE),  # precipitation not > 250
    # cropland
    (C, 600, 1000, pct(14.9), 60, C, C),  # suitable cropland stays, forest climate or not
    (C, 300, 1000, pct(15.1), 44.9, C, C),  # 15–25 % with silt < 45 %
    (C, 300, 1000, pct(15.1), 45, G, C),  # silt not < 45 % → grassland (degrees: 8.6° < 15°)
    (C, 300, 1000, pct(24.9), 44, C, C),
    (C, 451, 3999, pct(25.1), 10, F, C),  # ≥ 25 % → forest where the forest climate holds
    (C, 451, 4000, pct(25.1), 10, G, C),  # ... else grassland
    (C, 300, 1000, 15.1, 44, G, C),  # 15.1° with low silt: degrees keep it
    (C, 300, 1000, 15.1, 45, G, G),  # 15.1° without low silt
    (C, 300, 1000, 24.9, 44, G, C),
    (C, 300, 1000, 25.1, 44, G, G),  # ≥ 25°
    (C, 451, 3999, 25.1, 44, F, F),
    (C, 200, 1000, 40, 60, G, G),  # dry unsuitable cropland: "else grassland" (default)
    # every other class, nodata, missing inputs: left alone
    (S, 600, 1000, 5, 60, S, S),
    (BU, 600, 1000, 5, 60, BU, BU),
    (W, 600, 1000, 5, 60, W, W),
    (WL, 600, 1000, 5, 60, WL, WL),
    (0, 600, 1000, 5, 60, 0, 0),
    (G, NAN, 1000, 5, 60, G, G),
    (C, 300, 1000, 40, NAN, C, C),
]


def _raster(cases: list[tuple]) -> tuple[xr.DataArray, ...]:
    cols = list(zip(*cases, strict=True))
    dims = ("y", "x")

    def arr(values: tuple, dtype: type) -> xr.DataArray:
        return xr.DataArray(np.asarray(values, dtype).reshape(1, -1), dims=dims)

    return (
        arr(cols[0], np.uint8),
        arr(cols[1], np.float32),
        arr(cols[2], np.float32),
        arr(cols[3], np.float32),
        arr(cols[4], np.float32),
        arr(cols[5], np.uint8),
        arr(cols[6], np.uint8),
    )


@pytest.mark.parametrize("unit", ["percent", "degree"])
def test_every_rule_branch_on_a_hand_built_raster(unit: str) -> None:
    lc, precip, elev, slope, silt, want_pct, want_deg = _raster(CASES)
    got = optimise_landcover(lc, precip, elev, slope, silt, ScenarioConfig(slope_unit=unit)).values[0]
    want = (want_pct if unit == "percent" else want_deg).values[0]
    bad = [(i, CASES[i][:5], int(want[i]), int(got[i])) for i in np.flatnonzero(got != want)]
    assert not bad, bad
    assert got.dtype == np.uint8


def test_dry_unsuitable_cropland_can_be_kept() -> None:
    lc, precip, elev, slope, silt, *_ = _raster([(C, 200, 1000, 40, 60, C, C), (C, 251, 1000, 40, 60, G, G)])
    got = optimise_landcover(
        lc, precip, elev, slope, silt, ScenarioConfig(dry_unsuitable_cropland="keep")
    ).values[0]
    assert got.tolist() == [C, G]


def test_optimise_is_lazy_and_chunk_wise() -> None:
    rng = np.random.default_rng(3)
    shape = (40, 50)
    lc = rng.choice([0, F, S, G, C, BU, BARE, W, WL], size=shape).astype(np.uint8)
    layers = [
        rng.uniform(200, 600, shape),
        rng.uniform(500, 4500, shape),
        rng.uniform(0, 35, shape),
        rng.uniform(30, 60, shape),
    ]
    eager = optimise_landcover(
        xr.DataArray(lc, dims=("y", "x")), *(xr.DataArray(a, dims=("y", "x")) for a in layers)
    )
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        lazy = optimise_landcover(*(xr.DataArray(a, dims=("y", "x")).chunk(16) for a in (lc, *layers)))
    assert counter.calls == 0 and lazy.chunks is not None
    np.testing.assert_array_equal(lazy.compute().values, eager.values)
    assert (eager.values != lc).any()  # the random scene exercises conversions


def test_class_fvc_medians_per_subregion() -> None:
    rng = np.random.default_rng(5)
    shape = (60, 60)
    lc = rng.choice([F, G, C, BARE], size=shape).astype(np.uint8)
    fvc = rng.uniform(0, 1, shape).astype(np.float32)
    regions = np.zeros(shape, np.uint8)
    regions[:, 30:] = 1
    regions[:, 45:] = 2
    lc[:, 45:][lc[:, 45:] == F] = G  # region 2 has no forest: it takes the AOI-wide median
    cfg = ScenarioConfig()
    da_ = [xr.DataArray(a, dims=("y", "x")).chunk(20) for a in (lc, fvc, regions)]
    table = class_fvc_medians(*da_, n_regions=3, cfg=cfg)
    tol = 0.5 / cfg.median_bins + 1e-6  # the centre of the bin holding the (lower) median

    def lower_median(x: np.ndarray) -> float:
        return float(np.sort(x)[(x.size - 1) // 2])

    for r in range(2):
        for code in (F, G, C):
            sel = (regions == r) & (lc == code)
            assert abs(table[r, code] - lower_median(fvc[sel])) <= tol
    assert abs(table[2, F] - lower_median(fvc[lc == F])) <= tol
    assert np.isnan(table[0, BARE])  # bare land is no target


def _factors(shape: tuple[int, int], quarters: list[str], seed: int = 1) -> dict[str, xr.DataArray]:
    rng = np.random.default_rng(seed)
    yx = ("y", "x")
    q = {"quarter": quarters}
    return {
        "fvc": xr.DataArray(
            rng.uniform(0, 1, (len(quarters), *shape)).astype(np.float32), dims=("quarter", *yx), coords=q
        ),
        "r": xr.DataArray(
            rng.uniform(10, 900, (len(quarters), *shape)).astype(np.float32), dims=("quarter", *yx), coords=q
        ),
        "k": xr.DataArray(rng.uniform(0.01, 0.05, shape).astype(np.float32), dims=yx),
        "ls": xr.DataArray(rng.uniform(0.1, 20, shape).astype(np.float32), dims=yx),
        "slope_deg": xr.DataArray(rng.uniform(0, 35, shape).astype(np.float32), dims=yx),
        "regions": xr.DataArray(rng.integers(0, 3, shape).astype(np.uint8), dims=yx),
    }


@pytest.mark.parametrize("period", ["year", "quarter"])
def test_identity_scenario_erosion_equals_the_baseline_exactly(period: str) -> None:
    quarters = ["2024Q1", "2024Q2", "2024Q3", "2024Q4"] if period == "year" else ["2024Q4"]
    shape = (24, 30)
    f = _factors(shape, quarters)
    rng = np.random.default_rng(2)
    lc = xr.DataArray(
        rng.choice([0, F, S, G, C, BU, BARE, W, WL], size=shape).astype(np.uint8), dims=("y", "x")
    )
    cfg = ScenarioConfig(period=period)
    medians = np.stack(
        [class_fvc_medians(lc, f["fvc"].sel(quarter=q), f["regions"], 3, cfg) for q in quarters]
    )
    ds = scenario_erosion(
        lc, lc, f["fvc"], f["r"], f["k"], f["ls"], f["slope_deg"], f["regions"], medians, cfg=cfg
    )
    a, a0 = ds["erosion"].values, ds["erosion_baseline"].values
    np.testing.assert_array_equal(a, a0)
    # the baseline is RUSLE with the erosion package's own factor functions
    rc = RusleConfig()
    ref = rusle(f["r"], f["k"], f["ls"], c_factor(lc, f["fvc"], rc.c), p_factor(lc, f["slope_deg"], rc.p))
    ref_a = ref["a_annual"].isel(year=0) if period == "year" else ref["a_quarter"].isel(quarter=0)
    np.testing.assert_array_equal(a0, ref_a.values)
    assert np.isfinite(a0).any() and np.isnan(a0).any()  # nodata stays NaN


def test_converted_pixels_take_the_target_class_median_fvc() -> None:
    shape = (20, 20)
    f = _factors(shape, ["2024Q4"])
    base = np.full(shape, G, np.uint8)
    base[:, :10] = F
    scen = base.copy()
    scen[:5, 10:] = F  # grassland → forest
    base_da, scen_da = xr.DataArray(base, dims=("y", "x")), xr.DataArray(scen, dims=("y", "x"))
    cfg = ScenarioConfig(period="quarter")
    fvc0 = f["fvc"].isel(quarter=0)
    medians = class_fvc_medians(base_da, fvc0, f["regions"], 3, cfg)
    ds = scenario_erosion(
        base_da,
        scen_da,
        f["fvc"],
        f["r"],
        f["k"],
        f["ls"],
        f["slope_deg"],
        f["regions"],
        medians[None],
        cfg=cfg,
    )
    reg = f["regions"].values
    want_fvc = np.where(scen != base, medians[reg, scen], fvc0.values)
    rc = RusleConfig()
    c = c_factor(scen_da, xr.DataArray(want_fvc, dims=("y", "x")), rc.c)
    p = p_factor(scen_da, f["slope_deg"], rc.p)
    want = rusle(f["r"], f["k"], f["ls"], c, p)["a_quarter"].isel(quarter=0).values
    np.testing.assert_array_equal(ds["erosion"].values, want)
    changed = scen != base
    assert not np.array_equal(ds["erosion"].values[changed], ds["erosion_baseline"].values[changed])
    np.testing.assert_array_equal(ds["erosion"].values[~changed], ds["erosion_baseline"].values[~changed])
    # with ``converted_fvc: pixel`` the converted pixels keep their own FVC
    own = scenario_erosion(
        base_da, scen_da, f["fvc"], f["r"], f["k"], f["ls"], f["slope_deg"], f["regions"], None, cfg=cfg
    )
    c_own = c_factor(scen_da, fvc0, rc.c)
    np.testing.assert_array_equal(
        own["erosion"].values, rusle(f["r"], f["k"], f["ls"], c_own, p)["a_quarter"].isel(quarter=0).values
    )


def test_reallocation_counts() -> None:
    base = np.array([[F, G, G, C, 0]], np.uint8)
    scen = np.array([[F, F, G, G, 0]], np.uint8)
    m = reallocation_counts(base, scen, [F, G, C])
    assert m.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
