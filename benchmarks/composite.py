"""Composite cost against a bare odc-stac load of the same pixels, on a local Dask cluster.

Baseline: ``odc.stac.load`` of the same items, assets, grid, chunks and grouping, every chunk read
(reduced to a max so nothing big travels back). Ours: the full lazy composite (mask, scale, median,
count, NDVI) of the same load, every output chunk computed. Both run on one LocalCluster; each figure
is the best of ``--repeat`` runs after a warm-up. Peak worker memory comes from distributed's
MemorySampler (process memory per worker), for two AOI sizes: it must not grow with the area.

Loaders: the same quarter composited tile by tile as ``run_composite`` does it (one task per tile that
builds and computes the tile's graph on its worker, :func:`lpqlc.composite.tile_task.tile_block`) with
``science.composite.loader`` odc-stac and stackstac, alternately, best of ``--repeat``: the ratio
stackstac / odc-stac, measured side by side in one run.

    python benchmarks/composite.py [--size 384] [--quarter 2022Q3] [--workers 2] [--repeat 3] [--only-loaders]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from typing import Any

import dask
import numpy as np


def _items_and_grid(archive: Any, quarter: Any, bbox: tuple[float, float, float, float], chunk: int) -> Any:
    from lpqlc.config import config_from_dict
    from lpqlc.grid import OutputGrid
    from lpqlc.sources.search import search_quarter

    cfg = config_from_dict({
        "aoi": {"bbox": list(bbox)}, "sources": {"catalog": archive.catalog, "max_cloud_cover": 100},
        "storage": {"url": "/tmp/unused"}, "grid": {"tile_size": chunk * 4, "chunk_size": chunk},
    })  # fmt: skip
    res = search_quarter(cfg, quarter)
    return cfg, res, OutputGrid.from_config(cfg).geobox(quarter)


def _bbox(size: int, fraction: float) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    from lpqlc.sample.world import WorldSpec

    w = WorldSpec(size=size)
    x0, y1 = w.transform @ (0, 0)
    span = size * 10 * fraction
    tr = Transformer.from_crs(w.epsg, 4326, always_xy=True)
    lon0, lat0 = tr.transform(x0 + 40, y1 - span + 40)
    lon1, lat1 = tr.transform(x0 + span - 40, y1 - 40)
    return lon0, lat0, lon1, lat1


def _best(fn: Any, repeat: int) -> float:
    fn()  # warm-up: file cache, imports, worker startup
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def loaders(archive: Any, size: int, quarter: Any, client: Any, chunk: int, repeat: int) -> dict[str, float]:
    """Seconds (best of ``repeat``, alternating) per loader for the whole AOI's tile tasks on ``client``."""
    from lpqlc.composite.run import layer_names
    from lpqlc.composite.tile_task import portable_items, tile_block
    from lpqlc.composite.tiles import ItemIndex, tile_sources
    from lpqlc.config import config_from_dict
    from lpqlc.grid import OutputGrid
    from lpqlc.sources.search import search_quarter

    cfgs = {}
    for loader in ("odc-stac", "stackstac"):
        cfgs[loader] = config_from_dict({
            "aoi": {"bbox": list(_bbox(size, 1.0))},
            "sources": {"catalog": archive.catalog, "max_cloud_cover": 100}, "storage": {"url": "/tmp/unused"},
            "grid": {"tile_size": 2 * chunk, "chunk_size": chunk},
            "science": {"composite": {"loader": loader}},
        })  # fmt: skip
    cfg = cfgs["odc-stac"]
    res = search_quarter(cfg, quarter)
    grid = OutputGrid.from_config(cfg)
    tiles = list(grid.iter_tiles(quarter))
    portable = portable_items(res.items)
    index = ItemIndex(res.items, grid.crs)
    jobs = [(tuple(portable[it.id] for it in ts.items), ts.gbox) for ts in tile_sources(index, tiles)]
    names = layer_names(cfg)

    def run(loader: str) -> None:
        ccfg = cfgs[loader].science.composite
        futs = [client.submit(tile_block, src, res.rule, ccfg, g, chunk, names, {}, pure=False) for src, g in jobs]
        client.gather(futs)

    best = {k: float("inf") for k in cfgs}
    for k in cfgs:
        run(k)  # warm-up
    for _ in range(repeat):
        for k in cfgs:
            t = time.perf_counter()
            run(k)
            best[k] = min(best[k], time.perf_counter() - t)
    print(f"loaders, {len(tiles)} tiles of {2 * chunk} px as tile tasks ({len(res.items)} items): odc-stac "
          f"{best['odc-stac']:.2f} s, stackstac {best['stackstac']:.2f} s; stackstac / odc-stac "
          f"{best['stackstac'] / best['odc-stac']:.2f}", flush=True)  # fmt: skip
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384, help="sample world size, 10 m pixels (multiple of 6)")
    ap.add_argument("--quarter", default="2022Q3")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only-loaders", action="store_true", help="only the odc-stac / stackstac comparison")
    args = ap.parse_args()

    import odc.stac
    from dask.distributed import Client, LocalCluster
    from distributed.diagnostics import MemorySampler

    from lpqlc.composite import build_composite
    from lpqlc.composite.build import load_stack
    from lpqlc.quarter import Quarter
    from lpqlc.sample.archive import SampleSpec, generate

    quarter = Quarter.parse(args.quarter)
    tmp = tempfile.mkdtemp(prefix="lpqlc-bench-")
    archive = generate(tmp, SampleSpec(seed=11, size=args.size, start=quarter, end=quarter))
    odc.stac.configure_rio(cloud_defaults=True)

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="3GiB") as cluster, Client(cluster) as client:  # fmt: skip
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared: absolute "
              "times are disturbed, ratios are side by side)", flush=True)  # fmt: skip
        loaders(archive, args.size, quarter, client, args.chunk, args.repeat)
        if args.only_loaders:
            return
        rows = []
        for fraction in (0.5, 1.0):
            cfg, res, gbox = _items_and_grid(archive, quarter, _bbox(args.size, fraction), args.chunk)
            ccfg = cfg.science.composite

            def bare(res: Any = res, ccfg: Any = ccfg, gbox: Any = gbox) -> None:
                ds, _ = load_stack(res.items, res.rule, ccfg, gbox, args.chunk)
                dask.compute(*(ds[v].data.max() for v in ds.data_vars))

            def ours(res: Any = res, ccfg: Any = ccfg, gbox: Any = gbox) -> None:
                comp = build_composite(res.items, res.rule, ccfg, gbox, args.chunk)
                dask.compute(*(comp[v].data.max() for v in comp.data_vars))

            t_bare, t_ours = _best(bare, args.repeat), _best(ours, args.repeat)
            ms = MemorySampler()
            with ms.sample("composite", measure="process", interval=0.05):
                ours()
            peak = float(ms.to_pandas()["composite"].max()) / args.workers / 2**20
            px = gbox.shape.x * gbox.shape.y
            rows.append((fraction, gbox.shape, len(res.items), t_bare, t_ours, px, peak))
        client.close()

    cores = args.workers
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"LocalCluster {args.workers} workers × 1 thread; chunk {args.chunk} px; quarter {quarter}")  # fmt: skip
    print("AOI   grid (y×x)    items  bare odc-stac load  composite  ratio  Mpx/s/core  peak MiB/worker")
    for fraction, shape, n, t_bare, t_ours, px, peak in rows:
        print(f"{fraction:>4.0%}  {shape.y:>5}×{shape.x:<6} {n:>5}  {t_bare:>17.3f}s  {t_ours:>8.3f}s  "
              f"{t_ours / t_bare:>5.2f}  {px / t_ours / 1e6 / cores:>10.2f}  {peak:>15.0f}")  # fmt: skip
    print(f"ratio (composite / bare load, full AOI): {rows[-1][4] / rows[-1][3]:.2f}  (target ≤ 1.5)")
    print(f"peak worker memory, full / half AOI: {rows[-1][6] / rows[0][6]:.2f}×  (target: no growth)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
