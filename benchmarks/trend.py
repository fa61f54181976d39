"""Per-pixel Mann–Kendall + Theil–Sen: lpqlc's vectorised blocks against a pymannkendall loop.

Input (seeded, in memory): annual erosion-like series (gamma noise, a real trend on a third of the
pixels, ties from rounding, 10 % missing years) of ``--years`` years on ``--pixels`` pixels.
Baseline: ``pymannkendall.original_test`` / ``hamed_rao_modification_test`` called once per pixel
(the only way the library runs), on a subset of ``--baseline-pixels`` pixels, scaled per pixel.
Ours: :func:`lpqlc.analysis.trend.mk_block` on all pixels, single-threaded (same core); then
:func:`lpqlc.analysis.trend.mann_kendall` on a dask-backed cube with all cores.
Results are checked identical (trend decisions equal; slope, z, p to 1e-9 relative) before timing.

    python benchmarks/trend.py [--pixels 262144] [--years 25] [--baseline-pixels 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings

import numpy as np


def series(pixels: int, years: int, seed: int = 0) -> np.ndarray:
    """(pixels, years) float64 series with ties, trends and NaN gaps."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 5.0, (pixels, years))
    trend = rng.normal(0, 0.6, pixels) * (rng.random(pixels) < 1 / 3)
    x += trend[:, None] * np.arange(years)
    x = np.round(x, 1)
    x[rng.random((pixels, years)) < 0.1] = np.nan
    return x


def baseline(x: np.ndarray, hamed_rao: bool) -> np.ndarray:
    import pymannkendall as pmk

    fn = pmk.hamed_rao_modification_test if hamed_rao else pmk.original_test
    sign = {"increasing": 1.0, "decreasing": -1.0, "no trend": 0.0}
    out = np.empty((len(x), 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, row in enumerate(x):
            r = fn(row, 0.05)
            out[i] = (r.slope, r.z, r.p, sign[r.trend])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=int, default=512 * 512)
    ap.add_argument("--years", type=int, default=25)
    ap.add_argument("--baseline-pixels", type=int, default=2000)
    args = ap.parse_args()

    import dask
    import dask.array as dsa
    import xarray as xr

    from lpqlc.analysis.trend import STATISTICS, mann_kendall, mk_block

    x = series(args.pixels, args.years)
    sub = x[: args.baseline_pixels]
    cols = [STATISTICS.index(k) for k in ("slope", "z", "p", "trend")]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (shared: absolute times disturbed), "
        f"python {platform.python_version()}; {args.pixels} px × {args.years} years, "
        f"baseline on {len(sub)} px"
    )
    for method in ("original", "hamed_rao"):
        hr = method == "hamed_rao"
        ref = baseline(sub, hr)
        got = mk_block(sub, 0.05, hr, 3)[:, cols]
        same = np.isclose(got[:, :3], ref[:, :3], rtol=1e-9, atol=0) | (
            np.isnan(got[:, :3]) & np.isnan(ref[:, :3])
        )
        if not (same.all() and (got[:, 3] == ref[:, 3]).all()):
            raise SystemExit(f"{method}: results differ from pymannkendall — not timing")
        t0 = time.perf_counter()
        baseline(sub, hr)
        t_base = (time.perf_counter() - t0) / len(sub)
        t0 = time.perf_counter()
        mk_block(x, 0.05, hr, 3)
        t_ours = (time.perf_counter() - t0) / len(x)
        print(
            f"{method:9s}: pymannkendall {1e6 * t_base:8.1f} µs/px | ours 1 thread {1e6 * t_ours:6.2f} µs/px "
            f"| ratio {t_base / t_ours:6.0f}×"
        )
    side = int(np.sqrt(args.pixels))
    cube = xr.DataArray(
        dsa.from_array(x[: side * side].T.reshape(args.years, side, side), chunks=(-1, 256, 256)),
        dims=("year", "y", "x"),
    )
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        mann_kendall(cube, "year", min_count=3).compute()
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"mann_kendall on a dask cube ({side}×{side}, chunks 256², threads): {t:.2f} s, "
        f"{side * side / t / 1e3:.0f} kpx/s; peak RSS of the process {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
