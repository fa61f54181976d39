"""Slope + LS + RUSLE from files to GeoTIFFs on a real DEM: today's code (the baseline) against ours.

Input: the Jacksboro fault DEM that ships with matplotlib, reprojected to ``--res`` m (10 m: 8.9 Mpx),
written as a GeoTIFF with seeded R, K, C and P rasters on the same grid.
Baseline ("today", commit 1c59866), as that code ran the steps: the whole DEM read through odc-stac and
held in memory, slope by Horn, LS with ``pyflwdir.from_dem`` routing (its filling-pass directions) and
``upstream_area``, slope and LS written as COGs by ``cog_bytes`` (DEFLATE, predictor, overviews), then A =
R·K·LS·C·P with LS read back from its COG and R, K, C, P through odc-stac, written by ``cog_bytes``.
``--baseline plain``: the simplified baseline of rounds 1–3 (rasterio reads, A from the LS in memory,
three plain DEFLATE GeoTIFFs: cheaper than today's code was).
Ours: the erosion job's static-layer task per ``--tile`` px output tile (``lpqlc.erosion.static``: the
DEM read once over the tile + LS halo by odc-stac, slope and LS in one numba pass after our
Priority-Flood fill and D8 steepest descent, the cache COGs in ZSTD), then A of the tile with LS read back
from its COG, written as a DEFLATE COG like the published layers.
Each runs in its own process (peak RSS of that process), after a warm-up on a small crop (numba JIT
caches); ours single-threaded for the ratio, then with every core. Ours runs with a Dask worker's malloc
environment (its steps are worker tasks in the product). ``--zstd-what-if`` adds runs of ours with A in
ZSTD level 3: what the published layers' codec would change (the product writes DEFLATE). Wall and CPU seconds (user + system,
all threads) of the timed run: on a shared machine the CPU time is the robust figure.

    python benchmarks/terrain_ls.py [--res 10] [--tile 2048] [--repeat 3] [--baseline today|plain]
                                    [--peer-python /path/to/python-with-natcap.invest] [--zstd-what-if]
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
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = ("r", "k", "c", "p")


def _write_inputs(folder: Path, res: float) -> None:
    import rasterio

    from lpqlc.erosion.realdem import jacksboro_dem

    dem = jacksboro_dem(res)
    gbox = dem.odc.geobox
    rng = np.random.default_rng(0)
    shape = dem.shape
    fields = {"dem": dem.values.astype(np.float32), "r": rng.uniform(200, 800, shape), "k": rng.uniform(0.01, 0.05, shape),
              "c": rng.uniform(0.0, 1.0, shape), "p": rng.uniform(0.3, 1.0, shape)}  # fmt: skip
    for name, arr in fields.items():
        with rasterio.open(folder / f"{name}.tif", "w", driver="GTiff", height=shape[0], width=shape[1], count=1,
                           dtype="float32", crs=gbox.crs.to_wkt(), transform=gbox.transform, tiled=True,
                           blockxsize=512, blockysize=512, compress="deflate", nodata=float("nan")) as dst:  # fmt: skip
            dst.write(np.asarray(arr, np.float32), 1)


# ----------------------------------------------------------------------------- today's code (baseline)
def _legacy_ls(z: np.ndarray, transform: Any, cell: float) -> np.ndarray:
    """LS as lpqlc computed it before issue 15 (pyflwdir.from_dem routing), whole DEM in memory."""
    import pyflwdir

    from lpqlc.config.science import LSFactorConfig
    from lpqlc.erosion.terrain import _aspect_of, _horn, _padded, _slope_of, l_factor, s_factor

    cfg = LSFactorConfig()
    z = z.astype(np.float64)
    dx = np.full((z.shape[0], 1), cell)
    gx, gy = _horn(*_padded(z, dx, dx))
    slope = _slope_of(gx, gy).astype(np.float64)
    aspect = _aspect_of(gx, gy).astype(np.float64)
    cellv = cell * np.ones_like(z)
    zz = np.where(np.isfinite(z), z, -9999.0).astype(np.float32)
    flw = pyflwdir.from_dem(data=zz, nodata=-9999.0, transform=transform, latlon=False, outlets="edge")
    area = np.asarray(flw.upstream_area(unit="m2"), dtype=np.float64)
    a_in = area - cellv * cellv
    ls = l_factor(np.maximum(a_in, 0.0), cellv, aspect, slope, cfg) * s_factor(slope, cfg)
    return np.where(np.isfinite(z), np.maximum(ls, 0.0), np.nan).astype(np.float32)


def _legacy(folder: Path, out: Path, crop: int | None, plain: bool = False) -> None:
    """Today's steps (commit 1c59866): its ``static_layers`` read the DEM whole through odc-stac
    (``load_files``), computed slope and LS on it and wrote both as COGs with ``cog_bytes`` (DEFLATE,
    predictor, overviews: the published-layer settings, unchanged since); its erosion task read LS back
    from that COG and R, K, C, P through odc-stac and wrote A with ``cog_bytes``. ``plain``: the
    simplified baseline of rounds 1–3 (rasterio reads, three plain DEFLATE GeoTIFFs without predictor or
    overviews, cheaper than today's code really was), kept to compare with those rounds."""
    import rasterio
    from odc.geo.geobox import GeoBox

    from lpqlc.cog import cog_bytes
    from lpqlc.erosion.terrain import _slope_block

    with rasterio.open(folder / "dem.tif") as src:
        gbox = GeoBox(src.shape, src.transform, src.crs.to_wkt())
        profile = src.profile
    if crop:
        gbox = gbox[:crop, :crop]
    transform, cell = gbox.transform, abs(gbox.transform.a)
    profile = profile | {"width": gbox.shape.x, "height": gbox.shape.y, "transform": transform}

    def read(path: Path) -> np.ndarray:
        if plain:
            with rasterio.open(path) as src:
                return src.read(1, window=rasterio.windows.Window(0, 0, gbox.shape.x, gbox.shape.y))  # type: ignore[no-any-return]
        return _load(str(path), gbox)

    def write(name: str, arr: np.ndarray) -> None:
        if plain:
            with rasterio.open(out / f"{name}.tif", "w", **profile) as dst:
                dst.write(arr.astype(np.float32), 1)
        else:
            (out / f"{name}.tif").write_bytes(cog_bytes(arr.astype(np.float32), transform, gbox.crs.to_wkt(),
                                                        nodata=float("nan")))  # fmt: skip

    z = read(folder / "dem.tif")
    dx = np.full((z.shape[0] + 2, z.shape[1] + 2), cell)
    write("slope", _slope_block(np.pad(z.astype(np.float64), 1, mode="edge"), dx, dx)[1:-1, 1:-1])
    ls = _legacy_ls(z, transform, cell)
    write("ls", ls)
    a = ls if plain else read(out / "ls.tif")
    for name in LAYERS:
        a = a * read(folder / f"{name}.tif")
    write("erosion", a)


def _load(url: str, box: Any) -> np.ndarray:
    """The pixels of one raster on ``box`` through ``lpqlc.sources.rasters.load_files`` (odc-stac's Dask
    graph, one chunk, computed here as a task's graph would be)."""
    from lpqlc.sources.rasters import load_files

    lazy = load_files([url], box, name="v", chunks=max(box.shape.yx))
    return np.asarray(lazy.compute(scheduler="synchronous").values)


# ---------------------------------------------------------------------------------------------- ours
def _ours(folder: Path, out: Path, crop: int | None, tile: int, threads: int, codec: str = "deflate") -> None:
    """As the erosion job does: per output tile, the static task's steps (the DEM read once over the tile
    + LS halo by odc-stac, slope and LS in one pass, the cache COGs: ``lpqlc.erosion.static``), then A =
    R·K·LS·C·P of the tile with LS read back from its COG, written as a published-style COG (DEFLATE).
    One task per tile, on ``threads`` threads. ``codec="zstd"``: A written as ZSTD level 3 instead (a
    what-if for the published layers' codec, not the product's setting)."""
    import dask
    import rasterio
    from odc.geo.geobox import GeoBox, GeoboxTiles

    from lpqlc.cog import cog_bytes
    from lpqlc.config.science import LSFactorConfig
    from lpqlc.erosion.static import _dem_window, slope_ls_tile, write_cache
    from lpqlc.sources.rasters import load_files

    with rasterio.open(folder / "dem.tif") as src:
        gbox = GeoBox(src.shape, src.transform, src.crs.to_wkt())
    if crop:
        gbox = gbox[:crop, :crop]
    cfg = LSFactorConfig()
    tiles = GeoboxTiles(gbox, (tile, tile))

    def one(index: tuple[int, int]) -> None:
        t = f"{out}/{index[0]}_{index[1]}"
        box, inner = _dem_window(gbox, tiles.roi[index], cfg)
        # the static task reads its DEM window now, without a Dask graph (load_dem(..., lazy=False))
        slope, ls = slope_ls_tile(load_files([str(folder / "dem.tif")], box, name="dem", chunks=None), inner, cfg)
        tg = tiles[index]
        write_cache({"slope": slope, "ls": ls}, tg, t, None, 512)
        a = _load(f"{t}/ls.tif", tg)
        for name in LAYERS:
            a = a * _load(str(folder / f"{name}.tif"), tg)
        enc = {"compress": "ZSTD", "level": 3} if codec == "zstd" else {}
        Path(f"{t}/erosion.tif").write_bytes(cog_bytes(a.astype(np.float32), tg.transform, tg.crs.to_wkt(),
                                                       nodata=float("nan"), **enc))  # fmt: skip

    jobs = [dask.delayed(one)(index) for index in np.ndindex(*tiles.shape)]
    dask.compute(*jobs, scheduler="threads" if threads > 1 else "synchronous", num_workers=threads)


def _child(mode: str, folder: Path, tile: int, threads: int, codec: str = "deflate") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        warm.mkdir()
        run = (lambda out, crop: _legacy(folder, out, crop, plain=mode == "plain")) if mode != "ours" else \
            (lambda out, crop: _ours(folder, out, crop, tile, threads, codec))  # fmt: skip
        run(warm, 300)
        t, cpu = time.perf_counter(), _cpu()
        run(Path(tmp), None)
        seconds, cpu = time.perf_counter() - t, _cpu() - cpu
        ls_sum = float(sum(np.nansum(_read(p)) for p in Path(tmp).rglob("ls.tif")))
    from lpqlc.cluster import peak_rss_mb

    peak = peak_rss_mb()  # VmHWM: ru_maxrss would count this driver's size at the fork
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_mb": peak, "ls_sum": ls_sum}))


def _cpu() -> float:
    """CPU seconds of this process, all threads (user + system): robust to other jobs' load, unlike wall time."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def _spawn(mode: str, folder: Path, tile: int, threads: int, gdal_threads: int = 1, codec: str = "deflate") -> dict[str, float]:
    """One side in its own process: ``threads`` Dask threads, ``gdal_threads`` GDAL threads (compression,
    decoding; lpqlc's pods set ``GDAL_NUM_THREADS`` to their CPU limit). Ours runs with a Dask worker's
    malloc settings (the nanny's ``MALLOC_TRIM_THRESHOLD_`` and lpqlc's ``MALLOC_MMAP_THRESHOLD_``): its
    steps are worker tasks. Today's static layers ran on the client, and the peer is a plain process."""
    import dask.config
    import distributed  # noqa: F401 — loads the nanny's defaults into dask's config

    from lpqlc.podenv import MALLOC_ENV

    drop = ("GDAL_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", *MALLOC_ENV)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if gdal_threads > 1:
        env["GDAL_NUM_THREADS"] = str(gdal_threads)
    if mode == "ours":
        trim = dask.config.get("distributed.nanny.pre-spawn-environ").get("MALLOC_TRIM_THRESHOLD_")
        env.update({**({"MALLOC_TRIM_THRESHOLD_": str(trim)} if trim is not None else {}), **MALLOC_ENV})
    res = subprocess.run([sys.executable, __file__, "--child", mode, "--folder", str(folder), "--tile", str(tile),
                          "--threads", str(threads), "--codec", codec], capture_output=True, text=True, check=False,
                         env=env)  # fmt: skip
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _spawn_peer(python: str, folder: Path) -> dict[str, float]:
    """The peer (InVEST SDR's own functions: ``benchmarks/peer_invest.py``) on the same inputs, in its
    own interpreter; its outputs in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([python, str(Path(__file__).with_name("peer_invest.py")), "--out", tmp,
                              *(a for n in ("dem", *LAYERS) for a in (f"--{n}", str(folder / f"{n}.tif")))],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"seconds": out["wall_s"], "cpu_s": out["cpu_s"], "peak_mb": out["peak_mb"], "ls_sum": out["ls_sum"],
            "version": out["version"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=float, default=10.0)
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (alternated); medians compared")
    ap.add_argument("--baseline", choices=("today", "plain"), default="today",
                    help="today: today's steps as its code ran them (odc-stac reads, COG writes); plain: the "
                         "simplified baseline of rounds 1-3 (rasterio reads, plain GeoTIFFs)")
    ap.add_argument("--peer-python", help="a Python with natcap.invest: also run the peer (InVEST SDR's steps)")
    ap.add_argument("--zstd-what-if", action="store_true",
                    help="also run ours with A written as ZSTD level 3 (what the published codec would change)")
    ap.add_argument("--codec", choices=("deflate", "zstd"), default="deflate", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=("today", "plain", "ours"))
    ap.add_argument("--folder")
    args = ap.parse_args()
    if args.child:
        _child(args.child, Path(args.folder), args.tile, args.threads, args.codec)
        return
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_inputs(folder, args.res)
        shape = _read(folder / "dem.tif").shape
        today, ours, peer, zstd = [], [], [], []
        for _ in range(args.repeat):  # alternated, so a slow spell of the machine hits every side
            today.append(_spawn(args.baseline, folder, args.tile, 1))
            ours.append(_spawn("ours", folder, args.tile, 1))
            if args.peer_python:
                peer.append(_spawn_peer(args.peer_python, folder))
            if args.zstd_what_if:
                zstd.append(_spawn("ours", folder, args.tile, 1, codec="zstd"))
        ours_all = _spawn("ours", folder, args.tile, cores)
        ours_pod = _spawn("ours", folder, args.tile, 1, gdal_threads=cores)
    mpx = shape[0] * shape[1] / 1e6
    print(f"machine: {platform.processor() or platform.machine()}, {cores} CPUs (shared: absolute times vary); "
          f"Jacksboro DEM at {args.res:g} m, {shape[0]}×{shape[1]} = {mpx:.1f} Mpx, tile {args.tile}")  # fmt: skip
    label = "today" if args.baseline == "today" else "today, plain I/O"
    rows = [(f"{label} #{i + 1} (whole DEM, pyflwdir.from_dem)", r) for i, r in enumerate(today)]
    rows += [(f"ours #{i + 1}, 1 thread", r) for i, r in enumerate(ours)] + [(f"ours, {cores} threads", ours_all)]
    rows += [(f"ours, 1 thread + {cores} GDAL threads (as a pod)", ours_pod)]
    rows += [(f"peer #{i + 1} (InVEST {r['version']} SDR steps)", r) for i, r in enumerate(peer)]
    rows += [(f"what-if: ours, A in ZSTD 3 #{i + 1}", r) for i, r in enumerate(zstd)]
    for name, r in rows:
        print(f"{name:44s} {r['seconds']:7.1f} s wall {r['cpu_s']:7.1f} s CPU  peak RSS {r['peak_mb']:7.0f} MB")
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} (wall times suffer from it, CPU times much less)")

    def med(runs: list[dict[str, float]], key: str) -> float:
        return float(np.median([r[key] for r in runs]))

    print(f"speed-up (median today / median ours, same single core, {args.repeat} runs each): "
          f"{med(today, 'seconds') / med(ours, 'seconds'):.2f} by wall time, "
          f"{med(today, 'cpu_s') / med(ours, 'cpu_s'):.2f} by CPU time  (target ≥ 3)")  # fmt: skip
    print(f"LS agrees: sum today {today[0]['ls_sum']:.6g}, ours {ours[0]['ls_sum']:.6g} (routing differs: steepest descent)")
    peak_today, peak_ours = max(r["peak_mb"] for r in today), max(r["peak_mb"] for r in ours + [ours_all, ours_pod])
    print(f"peak memory (ours / today, the largest of each side's runs): {peak_ours / peak_today:.2f}  (target ≤ 0.5)")
    wall_best = min(ours_all["seconds"], ours_pod["seconds"])
    print(f"speed-up by wall time with every core (median today / ours' faster multi-core run): "
          f"{med(today, 'seconds') / wall_best:.2f}")  # fmt: skip
    if peer:
        print(f"speed-up over the peer (median peer / median ours, single core): "
              f"{med(peer, 'seconds') / med(ours, 'seconds'):.2f} by wall time, "
              f"{med(peer, 'cpu_s') / med(ours, 'cpu_s'):.2f} by CPU time  (bar ≥ 5)")  # fmt: skip
        if zstd:
            print(f"what-if, A written as ZSTD level 3: {med(peer, 'cpu_s') / med(zstd, 'cpu_s'):.2f}× the peer by "
                  f"CPU time (single core)")  # fmt: skip
        print(f"speed-up over the peer by wall time with every core (the peer's steps are single-threaded): "
              f"{med(peer, 'seconds') / wall_best:.2f}")  # fmt: skip
        peak_peer, peak_one = max(r["peak_mb"] for r in peer), max(r["peak_mb"] for r in ours)
        print(f"peak memory (ours / peer): {peak_one / peak_peer:.2f} on one thread, {peak_ours / peak_peer:.2f} "
              f"the largest of ours' runs  (bar ≤ 1; peer {peak_peer:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
