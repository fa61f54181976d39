"""RUSLE graph cost against a fused single-pass numpy reference, on the same in-memory arrays.

Inputs (seeded, in memory): four quarters of R, land cover and FVC, and K, LS, slope, on an N×N grid.
Ours: the lazy xarray/Dask graph of lpqlc.erosion (C, P, quarterly A, annual A, grade), computed.
Baseline: one hand-fused numpy pass per quarter doing the same arithmetic with lookup tables.
Both run single-threaded for the ratio (same cores); the Dask figure with all cores follows.

    python benchmarks/rusle.py [--size 4096] [--chunk 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr


def _inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.array([10, 20, 30, 40, 50, 60, 80, 90], np.uint8)
    return {
        "r": rng.uniform(0, 800, (4, n, n)).astype(np.float32),
        "lc": codes[rng.integers(0, 8, (4, n, n))],
        "fvc": rng.uniform(0, 1, (4, n, n)).astype(np.float32),
        "k": rng.uniform(0.01, 0.05, (n, n)).astype(np.float32),
        "ls": rng.uniform(0, 30, (n, n)).astype(np.float32),
        "slope": rng.uniform(0, 40, (n, n)).astype(np.float32),
    }


def reference(x: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused numpy: per quarter, C and P by table lookups, A = R·K·LS·C·P; annual sum and grade."""
    from lpqlc.config.science import RusleConfig

    cfg = RusleConfig()
    c_tab = np.full((256, 6), np.nan, np.float32)
    for code, row in cfg.c.table.items():
        c_tab[code] = row
    for code, v in cfg.c.fixed.items():
        c_tab[code] = v
    p_tab = np.full(256, np.nan, np.float32)
    for code, v in cfg.p.by_class.items():
        p_tab[code] = v
    crop_p = np.asarray(cfg.p.cropland_values, np.float32)
    kls = x["k"] * x["ls"]
    p_slope = crop_p[np.digitize(x["slope"], cfg.p.cropland_slope_breaks_deg)]
    a_q = np.empty_like(x["r"])
    for q in range(4):
        lc, fvc = x["lc"][q].astype(np.intp), x["fvc"][q]
        c = c_tab[lc, np.digitize(fvc, cfg.c.fvc_breaks)]
        crop = lc == 40
        with np.errstate(divide="ignore"):
            c[crop] = np.clip(0.221 - 0.595 * np.log10(fvc[crop]), 0, 1)
        p = np.where(crop, p_slope, p_tab[lc])
        a_q[q] = x["r"][q] * kls * c * p
    annual = a_q.sum(0)
    grade = (np.digitize(annual, cfg.grades.breaks) + 1).astype(np.uint8)
    return a_q, annual, grade


def ours(x: dict[str, np.ndarray], chunk: int) -> tuple[Any, Any, Any]:
    from lpqlc.erosion import c_factor, erosion_grade, p_factor, rusle

    q = ["2021Q1", "2021Q2", "2021Q3", "2021Q4"]
    dims3, dims2 = ("quarter", "y", "x"), ("y", "x")

    # name=False: no hashing of the in-memory inputs (a reader's arrays would not be hashed either)
    def d3(a: np.ndarray) -> xr.DataArray:
        return xr.DataArray(da.from_array(a, chunks=(1, chunk, chunk), name=False), dims=dims3, coords={"quarter": q})

    def d2(a: np.ndarray) -> xr.DataArray:
        return xr.DataArray(da.from_array(a, chunks=(chunk, chunk), name=False), dims=dims2)

    lc, fvc = d3(x["lc"]), d3(x["fvc"])
    out = rusle(d3(x["r"]), d2(x["k"]), d2(x["ls"]), c_factor(lc, fvc), p_factor(lc, d2(x["slope"])))
    return out.a_quarter, out.a_annual.isel(year=0), erosion_grade(out.a_annual.isel(year=0))


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
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    x = _inputs(args.size)
    a_ref, annual_ref, grade_ref = reference(x)
    with dask.config.set(scheduler="threads", num_workers=1):
        a, annual, grade = dask.compute(*ours(x, args.chunk))
    ok = np.isfinite(annual_ref)
    assert np.allclose(annual.values[ok], annual_ref[ok], rtol=1e-5) and np.array_equal(grade.values, grade_ref)

    t_ref = _best(lambda: reference(x), args.repeat)
    with dask.config.set(scheduler="threads", num_workers=1):
        t_one = _best(lambda: dask.compute(*ours(x, args.chunk)), args.repeat)
    cores = os.cpu_count() or 1
    with dask.config.set(scheduler="threads", num_workers=cores):
        t_all = _best(lambda: dask.compute(*ours(x, args.chunk)), args.repeat)
    mpx = 4 * args.size * args.size / 1e6  # quarter-pixels processed
    print(f"machine: {platform.processor() or platform.machine()}, {cores} CPUs; grid {args.size}² × 4 quarters, "
          f"chunk {args.chunk}")  # fmt: skip
    print(f"fused numpy reference (1 thread):   {t_ref:7.3f} s  {mpx / t_ref:7.1f} Mpx/s/core")
    print(f"lazy graph, dask threads, 1 worker: {t_one:7.3f} s  {mpx / t_one:7.1f} Mpx/s/core")
    print(f"lazy graph, dask threads, {cores} workers: {t_all:7.3f} s  {mpx / t_all / cores:7.1f} Mpx/s/core")
    print(f"ratio (lazy graph / fused numpy, same single core): {t_one / t_ref:.2f}  (target ≤ 1.3)")


if __name__ == "__main__":
    main()
