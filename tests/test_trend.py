"""The vectorised Mann–Kendall / Theil–Sen against pymannkendall (the reference), and its laziness."""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from lpqlc.analysis.trend import STATISTICS, mann_kendall, mk_block

pmk = pytest.importorskip("pymannkendall")

TREND = {"increasing": 1, "decreasing": -1, "no trend": 0}


class CountingScheduler:
    """A Dask scheduler that counts how often it is asked to compute (xarray's raise_if_dask_computes)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _series(n: int = 2400, years: int = 25, seed: int = 11) -> np.ndarray:
    """(n, years) series: noise, heavy ties, constants, real trends (up and down), NaN gaps, short ones."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 5.0, (n, years))
    kind = np.arange(n) % 7
    x[kind == 1] = np.round(x[kind == 1] / 4)  # few distinct values: ties
    x[kind == 2] = 7.5  # constant
    x[kind == 3] += np.arange(years) * rng.normal(0, 1.5, (kind == 3).sum())[:, None]  # real trends
    x[kind == 4] = np.round(x[kind == 4] + np.arange(years) * 0.8)  # trend with ties
    gaps = (rng.random((n, years)) < 0.2) & (kind[:, None] >= 5)
    x[gaps] = np.nan
    x[kind == 6, : years - 9] = np.nan  # 9 valid years left, a few fewer where the gaps hit
    return x


@pytest.mark.parametrize(
    ("method", "reference"), [("original", "original_test"), ("hamed_rao", "hamed_rao_modification_test")]
)
def test_agrees_with_pymannkendall(method: str, reference: str) -> None:
    x = _series()
    x = x[np.isfinite(x).sum(1) >= 3]  # a test needs three values (Hamed–Rao divides by n−2)
    assert len(x) >= 2000
    ours = mk_block(x, 0.05, method == "hamed_rao", min_count=3)
    fn = getattr(pmk, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pymannkendall divides by zero on constant series
        ref = [fn(row, 0.05) for row in x]
    fields = {"slope": "slope", "intercept": "intercept", "tau": "Tau", "s": "s", "var_s": "var_s", "z": "z",
              "p": "p"}  # fmt: skip
    want = {ours_name: [getattr(r, theirs) for r in ref] for ours_name, theirs in fields.items()}
    for name, values in want.items():
        a, b = ours[:, STATISTICS.index(name)], np.asarray(values, np.float64)
        same = np.isclose(a, b, rtol=1e-9, atol=0) | (np.isnan(a) & np.isnan(b))
        assert same.all(), f"{name}: {(~same).sum()} of {len(a)} differ, e.g. row {np.flatnonzero(~same)[:3]}"
    decisions = np.array([TREND[r.trend] for r in ref])
    np.testing.assert_array_equal(ours[:, STATISTICS.index("trend")], decisions)
    # the sample exercises what it claims to: both directions significant, ties, NaN, constants
    assert (decisions == 1).sum() > 50 and (decisions == -1).sum() > 50
    assert np.isnan(x).any() and (ours[:, STATISTICS.index("var_s")] < 25 * 24 * 55 / 18).any()


def test_min_count_and_alpha() -> None:
    x = _series(n=700)
    n_valid = np.isfinite(x).sum(1)
    out = mk_block(x, 0.05, False, min_count=12)
    short = n_valid < 12
    assert short.any() and (~short).any()
    assert np.isnan(out[short, : STATISTICS.index("trend")]).all()
    assert (out[short, STATISTICS.index("trend")] == 0).all()
    strict = mk_block(x, 0.001, False, min_count=12)
    assert np.abs(strict[:, 7]).sum() < np.abs(out[:, 7]).sum()  # a smaller alpha finds fewer trends


def test_lazy_and_equal_to_numpy() -> None:
    x = _series(n=64 * 48).reshape(64, 48, 25).transpose(2, 0, 1)  # (year, y, x)
    da = xr.DataArray(dsa.from_array(x, chunks=(5, 32, 16)), dims=("year", "y", "x"),
                      coords={"year": np.arange(2000, 2025)}, attrs={"units": "t/(hm²·a)"})  # fmt: skip
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        ds = mann_kendall(da, "year", 0.05, "hamed_rao", min_count=8)
    assert counter.calls == 0
    assert ds["slope"].chunks == ((32, 32), (16, 16, 16))
    assert ds["trend"].dtype == np.int8 and ds["slope"].attrs["units"] == "t/(hm²·a) per year"
    got = ds.compute()
    want = mk_block(np.moveaxis(x, 0, -1), 0.05, True, 8)
    for i, name in enumerate(STATISTICS):
        np.testing.assert_array_equal(got[name].values, want[..., i].astype(got[name].dtype))


def test_bad_arguments() -> None:
    da = xr.DataArray(np.zeros((10, 2, 2)), dims=("time", "y", "x"))
    with pytest.raises(ValueError, match="no dimension 'year'"):
        mann_kendall(da)
    with pytest.raises(ValueError, match="method"):
        mann_kendall(da, "time", method="sen")  # type: ignore[arg-type]
