"""Summaries as Dask reductions (lpqlc.erosion.reductions) equal plain numpy on the sample world."""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from lpqlc.erosion.reductions import class_counts, display_image, finite_sum_count, pair_counts
from lpqlc.quarter import Quarter
from lpqlc.report import transition_matrix
from lpqlc.sample.world import World, WorldSpec

from .test_composite import CountingScheduler

CODES = [10, 20, 30, 40, 50, 60, 80, 90]


def test_reductions_equal_numpy_on_the_sample() -> None:
    world = World(WorldSpec(size=192))
    maps = np.stack([world.truth(Quarter(2000, 1) + 8 * i) for i in range(4)])  # (time, y, x) uint8
    maps[:, :5, :7] = 0  # nodata
    rng = np.random.default_rng(0)
    erosion = rng.gamma(0.8, 20.0, maps.shape).astype(np.float32)
    erosion[maps == 0] = np.nan
    lc = xr.DataArray(maps, dims=("time", "y", "x")).chunk({"time": 1, "y": 50, "x": 64})  # ragged chunks
    ero = xr.DataArray(erosion, dims=("time", "y", "x")).chunk({"time": 2, "y": 64, "x": 50})
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        counts, pairs = class_counts(lc), pair_counts(lc.isel(time=0), lc.isel(time=-1), CODES)
        total, n = finite_sum_count(ero)
        img = display_image(lc.isel(time=0), max_px=50)
    assert counter.calls == 0
    counts, pairs, total, n, img = dask.compute(counts, pairs, total, n, img.data)
    assert np.array_equal(counts, np.stack([np.bincount(m.ravel(), minlength=256) for m in maps]))
    assert np.array_equal(pairs, transition_matrix(maps[0], maps[-1], CODES))
    ok = np.isfinite(erosion)
    assert np.allclose(total, [e[o].astype(np.float64).sum() for e, o in zip(erosion, ok, strict=True)], rtol=1e-12)
    assert np.array_equal(n, ok.sum(axis=(1, 2)))
    assert img.shape == (48, 48) and np.array_equal(img, maps[0][::4, ::4])
    # float codes with NaN (a datacube's fill) count as no class
    fl = xr.DataArray(np.where(maps[0] == 0, np.nan, maps[0]).astype(np.float32), dims=("y", "x")).chunk(64)
    assert np.array_equal(class_counts(fl).compute(), np.bincount(maps[0][maps[0] > 0], minlength=256))
