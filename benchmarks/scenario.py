"""The restoration scenario's cost against one RUSLE evaluation of the baseline, on the same arrays.

Inputs (seeded, in memory): four quarters of R and FVC, one land-cover map, K, LS, slope, annual
precipitation, elevation, silt and subregion codes on an N×N grid.
Ours: the scenario (optimise_landcover, the subregion FVC medians of each quarter, and scenario_erosion,
which evaluates RUSLE twice: baseline and scenario), computed.
Baseline: lpqlc.erosion's own lazy RUSLE graph (C, P, quarterly and annual A) of the baseline map, computed.
Both single-threaded on the same chunks, so the ratio says what the scenario costs in RUSLE runs.

    python benchmarks/scenario.py [--size 2048] [--chunk 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

QUARTERS = ["2024Q1", "2024Q2", "2024Q3", "2024Q4"]


def _inputs(n: int, chunk: int, seed: int = 0) -> dict[str, xr.DataArray]:
    rng = np.random.default_rng(seed)
    codes = np.array([10, 20, 30, 40, 50, 60, 80, 90], np.uint8)

    def d2(a: np.ndarray) -> xr.DataArray:
        return xr.DataArray(da.from_array(a, chunks=(chunk, chunk), name=False), dims=("y", "x"))

    def d3(a: np.ndarray) -> xr.DataArray:
        return xr.DataArray(
            da.from_array(a, chunks=(1, chunk, chunk), name=False),
            dims=("quarter", "y", "x"),
            coords={"quarter": QUARTERS},
        )

    return {
        "lc": d2(codes[rng.integers(0, 8, (n, n))]),
        "r": d3(rng.uniform(0, 800, (4, n, n)).astype(np.float32)),
        "fvc": d3(rng.uniform(0, 1, (4, n, n)).astype(np.float32)),
        "k": d2(rng.uniform(0.01, 0.05, (n, n)).astype(np.float32)),
        "ls": d2(rng.uniform(0, 30, (n, n)).astype(np.float32)),
        "slope": d2(rng.uniform(0, 40, (n, n)).astype(np.float32)),
        "precip": d2(rng.uniform(200, 650, (n, n)).astype(np.float32)),
        "elev": d2(rng.uniform(500, 3500, (n, n)).astype(np.float32)),
        "silt": d2(rng.uniform(30, 70, (n, n)).astype(np.float32)),
        "regions": d2(rng.integers(0, 7, (n, n)).astype(np.uint8)),
    }


def baseline(x: dict[str, xr.DataArray]) -> Any:
    from lpqlc.erosion import c_factor, p_factor, rusle

    ds = rusle(x["r"], x["k"], x["ls"], c_factor(x["lc"], x["fvc"]), p_factor(x["lc"], x["slope"]))
    return ds.a_annual.isel(year=0).compute()


def ours(x: dict[str, xr.DataArray]) -> Any:
    from lpqlc.analysis.scenario import class_fvc_medians, optimise_landcover, scenario_erosion
    from lpqlc.config.science import ScenarioConfig

    cfg = ScenarioConfig()
    opt = optimise_landcover(x["lc"], x["precip"], x["elev"], x["slope"], x["silt"], cfg)
    med = np.stack(
        [class_fvc_medians(x["lc"], x["fvc"].sel(quarter=q), x["regions"], 7, cfg) for q in QUARTERS]
    )
    ds = scenario_erosion(
        x["lc"], opt, x["fvc"], x["r"], x["k"], x["ls"], x["slope"], x["regions"], med, cfg=cfg
    )
    return dask.compute(opt, ds)


def _best(fn: Any, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    x = _inputs(args.size, args.chunk)
    with dask.config.set(scheduler="threads", num_workers=1):
        a0 = baseline(x)
        _, ds = ours(x)
        ok = np.isfinite(a0.values)
        assert np.array_equal(ds.erosion_baseline.values[ok], a0.values[ok])  # the same RUSLE
        t_base = _best(lambda: baseline(x), args.repeat)
        t_ours = _best(lambda: ours(x), args.repeat)
    changed = float((ds.erosion.values != ds.erosion_baseline.values)[ok].mean())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mpx = args.size * args.size / 1e6
    machine = platform.processor() or platform.machine()
    print(
        f"machine: {machine}, {os.cpu_count()} CPUs (shared); grid {args.size}² "
        f"× 4 quarters, chunk {args.chunk}; {100 * changed:.1f} % of pixels change soil loss"
    )
    print(
        f"baseline: lpqlc.erosion RUSLE graph, annual A (1 thread): {t_base:7.3f} s  {mpx / t_base:.2f} Mpx/s"
    )
    print(
        f"scenario: optimise + FVC medians + RUSLE x2 (1 thread):   {t_ours:7.3f} s  {mpx / t_ours:.2f} Mpx/s"
    )
    print(f"ratio scenario / baseline RUSLE: {t_ours / t_base:.2f}; peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
