"""Tiled LS against whole-area LS: share of pixels that differ and the largest relative difference.

DEMs: the sample world's (``WorldSpec.size`` px at 10 m, grown with ``--sizes``) and the Jacksboro DEM
reprojected to 30 m. Whole: ``ls_factor`` on the numpy DEM; tiled: the same on a Dask DEM of
``--chunk`` px chunks (halo ⌈λ_max/D⌉ + 1 + ``tile_fill_margin_px``). Differing pixels are split by
whether they lie in a filled depression (the only place they should).

    python benchmarks/terrain_tiled.py [--sizes 384 1536] [--chunk 256]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import xarray as xr


def _world(size: int) -> xr.DataArray:
    from odc.geo.xr import assign_crs

    from lpqlc.sample.world import World, WorldSpec

    spec = WorldSpec(size=size)
    xs = spec.west + spec.res * (np.arange(size) + 0.5)
    ys = spec.north - spec.res * (np.arange(size) + 0.5)
    return assign_crs(xr.DataArray(World(spec).dem, dims=("y", "x"), coords={"y": ys, "x": xs}), f"EPSG:{spec.epsg}")


def compare(name: str, dem: xr.DataArray, chunk: int) -> None:
    from lpqlc.config.science import LSFactorConfig
    from lpqlc.erosion.flow import fill_depressions
    from lpqlc.erosion.terrain import ls_factor, ls_halo_px

    cell = abs(float(dem["x"][1] - dem["x"][0]))
    t = time.perf_counter()
    whole = ls_factor(dem).values
    t_whole = time.perf_counter() - t
    t = time.perf_counter()
    tiled = ls_factor(dem.chunk({"y": chunk, "x": chunk})).compute(scheduler="sync").values
    t_tiled = time.perf_counter() - t
    rel = np.abs(tiled - whole) / np.maximum(whole, 1e-6)
    differ = rel > 1e-5
    z = dem.values
    in_dep = fill_depressions(z)[0] > z
    print(f"{name:28s} {z.shape[0]}×{z.shape[1]} px, {cell:g} m, chunk {chunk}, halo {ls_halo_px(cell, LSFactorConfig())} px: "
          f"differ {100 * differ.mean():.3f} % of pixels ({100 * (differ & in_dep).sum() / max(1, differ.sum()):.0f} % of "
          f"them in filled depressions, which cover {100 * in_dep.mean():.1f} %), max relative difference "
          f"{rel.max():.3g}; whole {t_whole:.1f} s, tiled {t_tiled:.1f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[384, 1536])
    ap.add_argument("--chunk", type=int, default=256)
    args = ap.parse_args()
    from lpqlc.erosion.realdem import jacksboro_dem

    print(f"machine: {platform.processor() or platform.machine()} (shared; times vary)")
    for size in args.sizes:
        compare(f"sample world size {size}", _world(size), 96 if size <= 384 else args.chunk)
    compare("Jacksboro 30 m", jacksboro_dem(30.0), args.chunk)


if __name__ == "__main__":
    main()
