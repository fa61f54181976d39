"""FVC gap filling and its quality layer (lpqlc.erosion.gapfill): rule order, values, codes, laziness."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from lpqlc.config.science import FVCGapFillConfig
from lpqlc.erosion.cover import c_factor
from lpqlc.erosion.gapfill import (
    FILLED_ADJACENT,
    FILLED_SAME_QUARTER,
    MISSING,
    NO_DATA,
    OBSERVED,
    annual_quality,
    fill_fvc,
)

from .test_composite import CountingScheduler

NAN = np.nan


def _a(values: list[float], dtype: type = np.float32) -> xr.DataArray:
    return xr.DataArray(np.asarray([values], dtype=dtype), dims=("y", "x"), coords={"y": [0.0], "x": np.arange(len(values))})


def test_rules_apply_in_order_and_the_quality_layer_says_which() -> None:
    # pixels: observed | same quarter both years | one year only | adjacent both | adjacent one side | none | no land
    obs = _a([0.5, NAN, NAN, NAN, NAN, NAN, NAN])
    before = _a([0.9, 0.2, NAN, NAN, NAN, NAN, NAN])
    after = _a([0.9, 0.4, 0.6, NAN, NAN, NAN, NAN])
    prev = _a([0.1, 0.1, 0.1, 0.3, 0.7, NAN, 0.5])
    nxt = _a([0.1, 0.1, 0.1, 0.5, NAN, NAN, 0.5])
    lc = _a([30, 30, 40, 20, 30, 30, 0], np.uint8)
    fvc, q = fill_fvc(obs, lc, [[before, after]], prev, nxt)
    assert np.allclose(fvc.values[0, :5], [0.5, 0.3, 0.6, 0.4, 0.7]) and np.isnan(fvc.values[0, 5])
    assert q.values[0].tolist() == [OBSERVED, FILLED_SAME_QUARTER, FILLED_SAME_QUARTER, FILLED_ADJACENT,
                                    FILLED_ADJACENT, MISSING, NO_DATA]  # fmt: skip
    # C exists wherever a rule applied (grassland/cropland/shrubland need FVC), NaN only where none did
    c = c_factor(lc, fvc).values[0]
    assert np.isfinite(c[:5]).all() and np.isnan(c[5])
    # two-sided interpolation only: the one-sided pixel stays missing; no rules: nothing is filled
    _, q2 = fill_fvc(obs, lc, [[before, after]], prev, nxt, FVCGapFillConfig(one_sided=False))
    assert q2.values[0, 3] == FILLED_ADJACENT and q2.values[0, 4] == MISSING
    f3, q3 = fill_fvc(obs, lc, [[before, after]], prev, nxt, FVCGapFillConfig(rules=()))
    assert (q3.values[0, 1:6] == MISSING).all() and np.isnan(f3.values[0, 1:6]).all()
    # adjacent quarters first when so configured
    _, q4 = fill_fvc(obs, lc, [[before, after]], prev, nxt, FVCGapFillConfig(rules=("adjacent_quarters", "same_quarter")))
    assert q4.values[0, 1] == FILLED_ADJACENT and q4.values[0, 2] == FILLED_ADJACENT


def test_fill_is_lazy_and_annual_quality_is_the_worst_quarter() -> None:
    rng = np.random.default_rng(3)
    shape = (32, 32)

    def field(p_nan: float) -> xr.DataArray:
        v = rng.uniform(0, 1, shape).astype(np.float32)
        v[rng.uniform(0, 1, shape) < p_nan] = np.nan
        return xr.DataArray(v, dims=("y", "x")).chunk(16)

    lc = xr.DataArray(np.full(shape, 30, np.uint8), dims=("y", "x")).chunk(16)
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        fvc, q = fill_fvc(field(0.5), lc, [[field(0.5), field(0.5)]], field(0.3), field(0.3))
    assert counter.calls == 0 and fvc.chunks is not None and q.chunks is not None
    qv, fv = q.values, fvc.values
    assert np.array_equal(np.isfinite(fv), qv != MISSING) and {1, 2, 3} <= set(np.unique(qv).tolist())
    quarters = [np.array([[1, 1, 0, 2]], np.uint8), np.array([[1, 3, 0, 1]], np.uint8),
                np.array([[1, 2, 1, 4]], np.uint8), np.array([[1, 1, 0, 1]], np.uint8)]  # fmt: skip
    # a quarter without land cover leaves the annual sum without it: missing, not the best of the others
    assert annual_quality(quarters).tolist() == [[1, 3, 4, 4]]
    assert annual_quality([np.zeros((1, 2), np.uint8)] * 4).tolist() == [[0, 0]]


def test_landcover_gaps_take_the_nearest_quarters_class_and_are_flagged() -> None:
    from lpqlc.config.science import LandCoverGapFillConfig
    from lpqlc.erosion.gapfill import (
        FILLED_LANDCOVER,
        fill_landcover,
        flag_landcover_fill,
        landcover_candidates,
    )
    from lpqlc.quarter import Quarter

    q = Quarter(2021, 2)
    # nearest quarter first (earlier at equal distance) within the window, then the same quarter a year away
    names = [str(c) for c in landcover_candidates(q)]
    assert names == ["2021Q1", "2021Q3", "2020Q4", "2021Q4", "2020Q2", "2022Q2"]
    yearly = landcover_candidates(q, LandCoverGapFillConfig(rules=("same_quarter",), years=2))
    assert [str(c) for c in yearly] == ["2020Q2", "2022Q2", "2019Q2", "2023Q2"]
    assert landcover_candidates(q, LandCoverGapFillConfig(rules=())) == []
    # pixels: observed | gap, the previous quarter has a class | gap, the second candidate only | gap, none
    lc = _a([30, 0, 0, 0], np.uint8).chunk({"x": 2})
    prev = _a([40, 20, 0, 0], np.uint8)
    nxt = _a([40, 40, 60, 0], np.uint8)
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        filled_lc, filled = fill_landcover(lc, [prev, nxt])
    assert counter.calls == 0 and filled_lc.chunks is not None
    assert filled_lc.dtype == np.uint8 and filled_lc.values[0].tolist() == [30, 20, 60, 0]
    assert filled.values[0].tolist() == [False, True, True, False]
    # FVC: observed, missing without a rule, filled from adjacent quarters; the land-cover fill is flagged
    # unless FVC stayed missing (then C and A are NaN: missing is the worse and stays)
    obs = _a([0.5, 0.4, NAN, NAN])
    fvc, quality = fill_fvc(obs, filled_lc, [], _a([NAN, NAN, 0.2, NAN]), None)
    flagged = flag_landcover_fill(quality, filled)
    assert flagged.values[0].tolist() == [OBSERVED, FILLED_LANDCOVER, FILLED_LANDCOVER, NO_DATA]
    _, q_missing = fill_fvc(_a([0.5, NAN, NAN, NAN]), filled_lc, [], None, None)
    assert flag_landcover_fill(q_missing, filled).values[0].tolist() == [OBSERVED, MISSING, MISSING, NO_DATA]
    c = c_factor(filled_lc, fvc).values[0]
    assert np.isfinite(c[:3]).all() and np.isnan(c[3])
    # the year: a filled quarter ranks worse than FVC fills, better than missing
    year = [np.array([[1, 1, 3, 2]], np.uint8), np.array([[5, 5, 5, 4]], np.uint8)]
    year += [np.ones((1, 4), np.uint8)] * 2
    assert annual_quality(year).tolist() == [[5, 5, 5, 4]]
