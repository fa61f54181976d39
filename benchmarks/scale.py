"""Composites at plateau scale: client planning per tile as the catalog grows, and memory as the area grows.

1. ``meta`` (no pixels). A synthetic Sentinel-2 L2A catalog shaped like Earth Search v1 (MGRS-like
   109.8 km tiles on the UTM zones over the bbox of ``pipelines/loess-plateau.yaml``, one acquisition
   per tile every 5 days, proj:* metadata on every asset, 10980² bands): a quarter of it is ~2,000 items.
   ×4 and ×16 the item count are that catalog plus 3 and 15 copies shifted by whole plateau spans (so
   the per-tile item count stays that of the real plateau while the total grows). Over a fixed sample of
   the plateau's 10 m tiles (4096 px), the client time per tile is measured for ours (what
   ``run_composite`` does per tile: STRtree query, time slices, unit key, one small task whose graph is
   built on the worker, :func:`lpqlc.composite.run.tile_unit`), plus the once-per-quarter costs (the
   STRtree, the items' JSON for the tasks) spread over the plateau's tiles, against two baselines on
   the same tiles: the tile's odc-stac graph built on the client from its own items (what the run did
   in the previous round), and from every item of the quarter (the run before per-tile sources, ×1 only).
   Target: ours flat (±20 %) from ×1 to ×16, under 50 ms per tile at ×1.
2. ``pixels``. ``run_composite`` of the sample world (one Sentinel-2 quarter) at ×1, ×4 and ×16 its area
   (``SampleSpec.size`` 96, 192, 384 times ``--base``; tiles of 128² px), each in a fresh process with its own LocalCluster (2 workers,
   1 thread): peak RSS of the client process and of each worker. Target: flat (±20 %).

    python benchmarks/scale.py [meta|pixels|all] [--tiles 24] [--base 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np

PLATEAU = (100.9, 33.7, 114.6, 41.3)  # pipelines/loess-plateau.yaml aoi.bbox
REVISIT_DAYS = 5
BANDS = {"blue": 10980, "green": 10980, "red": 10980, "nir": 10980, "swir16": 5490, "scl": 5490}


def mgrs_like_tiles(bbox: tuple[float, float, float, float]) -> list[tuple[int, float, float, Any]]:
    """(UTM zone, west, north, lon/lat footprint) of 109.8 km tiles on a 100 km lattice (as MGRS) over bbox."""
    from odc.geo import geom

    w, s, e, n = bbox
    out = []
    area = geom.box(w, s, e, n, crs="EPSG:4326")
    for zone in range(int((w + 180) // 6) + 1, int((e + 180) // 6) + 2):
        epsg = 32600 + zone
        zone_box = geom.box(max(w, -180 + 6 * (zone - 1)), s, min(e, -180 + 6 * zone), n, crs="EPSG:4326")
        x0, y0, x1, y1 = zone_box.to_crs(epsg).boundingbox
        for x in np.arange(np.floor(x0 / 1e5) * 1e5, x1, 1e5):
            for y in np.arange(np.floor(y0 / 1e5) * 1e5, y1, 1e5):
                fp = geom.box(x, y, x + 109_800, y + 109_800, crs=f"EPSG:{epsg}").to_crs("EPSG:4326")
                if fp.intersects(area):
                    out.append((zone, float(x), float(y + 109_800), fp))
    return out


def synthetic_items(quarter_start: datetime, days: int, copies: int) -> list[Any]:
    """Earth Search shaped items (metadata only) of one quarter over the plateau and ``copies - 1`` shifted copies."""
    import pystac
    import shapely
    from shapely.geometry import mapping

    items = []
    side = int(np.ceil(np.sqrt(copies)))
    tiles = [(zone, west, north, fp.geom.simplify(1e-4)) for zone, west, north, fp in mgrs_like_tiles(PLATEAU)]
    for c in range(copies):
        # copies shifted by whole plateau spans: footprints only (never read: they feed no plateau tile)
        # plus a 3° gap, so no copy's footprint reaches a plateau tile
        dx, dy = (c % side) * (PLATEAU[2] - PLATEAU[0] + 3), (c // side) * (PLATEAU[3] - PLATEAU[1] + 3)
        for t, (zone, west, north, fp) in enumerate(tiles):
            moved = shapely.affinity.translate(fp, dx, dy)
            shape_json, bbox = mapping(moved), list(moved.bounds)
            for d in range(t % REVISIT_DAYS, days, REVISIT_DAYS):
                when = quarter_start + timedelta(days=d, hours=3, minutes=(t % 7) * 3)
                iid = f"S2A_{zone}X{c:02d}{t:03d}_{when:%Y%m%d}_0_L2A"
                it = pystac.Item(iid, shape_json, bbox, when, {
                    "platform": "sentinel-2a", "eo:cloud_cover": 10.0, "proj:epsg": 32600 + zone,
                    "proj:code": f"EPSG:{32600 + zone}", "s2:mgrs_tile": f"{zone}X{c:02d}{t:03d}",
                    "s2:processing_baseline": "05.00", "updated": when.isoformat() + "Z"}, collection="sentinel-2-l2a")  # fmt: skip
                for key, px in BANDS.items():
                    res = 109_800 / px
                    it.add_asset(key, pystac.Asset(f"s3://sentinel-cogs/{iid}/{key}.tif", media_type=pystac.MediaType.COG,
                                                   roles=["data"], extra_fields={
                        "proj:shape": [px, px], "proj:transform": [res, 0.0, west, 0.0, -res, north],
                        "raster:bands": [{"nodata": 0, "data_type": "uint8" if key == "scl" else "uint16",
                                          "scale": 1e-4, "offset": 0.0}]}))  # fmt: skip
                items.append(it)
    return items


def meta(n_tiles: int, seed: int = 0) -> dict[str, Any]:
    from lpqlc.composite.run import layer_names, tile_graph, tile_unit
    from lpqlc.composite.tile_task import portable_items
    from lpqlc.composite.tiles import ItemIndex, TileSources
    from lpqlc.config import config_from_dict
    from lpqlc.grid import OutputGrid
    from lpqlc.quarter import Quarter
    from lpqlc.sources.rules import rule_for

    cfg = config_from_dict({"aoi": {"bbox": list(PLATEAU)}, "storage": {"url": "/tmp/unused"}, "sources": {"catalog": "/tmp/unused"},
                            "grid": {"tile_size": 4096, "chunk_size": 1024}})  # fmt: skip
    q = Quarter(2022, 3)
    grid = OutputGrid.from_config(cfg)
    tiles = list(grid.iter_tiles(q))
    rng = np.random.default_rng(seed)
    sample = [tiles[i] for i in sorted(rng.choice(len(tiles), size=min(n_tiles, len(tiles)), replace=False))]
    rule = rule_for("earth-search", "sentinel2")
    names = layer_names(cfg)
    docs = cfg.science.composite.model_dump(mode="json"), cfg.grid.model_dump(mode="json")
    out: dict[str, Any] = {"tiles_10m": len(tiles), "sampled": len(sample), "scales": {}}
    for scale in (1, 4, 16):
        items = synthetic_items(datetime(2022, 7, 1), 92, scale)
        t0 = time.perf_counter()
        index = ItemIndex(items, grid.crs)
        t1 = time.perf_counter()
        # the items' JSON is made as tiles first ask for it: over the whole plateau, once per item that
        # feeds a tile; timed here for all items that intersect some plateau tile (the copies feed none)
        feeding = {index.items[i].id for _, g in tiles for i in index.query(g)}
        t2 = time.perf_counter()
        portable = portable_items(items)
        for iid in feeding:
            portable[iid]
        t_once = (t1 - t0) + (time.perf_counter() - t2)
        per_tile, client_graph, n_items = [], [], []
        for k, (idx, gbox) in enumerate(sample):
            t = time.perf_counter()
            ts = TileSources(idx, gbox, tuple(index.items[i] for i in index.query(gbox)))
            tile_unit(ts, rule, cfg, q, "/tmp/unused", names, portable, docs)
            per_tile.append(time.perf_counter() - t)
            n_items.append(len(ts.items))
            if k < 3:  # baseline 1: the same tile's graph built on the client (slow: three tiles)
                t = time.perf_counter()
                tile_graph(ts, rule, cfg, names)
                client_graph.append(time.perf_counter() - t)
        base = []
        for idx, gbox in sample[: 1 if scale == 1 else 0]:  # baseline 2: every item into every tile (one tile, ×1)
            t = time.perf_counter()
            tile_graph(TileSources(idx, gbox, tuple(items)), rule, cfg, names)
            base.append(time.perf_counter() - t)
        base = base or [float("nan")]
        once_ms = 1000 * t_once / len(tiles)
        out["scales"][scale] = {
            "items": len(items), "items_per_tile_median": float(np.median(n_items)),
            "index_s": t1 - t0, "portable_s": t_once - (t1 - t0), "once_ms_per_plateau_tile": once_ms,
            "ours_ms_per_tile": 1000 * float(np.median(per_tile)),
            "ours_total_ms_per_tile": 1000 * float(np.median(per_tile)) + once_ms,
            "client_graph_ms_per_tile": 1000 * float(np.median(client_graph)),
            "baseline_ms_per_tile": 1000 * float(np.median(base)),
        }  # fmt: skip
        print(f"meta ×{scale}: {len(items)} items, median {np.median(n_items):.0f} items/tile; ours "
              f"{1000 * np.median(per_tile):.1f} ms/tile (+ once per quarter {once_ms:.2f} ms/tile: STRtree "
              f"{t1 - t0:.1f} s, items' JSON {t_once - (t1 - t0):.1f} s); tile graph on the client "
              f"{1000 * np.median(client_graph):.0f} ms/tile; all items per tile {1000 * np.median(base):.0f} ms/tile",
              flush=True)  # fmt: skip
        del items, index, portable
    s = out["scales"]
    out["ours_x16_over_x1"] = s[16]["ours_total_ms_per_tile"] / s[1]["ours_total_ms_per_tile"]
    out["per_tile_x16_over_x1"] = s[16]["ours_ms_per_tile"] / s[1]["ours_ms_per_tile"]
    out["client_graph_over_ours_x1"] = s[1]["client_graph_ms_per_tile"] / s[1]["ours_total_ms_per_tile"]
    out["baseline_over_ours_x1"] = s[1]["baseline_ms_per_tile"] / s[1]["ours_total_ms_per_tile"]
    print(f"ours ×16/×1: per tile {out['per_tile_x16_over_x1']:.2f}, with the once-per-quarter share "
          f"{out['ours_x16_over_x1']:.2f} (target 0.8–1.2); "
          f"at ×1 {s[1]['ours_total_ms_per_tile']:.1f} ms/tile (target < 50); tile graph on the client / ours: "
          f"{out['client_graph_over_ours_x1']:.0f}×; all items per tile / ours: {out['baseline_over_ours_x1']:.0f}×",
          flush=True)  # fmt: skip
    return out


def _world(size: int) -> tuple[str, list[float]]:
    """Folder and lon/lat AOI of the sample world of ``size`` (one Sentinel-2 quarter), made if missing."""
    from pyproj import Transformer

    from lpqlc.quarter import Quarter
    from lpqlc.sample.archive import SampleSpec, generate
    from lpqlc.sample.world import WorldSpec

    q = Quarter(2022, 3)
    root = os.path.join(tempfile.gettempdir(), f"lpqlc-scale-{size}")
    if not os.path.exists(f"{root}/archive/catalog.json"):
        generate(f"{root}/archive", SampleSpec(seed=7, size=size, start=q, end=q))
    w = WorldSpec(seed=7, size=size)
    tr = Transformer.from_crs(w.epsg, 4326, always_xy=True)
    x0, y0, x1, y1 = w.bounds
    lo0, la0 = tr.transform(x0 + 60, y0 + 60)
    lo1, la1 = tr.transform(x1 - 60, y1 - 60)
    return root, [lo0, la0, lo1, la1]


def _pixels_one(size: int) -> None:
    """Child process (the world already made by another): composite one quarter on 2 workers, print peak
    RSS of this client process (``ru_maxrss``) and of the workers (distributed's MemorySampler, process
    memory, per worker)."""
    from dask.distributed import Client, LocalCluster
    from distributed.diagnostics import MemorySampler

    from lpqlc.composite.run import run_composite
    from lpqlc.config import config_from_dict
    from lpqlc.quarter import Quarter

    q = Quarter(2022, 3)
    root, bbox = _world(size)
    out = tempfile.mkdtemp(prefix=f"lpqlc-scale-out-{size}-")
    cfg = config_from_dict({
        "aoi": {"bbox": bbox}, "sources": {"catalog": f"{root}/archive/catalog.json", "max_cloud_cover": 100},
        "storage": {"url": out}, "grid": {"tile_size": 128, "chunk_size": 64},
    })  # fmt: skip
    ms = MemorySampler()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        t = time.perf_counter()
        with ms.sample("run", measure="process", interval=0.2):
            run = run_composite(cfg, q, f"{out}/comp", client=client)
        secs = time.perf_counter() - t
    worker_peak = float(ms.to_pandas().max().iloc[0]) / 2 / 2**20
    client_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"size": size, "tiles": len(run.tiles), "seconds": secs, "client_peak_mib": client_kb / 1024,
                      "worker_peak_mib": [worker_peak]}))


def pixels(base: int = 1) -> dict[str, Any]:
    out = {}
    for factor, size in ((1, 96 * base), (4, 192 * base), (16, 384 * base)):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, __file__, "_world", str(size)], check=True, env=env, timeout=3600)
        res = subprocess.run([sys.executable, __file__, "_pixels_one", str(size)], capture_output=True, text=True,
                             env=env, timeout=3600)  # fmt: skip
        if res.returncode != 0:
            raise SystemExit(res.stderr[-3000:])
        doc = json.loads(res.stdout.strip().splitlines()[-1])
        out[factor] = doc
        print(f"pixels ×{factor} (size {size}, {doc['tiles']} tiles): client peak {doc['client_peak_mib']:.0f} MiB, "
              f"worker peak {max(doc['worker_peak_mib']):.0f} MiB each, {doc['seconds']:.1f} s",
              flush=True)  # fmt: skip
    c = out[16]["client_peak_mib"] / out[1]["client_peak_mib"]
    w = max(out[16]["worker_peak_mib"]) / max(out[1]["worker_peak_mib"])
    print(f"peak memory ×16 area / ×1: client (ru_maxrss) {c:.2f}, workers (process memory) {w:.2f} (target 0.8–1.2)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["meta", "pixels", "all", "_pixels_one", "_world"])
    ap.add_argument("arg", nargs="?", type=int, default=0)
    ap.add_argument("--tiles", type=int, default=24, help="plateau 10 m tiles sampled for the meta run")
    ap.add_argument("--base", type=int, default=1, help="pixel run world sizes: 96, 192, 384 times this")
    a = ap.parse_args()
    if a.what == "_world":
        _world(a.arg)
        return
    if a.what == "_pixels_one":
        _pixels_one(a.arg)
        return
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()} "
          "(a shared machine: absolute times are disturbed; ratios are taken side by side in one run)")  # fmt: skip
    if a.what in ("meta", "all"):
        meta(a.tiles)
    if a.what in ("pixels", "all"):
        pixels(a.base)


if __name__ == "__main__":
    main()
