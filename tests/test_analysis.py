"""Areas, transitions, "when" maps, attribution, terrain and reference comparison on small hand-computed
rasters; the graphs build without computing and equal plain numpy."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from lpqlc.analysis.landcover import area_per_class, net_gain, relative_change, transitions, when_maps
from lpqlc.analysis.soilloss import (
    aspect_sector,
    attribution,
    cumulative,
    reference_comparison,
    terrain_table,
    top_threshold,
    trend_areas,
)

CODES = [10, 30, 40, 60]  # forest, grassland, cropland, bare


class CountingScheduler:
    """A Dask scheduler that counts how often it is asked to compute (xarray's raise_if_dask_computes)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _yx(a: Any, chunks: int | None = None) -> xr.DataArray:
    da = xr.DataArray(np.asarray(a), dims=("y", "x"))
    return da.chunk({"y": chunks, "x": chunks}) if chunks else da


# 3×3 maps: then / now, 0 = nodata
THEN = [[10, 10, 30], [30, 40, 40], [60, 60, 0]]
NOW = [[10, 30, 30], [10, 40, 10], [30, 60, 40]]
A_THEN = [[1.0, 2.0, 4.0], [6.0, 10.0, 12.0], [40.0, 50.0, 9.0]]
A_NOW = [[1.0, 5.0, 3.0], [2.0, 8.0, 1.0], [10.0, 45.0, 7.0]]


def test_transitions_hand_computed() -> None:
    regions = _yx([[1, 1, 1], [2, 2, 2], [2, 2, 0]])
    m = transitions(_yx(THEN, 2), _yx(NOW, 2), CODES, 0.5, regions, ["north", "south"]).compute()
    whole = m.sel(region="all")
    # by hand: 10→10, 10→30, 30→30, 30→10, 40→40, 40→10, 60→30, 60→60; the nodata pixel is left out
    want = {(10, 10): 1, (10, 30): 1, (30, 30): 1, (30, 10): 1, (40, 40): 1, (40, 10): 1, (60, 30): 1,
            (60, 60): 1}  # fmt: skip
    for a in CODES:
        for b in CODES:
            assert float(whole.sel({"from": a, "to": b})) == 0.5 * want.get((a, b), 0), (a, b)
    assert float(m.sel(region="north").sum()) == 1.5 and float(m.sel(region="south").sum()) == 2.5
    assert float(m.sel(region="south", **{"from": 60, "to": 30})) == 0.5
    masked = transitions(_yx(THEN), _yx(NOW), CODES, 1.0, mask=_yx(np.array(A_THEN) > 9)).compute()
    assert float(masked.sum()) == 4  # 10, 12, 40, 50 (the 9.0 one is excluded, and nodata anyway)


def test_areas_and_change() -> None:
    lc = xr.DataArray(np.stack([THEN, NOW]), dims=("time", "y", "x"), coords={"time": ["2000Q3", "2024Q3"]})
    regions = _yx([[1, 1, 1], [2, 2, 2], [2, 2, 0]])
    area = area_per_class(lc.chunk({"y": 2, "x": 2}), CODES, 2.0, regions, ["north", "south"]).compute()
    assert area.dims == ("time", "region", "class")
    np.testing.assert_array_equal(area.sel(time="2000Q3", region="all").values, [4, 4, 4, 4])
    np.testing.assert_array_equal(area.sel(time="2024Q3", region="all").values, [6, 6, 4, 2])
    np.testing.assert_array_equal(area.sel(time="2024Q3", region="north").values, [2, 4, 0, 0])
    gain = net_gain(area, "2000Q3", "2024Q3").sel(region="all")
    np.testing.assert_array_equal(gain.values, [2, 2, 0, -2])
    rel = relative_change(area)
    assert float(rel["change_pct"].sel(time="2024Q3", region="all", **{"class": 60})) == -50.0


def test_when_maps() -> None:
    # one pixel per column; steps 2000Q3, 2001Q3, 2002Q3, 2003Q3
    series = np.array([
        [30, 30, 10, 10],   # gains forest from 2002Q3
        [30, 10, 30, 10],   # gains forest, holds it from the last step only
        [10, 10, 30, 30],   # loses forest from 2002Q3
        [10, 30, 10, 30],   # loses forest, for good from the last step
        [10, 10, 10, 10],   # no change
        [30, 10, 10, 30],   # back to grassland: neither
    ]).T[:, None, :]  # fmt: skip
    lc = xr.DataArray(series, dims=("time", "y", "x")).chunk({"time": 1, "x": 3})
    labels = [20003, 20013, 20023, 20033]
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        w = when_maps(lc, 10, labels)
    assert counter.calls == 0
    w = w.compute()
    np.testing.assert_array_equal(w["gain"].values[0], [20023, 20033, 0, 0, 0, 0])
    np.testing.assert_array_equal(w["loss"].values[0], [0, 0, 20023, 20033, 0, 0])
    with pytest.raises(ValueError, match="labels"):
        when_maps(lc, 10, labels[:2])


def test_attribution_hand_computed() -> None:
    out = attribution(_yx(THEN, 2), _yx(NOW, 2), _yx(A_THEN, 2), _yx(A_NOW, 2), CODES).compute()
    f, g = out.sel({"class": 10}), out.sel({"class": 30})
    # forest gained at (1,0) dA=2-6=-4 and (1,2) dA=1-12=-11; lost at (0,1) dA=5-2=3
    assert (float(f.gain_px), float(f.loss_px)) == (2, 1)
    assert float(f.gain_dA) == pytest.approx(-7.5) and float(f.loss_dA) == pytest.approx(3.0)
    # forest now at (0,0), (1,0), (1,2): A = 1, 2, 1
    assert float(f.now_A) == pytest.approx(4 / 3)
    # grassland gained at (0,1) dA=3 and (2,0) dA=-30; lost at (1,0) dA=-4
    assert float(g.gain_dA) == pytest.approx(-13.5) and float(g.loss_dA) == pytest.approx(-4.0)
    assert float(g.now_A) == pytest.approx((5 + 3 + 10) / 3)
    # cropland: gained at (2,2) only where "then" is nodata: not counted; lost at (1,2)
    c = out.sel({"class": 40})
    assert float(c.gain_px) == 0 and np.isnan(float(c.gain_dA)) and float(c.loss_px) == 1


def test_terrain_and_aspect() -> None:
    ero = _yx([[5.0, 20.0], [30.0, np.nan]], 1)
    aspect = _yx([[0.0, 90.0], [350.0, 200.0]])
    slope = _yx([[0.5, 10.0], [20.0, 30.0]])
    sector = aspect_sector(aspect, slope).compute()
    np.testing.assert_array_equal(sector.values, [[0, 3], [1, 5]])  # flat, E, N, S (157.5–202.5°)
    t = terrain_table(ero, sector, 9, 10.0, 1.0).compute()
    assert float(t.area_km2.sel(bin=3)) == 1 and float(t.mean_t_hm2_a.sel(bin=1)) == 30
    assert float(t.eroded_pct.sel(bin=0)) == 0 and float(t.area_km2.sel(bin=5)) == 0  # the NaN pixel left out


def test_cumulative_top_and_trend_areas() -> None:
    rng = np.random.default_rng(3)
    annual = xr.DataArray(rng.gamma(2, 5, (4, 40, 50)), dims=("year", "y", "x")).chunk({"y": 16, "x": 16})
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        cum = cumulative(annual)
    assert counter.calls == 0
    np.testing.assert_allclose(cum.values, annual.values.sum(0))
    thr = top_threshold(cum, 0.1, bins=10000)
    share = float((cum >= thr).mean())
    assert 0.099 <= share <= 0.101 + 1 / 2000
    trend = _yx(np.array([[-1, -1, 0], [1, -2, 0]], np.int8), 2)
    ta = trend_areas(trend, 2.0).compute()
    np.testing.assert_array_equal(ta.area_km2.sel(region="all").values, [4, 4, 2])
    assert float(ta.share_pct.sel(region="all", trend="decrease")) == 40


def test_reference_comparison(tmp_path: Any) -> None:
    from importlib import resources

    ref = pd.read_csv(resources.files("lpqlc") / "data" / "bulletin_eroded.csv")
    assert list(ref["year"]) == list(range(2018, 2025))
    paper = pd.Series([19.54, 22.70, 21.26, 23.70, 23.26, 23.96, 22.97], index=range(2018, 2025))
    table, mae = reference_comparison(paper, ref)
    assert mae == pytest.approx(4.50, abs=0.01)  # the paper's MAE against the bulletin
    assert table["error_pp"].iloc[0] == pytest.approx(19.54 - 28.34)
    with pytest.raises(ValueError, match="eroded_pct"):
        reference_comparison(paper, ref.rename(columns={"eroded_pct": "pct"}))


def test_graphs_build_lazily_and_equal_numpy() -> None:
    rng = np.random.default_rng(5)
    a_np = rng.choice([0, *CODES], (60, 70))
    b_np = rng.choice([0, *CODES], (60, 70))
    e0, e1 = rng.gamma(2, 5, (60, 70)), rng.gamma(2, 5, (60, 70))
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        m = transitions(_yx(a_np, 16), _yx(b_np, 16), CODES, 1.0)
        at = attribution(_yx(a_np, 16), _yx(b_np, 16), _yx(e0, 16), _yx(e1, 16), CODES)
        area = area_per_class(_yx(a_np, 16), CODES, 1.0)
    assert counter.calls == 0
    lut = {c: i for i, c in enumerate(CODES)}
    want = np.zeros((4, 4))
    for x, y in zip(a_np.ravel(), b_np.ravel(), strict=True):
        if x and y:
            want[lut[x], lut[y]] += 1
    np.testing.assert_array_equal(m.sel(region="all").values, want)
    np.testing.assert_array_equal(area.sel(region="all").values, [(a_np == c).sum() for c in CODES])
    sel = (a_np != 30) & (b_np == 30) & (a_np > 0)
    assert float(at.gain_dA.sel({"class": 30})) == pytest.approx((e1 - e0)[sel].mean(), rel=1e-12)
