"""Peak memory of the erosion job at ×1, ×4, ×16 the sample area: client and each worker stay flat.

For each scale a sample archive of one year (2021) is generated (``SampleSpec.size`` = base × √scale;
its own process, not counted), then the year's composites are made in a client process and cluster of
their own (their peaks printed apart: they are the composite job's, see "Pixel memory"), then
``run_erosion`` runs in a fresh client process on a LocalCluster of ``--workers`` single-threaded worker
processes, reusing the composites. Printed: the AOI size, wall time, the client's peak RSS and each
worker's (``VmHWM``, :func:`lpqlc.cluster.peak_rss_mb`), and each scale's ratio to ×1 (target ±20 %), for both jobs; for the erosion
job also the client's CPU seconds per tile (planning the tile tasks, reading results: the client's
share of the work, which must not grow per tile with the AOI).
Tiles and chunks are fixed (``--tile``, ``--chunk``), so a task's memory does not grow with the AOI.
``--baseline DIR`` also runs the erosion job with the lpqlc package found in DIR (e.g. a worktree of an
earlier commit) on the same input, and prints our client CPU per tile as a ratio to it.

    python benchmarks/erosion_memory.py [--base 384] [--scales 1 4 16] [--tile 256] [--chunk 128] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lpqlc.quarter import Quarter

YEAR = 2021


def _bbox(size: int, seed: int, margin_m: float = 60.0) -> list[float]:
    from pyproj import Transformer

    from lpqlc.sample.world import WorldSpec

    w = WorldSpec(seed=seed, size=size)
    x0, y1 = w.transform @ (0, 0)
    x1, y0 = w.transform @ (size, size)
    tr = Transformer.from_crs(w.epsg, 4326, always_xy=True)
    lons, lats = tr.transform([x0 + margin_m, x1 - margin_m, x0 + margin_m, x1 - margin_m],
                              [y0 + margin_m, y0 + margin_m, y1 - margin_m, y1 - margin_m])  # fmt: skip
    return [max(lons[0], lons[2]), max(lats[0], lats[1]), min(lons[1], lons[3]), min(lats[2], lats[3])]


def _generate(folder: Path, size: int) -> None:
    from lpqlc.sample.archive import SampleSpec, generate

    arch = generate(str(folder / "archive"), SampleSpec(seed=7, size=size, start=Quarter(YEAR, 1), end=Quarter(YEAR, 4)))
    (folder / "archive.json").write_text(json.dumps({"catalog": arch.catalog, "truth": arch.truth}))


def _config(folder: Path, size: int, tile: int, chunk: int) -> Any:
    from lpqlc.config import config_from_dict

    arch = json.loads((folder / "archive.json").read_text())
    return config_from_dict({
        "name": "mem", "aoi": {"name": "mem", "bbox": _bbox(size, 7)},
        "period": {"start": f"{YEAR}Q1", "end": f"{YEAR}Q4"}, "grid": {"tile_size": tile, "chunk_size": chunk},
        "sources": {"catalog": arch["catalog"], "max_cloud_cover": 100}, "storage": {"url": str(folder / "erosion")},
    })  # fmt: skip


def _run(folder: Path, size: int, workers: int, tile: int, chunk: int, job: str) -> None:
    from dask.distributed import Client, LocalCluster

    from lpqlc.cluster import peak_rss_mb
    from lpqlc.composite.run import ensure_composites
    from lpqlc.erosion.run import run_erosion
    from lpqlc.podenv import GDAL_CACHEMAX_MB
    from lpqlc.quarter import quarter_range

    arch = json.loads((folder / "archive.json").read_text())
    out = folder / "erosion"
    cfg = _config(folder, size, tile, chunk)
    quarters = quarter_range(f"{YEAR}Q1", f"{YEAR}Q4")
    t, cpu = time.perf_counter(), time.process_time()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="4GiB", env={"GDAL_CACHEMAX": GDAL_CACHEMAX_MB}) as cluster, \
            Client(cluster) as client:  # fmt: skip  # the workers' GDAL cache bounded as lpqlc's clusters have it
        if job == "composite":
            ensure_composites(cfg, f"{out}/composites", quarters, client)
        else:
            landcover = f"{arch['truth']}/landcover/{{quarter}}.tif"
            cpu = time.process_time()  # the cluster's start is not the job's
            run = run_erosion(cfg, quarters, str(out), landcover=landcover, client=client)
            cpu, tiles = time.process_time() - cpu, len(run.tiles)
        seconds = time.perf_counter() - t
        peaks = client.run(peak_rss_mb)  # VmHWM: ru_maxrss would count the nanny's size at the fork
    client_mb = peak_rss_mb()
    extra = {"client_cpu_per_tile": cpu / tiles, "tiles": tiles} if job != "composite" else {}
    print(json.dumps({"seconds": seconds, "client_mb": client_mb, "workers_mb": sorted(peaks.values()), **extra}))


def _spawn(*args: str, code: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": code} if code else None
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False, env=env)
    if res.returncode:
        raise RuntimeError(res.stderr[-4000:])
    lines = [ln for ln in res.stdout.strip().splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=384)
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--child", choices=("generate", "composite", "run"))
    ap.add_argument("--folder")
    ap.add_argument("--size", type=int)
    ap.add_argument("--baseline", help="a folder holding another lpqlc package (e.g. an earlier commit's worktree)")
    args = ap.parse_args()
    if args.child == "generate":
        _generate(Path(args.folder), args.size)
        return
    if args.child in ("composite", "run"):
        _run(Path(args.folder), args.size, args.workers, args.tile, args.chunk, args.child)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared: absolute times vary); "
          f"{args.workers} worker processes × 1 thread, tile {args.tile} px, chunk {args.chunk} px")  # fmt: skip
    base: dict[str, Any] = {}
    for scale in args.scales:
        size = int(round(args.base * math.sqrt(scale) / 6)) * 6
        with tempfile.TemporaryDirectory() as tmp:
            _spawn("--child", "generate", "--folder", tmp, "--size", str(size))
            for job in ("composite", "run"):
                r = _spawn("--child", job, "--folder", tmp, "--size", str(size), "--workers", str(args.workers),
                           "--tile", str(args.tile), "--chunk", str(args.chunk))  # fmt: skip
                b = base.setdefault(job, r)
                wmax, bmax = max(r["workers_mb"]), max(b["workers_mb"])
                name = "composites" if job == "composite" else "erosion   "
                workers = ", ".join(f"{w:.0f}" for w in r["workers_mb"])
                print(f"×{scale:<3d} {name} {size}² px at 10 m ({size * size / 1e6:5.2f} Mpx): "
                      f"{r['seconds']:7.1f} s, client peak {r['client_mb']:6.0f} MB "
                      f"({r['client_mb'] / b['client_mb']:.2f}× ×1), workers peak {workers} MB "
                      f"(max {wmax / bmax:.2f}× ×1)", flush=True)  # fmt: skip
                if job == "run":
                    print(f"     client CPU {r['client_cpu_per_tile']:.3f} s per tile ({r['tiles']} tiles-years; "
                          f"{r['client_cpu_per_tile'] / b['client_cpu_per_tile']:.2f}× ×1)", flush=True)  # fmt: skip
                if job == "run" and args.baseline:
                    for sub in (str(YEAR), "static"):  # not reused: computed again, as ours did
                        shutil.rmtree(Path(tmp) / "erosion" / sub, ignore_errors=True)
                    o = _spawn("--child", job, "--folder", tmp, "--size", str(size), "--workers", str(args.workers),
                               "--tile", str(args.tile), "--chunk", str(args.chunk), code=args.baseline)  # fmt: skip
                    ob = base.setdefault("baseline", o)
                    print(f"     baseline ({args.baseline}): {o['seconds']:7.1f} s, client peak {o['client_mb']:.0f} MB "
                          f"({o['client_mb'] / ob['client_mb']:.2f}× ×1), workers peak "
                          f"{', '.join(f'{w:.0f}' for w in o['workers_mb'])} MB, client CPU "
                          f"{o['client_cpu_per_tile']:.3f} s per tile; ours / baseline: client CPU per tile "
                          f"{r['client_cpu_per_tile'] / o['client_cpu_per_tile']:.2f}×", flush=True)  # fmt: skip

if __name__ == "__main__":
    main()
