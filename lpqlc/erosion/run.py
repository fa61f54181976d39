"""Run RUSLE for a set of quarters over the AOI, tile by tile on Dask; write COGs, a CSV summary, plots.

Layout under the output URL::

    static/<tile>/{slope,ls,k}.tif               static layers on the 30 m grid, per tile (lpqlc.erosion.static)
    <YYYYQn>/<tile>/erosion.tif                  quarterly A, t/(hm²·q)  (+ r, k, ls, c, p with factors)
    <YYYY>/<tile>/{erosion,grade}.tif            annual A, t/(hm²·a), and its SL 190-2007 grade
    summary.csv                                  per year, period and subregion (see docs/erosion.md)
    plots/{annual_mean,quarterly_shares,map_<period>}.png

Inputs: land cover per quarter (``landcover``: a path template holding ``{quarter}``, e.g. the sample
archive's ``truth/landcover/{quarter}.tif``, and optionally ``{tile}`` for tiled maps such as
``<classify>/refined/{quarter}/{tile}/class.tif``), FVC from the
composites (run first for quarters that lack them), DEM, soil and daily precipitation from the
configured catalog. Each (year, tile) is one compute point returning only its statistics.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc import __version__
from lpqlc.composite.run import FVC, composite_summary, ensure_composites, layer_urls, tile_id
from lpqlc.config import PipelineConfig
from lpqlc.erosion.cover import c_factor, p_factor
from lpqlc.erosion.gapfill import (
    FILLED_ADJACENT,
    FILLED_LANDCOVER,
    FILLED_SAME_QUARTER,
    MISSING,
    NO_DATA,
    OBSERVED,
    QUALITY,
    annual_quality,
    fill_fvc,
    fill_landcover,
    flag_landcover_fill,
    landcover_candidates,
)
from lpqlc.erosion.inputs import r_quarter, r_quarters, subregion_features
from lpqlc.erosion.reductions import display_image
from lpqlc.erosion.rusle import erosion_grade
from lpqlc.erosion.static import static_layers
from lpqlc.erosion.tile_task import erosion_tile, tile_spec
from lpqlc.errors import ConfigError, SourceError
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import cog_bytes
from lpqlc.publish.collections import class_colours
from lpqlc.publish.preview import write_png
from lpqlc.quarter import Quarter
from lpqlc.sources.rasters import load_files
from lpqlc.storage import Store, exists, gdal_env, open_filesystem, parse_storage_url, read_bytes, write_bytes
from lpqlc.units import Unit, marker_key, run_units, unit_key

__all__ = ["ErosionRun", "run_erosion", "static_layers", "FACTORS"]

log = logging.getLogger(__name__)

FACTORS = ("r", "k", "ls", "c", "p")
#: Tile tasks the client plans and holds at once (a batch is computed before the next is planned).
TILE_BATCH = 32


@dataclass
class ErosionRun:
    """What an erosion run wrote."""

    prefix: str
    quarters: list[Quarter]
    years: list[int]
    summary_csv: str
    plots: list[str] = field(default_factory=list)
    tiles: list[str] = field(default_factory=list)


def _fvc_urls(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, client: Any) -> list[str]:
    ensure_composites(cfg, comp_dir, [quarter], client)
    summary = composite_summary(cfg, comp_dir, quarter)
    if FVC not in summary["layers"]:
        log.warning("%s: the composite has no FVC (no clear observation): C is NaN for vegetated classes", quarter)
        return []
    return layer_urls(comp_dir, quarter, summary, FVC)


def _existing_fvc(cfg: PipelineConfig, comp_dir: str, quarter: Quarter) -> tuple[list[str], str]:
    """(FVC URLs, digest of composite.json) of a quarter whose composite exists already ([] and "" if
    none, or it has no FVC): neighbours for gap filling are used when present, never computed for it."""
    url = f"{comp_dir}/{quarter}/composite.json"
    if not exists(url, cfg.store):
        return [], ""
    digest = hashlib.sha256(read_bytes(url, cfg.store)).hexdigest()
    summary = composite_summary(cfg, comp_dir, quarter)
    return (layer_urls(comp_dir, quarter, summary, FVC) if FVC in summary["layers"] else []), digest


@dataclass
class FVCNeighbours:
    """FVC URLs of a quarter's gap-filling neighbours: per year distance the same quarter before/after,
    and the previous and following quarters ([] where absent); ``digests`` identify their composites."""

    same_quarter: list[list[list[str]]] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)
    following: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


def fvc_neighbours(cfg: PipelineConfig, comp_dir: str, quarter: Quarter,
                   known: dict[Quarter, list[str]] | None = None) -> FVCNeighbours:  # fmt: skip
    """The neighbours :func:`lpqlc.erosion.gapfill.fill_fvc` may use for ``quarter`` (``known``: FVC URLs
    of quarters already resolved, e.g. the run's own)."""
    known = known or {}
    gap = cfg.science.rusle.gapfill
    out = FVCNeighbours()

    def urls(q: Quarter) -> list[str]:
        if q in known:
            return known[q]
        found, digest = _existing_fvc(cfg, comp_dir, q)
        out.digests.append(f"{q}:{digest}")
        return found

    if "same_quarter" in gap.rules:
        for d in range(1, gap.years + 1):
            ring = [urls(Quarter(quarter.year + s * d, quarter.q)) for s in (-1, 1)]
            out.same_quarter.append([u for u in ring if u])
    if "adjacent_quarters" in gap.rules:
        out.previous, out.following = urls(quarter - 1), urls(quarter + 1)
    return out


class Footprints:
    """Footprints of input rasters (their extent and pixel size), read once per file and run on the client.

    A tile's layers read only the files whose footprint meets the tile (padded by two output pixels,
    the bilinear kernel's reach), in the given order, so the mosaic is that of all files and the tile's
    graph is bounded by the tile. Hand-written: odc-stac's ``load`` does select items per output chunk,
    but only after building a STAC item (one file open) per URL it is given."""

    def __init__(self, store: Store | None):
        self.store = store
        self._boxes: dict[str, GeoBox] = {}
        self._bounds: dict[tuple[str, str], tuple[float, ...]] = {}
        self._arrays: dict[tuple[tuple[str, ...], str], np.ndarray] = {}  # bounds per (list, CRS)
        #: lazy loads of the current tile, shared by its quarters (a quarter's land cover is also its
        #: neighbours' gap filler); the run clears it per tile
        self.loads: dict[tuple[Any, ...], xr.DataArray] = {}

    def load(self, urls: list[str], gbox: GeoBox, name: str, resampling: str, chunks: int) -> xr.DataArray:
        """:func:`lpqlc.sources.rasters.load_files` of the ``urls`` meeting ``gbox`` (the first one if
        none does), made once per tile and reused."""
        urls = self.overlapping(urls, gbox) or urls[:1]
        key = (tuple(urls), name, resampling, chunks, gbox.shape.yx, tuple(gbox.affine), str(gbox.crs))
        if key not in self.loads:
            self.loads[key] = load_files(urls, gbox, name=name, resampling=resampling, chunks=chunks,
                                         store=self.store)  # fmt: skip
        return self.loads[key]

    def subset(self, urls: list[str], crs: Any) -> Footprints:
        """A copy holding only ``urls``' grids and their bounds in ``crs`` (no loads): what a tile task
        needs to choose and read its files on a worker without opening any file header again."""
        out = Footprints(self.store)
        for u in urls:
            out._boxes[u] = self.geobox(u)
            key = (u, str(crs))
            out._bounds[key] = self._bounds.get(key) or tuple(self.geobox(u).extent.to_crs(crs).boundingbox)
        return out

    def pick(self, urls: list[str], gbox: GeoBox) -> list[str]:
        """The ``urls`` :meth:`load` would read for ``gbox`` (those meeting it, else the first)."""
        return self.overlapping(urls, gbox) or urls[:1]

    def geobox(self, url: str) -> GeoBox:
        """The pixel grid of ``url`` (opened once)."""
        if url not in self._boxes:
            import rasterio

            try:
                with rasterio.Env(**gdal_env(self.store)), rasterio.open(url) as src:
                    self._boxes[url] = GeoBox((src.height, src.width), src.transform, src.crs)
            except rasterio.errors.RasterioIOError as exc:
                raise SourceError(f"cannot open raster {url}: {exc}") from None
        return self._boxes[url]

    def resolution(self, url: str) -> float:
        """Pixel size of ``url`` in its CRS units."""
        return abs(self.geobox(url).resolution.x)

    def overlapping(self, urls: list[str], gbox: GeoBox) -> list[str]:
        """The ``urls`` (in order) whose footprint's bounding box (in ``gbox``'s CRS, kept per file)
        meets ``gbox`` padded by two pixels: a superset of the files that touch the tile.

        One vectorised comparison per call: the list's bounds are kept as an (N, 4) array per (list,
        CRS), so choosing a tile's files from the ~1,500 files of a plateau quarter costs microseconds,
        not a Python loop per file and tile."""
        crs = str(gbox.crs)
        key = (tuple(urls), crs)
        boxes = self._arrays.get(key)
        if boxes is None:
            rows = []
            for u in urls:
                if (u, crs) not in self._bounds:
                    self._bounds[(u, crs)] = tuple(self.geobox(u).extent.to_crs(gbox.crs).boundingbox)
                rows.append(self._bounds[(u, crs)])
            if len(self._arrays) >= 64:  # a backfill's lists come and go with its years: keep the recent
                self._arrays.clear()
            boxes = self._arrays[key] = np.asarray(rows, float).reshape(-1, 4)
        x0, y0, x1, y1 = gbox.pad(2).extent.boundingbox
        meets = (boxes[:, 0] < x1) & (x0 < boxes[:, 2]) & (boxes[:, 1] < y1) & (y0 < boxes[:, 3])
        return [urls[i] for i in np.flatnonzero(meets)]


def _quarter_layers(cfg: PipelineConfig, quarter: Quarter, gbox: GeoBox, static: dict[str, list[str]],
                    r_all: xr.DataArray, landcover: str, fvc_urls: list[str],
                    neighbours: FVCNeighbours | None = None,
                    lc_neighbours: list[list[str]] | None = None,
                    footprints: Footprints | None = None,
                    lc_urls: list[str] | None = None) -> dict[str, xr.DataArray]:  # fmt: skip
    """Lazy R, K, LS, C, P, A, the gap-filled FVC and its quality (lpqlc.erosion.gapfill) of a quarter on
    ``gbox``; ``lc_neighbours``: other quarters' land-cover URLs filling its class gaps, in order.
    ``footprints``: the run's cache of input footprints; given, only the files overlapping ``gbox`` are
    read (a tile's graph then does not grow with the AOI's number of files). ``lc_urls``: the quarter's
    land-cover files (default: all of ``landcover``'s)."""
    store, chunk, rusle = cfg.store, cfg.grid.chunk_size, cfg.science.rusle
    fp = footprints or Footprints(store)
    lc_urls = lc_urls or landcover_urls(landcover, quarter, cfg)
    lc_resampling = "mode" if fp.resolution(lc_urls[0]) < gbox.resolution.x * 0.75 else "nearest"

    def lc_of(urls: list[str]) -> xr.DataArray:
        return fp.load(urls, gbox, "landcover", lc_resampling, chunk)

    lc, lc_filled = fill_landcover(lc_of(lc_urls), [lc_of(u) for u in lc_neighbours or []],
                                   cfg.science.landcover.nodata)  # fmt: skip

    def static_layer(name: str) -> xr.DataArray:
        return fp.load(static[name], gbox, name, "bilinear", chunk)

    k, ls, slope = static_layer("k"), static_layer("ls"), static_layer("slope")
    def fvc_of(urls: list[str]) -> xr.DataArray:
        if not fp.overlapping(urls, gbox):
            return xr.full_like(k, np.nan)
        return fp.load(urls, gbox, FVC, "bilinear", chunk)

    nb = neighbours or FVCNeighbours()
    fvc, quality = fill_fvc(
        fvc_of(fvc_urls), lc, [[fvc_of(u) for u in ring] for ring in nb.same_quarter],
        fvc_of(nb.previous) if nb.previous else None, fvc_of(nb.following) if nb.following else None, rusle.gapfill,
    )  # fmt: skip
    quality = flag_landcover_fill(quality, lc_filled)
    r = r_quarter(cfg, r_all, quarter, gbox)
    r = r.assign_coords(y=k["y"], x=k["x"])  # same grid; exact coordinates from one source
    c = c_factor(lc, fvc, rusle.c)
    p = p_factor(lc, slope, rusle.p)
    a = (r * k * ls * c * p).astype(np.float32).rename("erosion")
    return {"erosion": a, "r": r, "k": k, "ls": ls, "c": c, "p": p, "landcover": lc, "fvc": fvc, "quality": quality}


def _input_key(urls: list[str], tile: str, store: Store | None) -> str:
    """What identifies a tile's land-cover input: the producing unit's key for a tiled map, else the
    single map's size and modification time."""
    tiled = [u for u in urls if f"/{tile}/" in u]
    if tiled:
        return marker_key(tiled[0].rsplit("/", 1)[0], store)
    fs = open_filesystem(urls[0], store)
    info = fs.info(parse_storage_url(urls[0]).url.split("://", 1)[-1])
    return f"{info.get('size')}@{info.get('mtime') or info.get('LastModified') or info.get('created')}"


def landcover_urls(template: str, quarter: Quarter, cfg: PipelineConfig) -> list[str]:
    """The land-cover rasters of a quarter from a template with ``{quarter}`` (one file) or with
    ``{quarter}`` and ``{tile}`` (one file per output tile, e.g. ``lpqlc classify``'s refined maps)."""
    if "{tile}" not in template:
        return [template.format(quarter=quarter)]
    return [template.format(quarter=quarter, tile=tile_id(i)) for i, _ in OutputGrid.from_config(cfg).iter_tiles(quarter)]


def landcover_neighbours(template: str, quarter: Quarter, cfg: PipelineConfig) -> list[list[str]]:
    """Land-cover URLs of the quarters that may fill ``quarter``'s class gaps
    (:func:`lpqlc.erosion.gapfill.landcover_candidates`), in order, those whose maps exist only."""
    found = []
    for q in landcover_candidates(quarter, cfg.science.rusle.landcover_gapfill):
        urls = landcover_urls(template, q, cfg)
        if all(exists(u, cfg.store) for u in urls):
            found.append(urls)
    return found


def _subregion_raster(features: list[tuple[str, dict[str, Any]]], gbox: GeoBox) -> np.ndarray:
    from odc.geo import geom
    from rasterio.features import rasterize

    if not features:
        return np.zeros(gbox.shape.yx, np.uint8)
    shapes = [(geom.Geometry(g, "EPSG:4326").to_crs(gbox.crs).geom, i + 1) for i, (_, g) in enumerate(features)]
    return rasterize(shapes, out_shape=gbox.shape.yx, transform=gbox.transform, fill=0, dtype="uint8")


def _write_year_tile(arrays: dict[str, np.ndarray], quarters: list[str], year: int | None, gbox: GeoBox,
                     prefix: str, tile: str, store: Store | None, factors: bool,
                     features: list[tuple[str, dict[str, Any]]], grade_breaks: tuple[float, ...],
                     grade_colours: dict[int, str] | None = None, blocksize: int = 512,
                     quality_colours: dict[int, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write one tile's quarterly (and annual) layers; return sums per (period, subregion)."""
    crs = gbox.crs.to_wkt()
    regions = _subregion_raster(features, gbox)
    codes = ["ALL"] + [c for c, _ in features]
    stats: dict[str, Any] = {}

    def accumulate(period: str, a: np.ndarray, with_grades: bool) -> None:
        valid = np.isfinite(a)
        for i, code in enumerate(codes):
            sel = valid if i == 0 else valid & (regions == i)
            entry = {"sum": float(a[sel].sum()), "n": int(sel.sum())}
            if with_grades:
                g = np.digitize(a[sel], np.asarray(grade_breaks))
                entry["grades"] = np.bincount(g, minlength=len(grade_breaks) + 1).tolist()
            stats[f"{period}|{code}"] = entry

    def write_quality(period: str, qa: np.ndarray) -> None:
        write_bytes(f"{prefix}/{period}/{tile}/quality.tif", cog_bytes(qa, gbox.transform, crs, nodata=NO_DATA,
                                                                      overview_resampling="mode", colormap=quality_colours,
                                                                      blocksize=blocksize), store)  # fmt: skip
        stats[f"{period}|quality"] = np.bincount(qa.ravel(), minlength=len(QUALITY)).tolist()

    for q in quarters:
        a = arrays[f"{q}/erosion"]
        write_bytes(f"{prefix}/{q}/{tile}/erosion.tif", cog_bytes(a, gbox.transform, crs, nodata=float("nan"),
                                                                 blocksize=blocksize), store)  # fmt: skip
        write_quality(q, np.asarray(arrays[f"{q}/quality"], np.uint8))
        if factors:
            for name in FACTORS:
                blob = cog_bytes(arrays[f"{q}/{name}"].astype(np.float32), gbox.transform, crs, nodata=float("nan"),
                                 blocksize=blocksize)
                write_bytes(f"{prefix}/{q}/{tile}/{name}.tif", blob, store)
        accumulate(q, a, False)
    if year is not None:
        annual = np.sum([arrays[f"{q}/erosion"] for q in quarters], axis=0).astype(np.float32)
        grade = erosion_grade(xr.DataArray(annual)).values
        write_bytes(f"{prefix}/{year}/{tile}/erosion.tif", cog_bytes(annual, gbox.transform, crs, nodata=float("nan"),
                                                                    blocksize=blocksize), store)  # fmt: skip
        write_bytes(f"{prefix}/{year}/{tile}/grade.tif", cog_bytes(grade, gbox.transform, crs, nodata=0,
                                                                  overview_resampling="mode", colormap=grade_colours,
                                                                  blocksize=blocksize), store)  # fmt: skip
        write_quality(str(year), annual_quality([arrays[f"{q}/quality"] for q in quarters]))
        accumulate(str(year), annual, True)
    return stats


def run_erosion(
    cfg: PipelineConfig,
    quarters: list[Quarter],
    out: str,
    *,
    landcover: str,
    composites: str | None = None,
    factors: bool = False,
    client: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    static: str | None = None,
) -> ErosionRun:
    """RUSLE for ``quarters`` over the AOI, written under ``out`` (see the module doc).

    ``static``: the folder whose ``static/`` holds (or receives) the slope, LS and K tiles, default
    ``out``; another run's folder reuses its layers (the analysis' control run uses the pipeline's)."""
    if "{quarter}" not in landcover:
        raise ConfigError(f"--landcover {landcover!r} must hold {{quarter}} (and optionally {{tile}}), "
                          "e.g. truth/landcover/{quarter}.tif")
    import odc.stac

    store = cfg.store
    # captured into every odc-stac load task: the GDAL environment travels with the tasks
    odc.stac.configure_rio(cloud_defaults=True, **gdal_env(store))
    prefix = parse_storage_url(out, what="--out").url.rstrip("/")
    comp_dir = composites or f"{prefix}/composites"
    grid = OutputGrid.from_config(cfg)
    tick = progress or (lambda stage, done, total: None)
    static_dir = parse_storage_url(static, what="static").url.rstrip("/") if static else prefix
    static_urls = static_layers(cfg, static_dir, grid, client)
    tick("static layers", 1, 1)
    years = sorted({q.year for q in quarters})
    r_all = r_quarters(cfg, years)
    features = subregion_features(cfg)
    grades = cfg.science.rusle.grades
    grade_colours = class_colours(cfg, "erosion-annual", "grade")
    quality_colours = class_colours(cfg, "erosion", "quality")

    keys: list[tuple[int, str]] = []
    results: list[dict[str, Any]] = []
    batch: list[Unit] = []
    total = sum(sum(1 for _ in grid.iter_tiles(min(q for q in quarters if q.year == y))) for y in years)
    footprints = Footprints(store)

    def flush() -> None:
        # a batch's tile graphs are computed (or reused) and dropped before the next batch is built
        done = len(results)

        def step(stage: str, n: int, _total: int) -> None:
            tick(stage, done + n, total)

        results.extend(run_units(batch, client, "erosion", store=store, progress=step if progress else None))
        batch.clear()

    own = {q: _fvc_urls(cfg, comp_dir, q, client) for q in sorted(quarters)}
    settings = (cfg.science.rusle.model_dump(mode="json"), cfg.science.fvc.model_dump(mode="json"),
                cfg.grid.model_dump(mode="json"), cfg.sources.collections.model_dump(mode="json"), factors)  # fmt: skip
    names = ("erosion", "quality", *FACTORS) if factors else ("erosion", "quality")
    for year in years:
        qs = sorted(q for q in quarters if q.year == year)
        res = {grid.grid.resolution_for(q) for q in qs}
        if len(res) > 1:
            raise ConfigError(f"year {year} spans two grid resolutions {sorted(res)}: align grid.resolutions to years")
        nbs = {q: fvc_neighbours(cfg, comp_dir, q, own) for q in qs}
        lc_nbs = {q: landcover_neighbours(landcover, q, cfg) for q in qs}
        # a unit's inputs: the tile's land cover (its unit's key when tiled maps come from lpqlc classify,
        # else the file's size and time) and each quarter's composite summary (FVC endmembers, tiles)
        q_lc = {q: landcover_urls(landcover, q, cfg) for q in qs}
        lc_urls = [q_lc[q] for q in qs]
        lc_urls += [list(u) for u in sorted({tuple(u) for n in lc_nbs.values() for u in n})]  # gap fillers
        comps = [hashlib.sha256(read_bytes(f"{comp_dir}/{q}/composite.json", store)).hexdigest() for q in qs]
        neighbour_digests = sorted({d for n in nbs.values() for d in n.digests})
        # the year's R on the precipitation grid (small: ~300² px for the plateau), computed once and kept
        # on the cluster for the year's tile tasks (each would otherwise read the daily windows again)
        r_year = r_all.sel(quarter=[str(q) for q in qs])
        r_year = client.persist(r_year) if client is not None else r_year.compute()
        for index, tile_gbox in grid.iter_tiles(qs[0]):
            # the client sends the tile's file lists (those meeting the tile, chosen with the footprints
            # read once per run) and the worker builds and computes the tile's graph (lpqlc.erosion.tile_task)
            t = tile_id(index)
            upstream = [_input_key(urls, t, store) for urls in lc_urls]
            key = unit_key("erosion", __version__, [str(q) for q in qs], t, upstream, comps, neighbour_digests, settings)
            spec = tile_spec(footprints, tile_gbox, qs, static_urls, q_lc, lc_nbs, own, nbs)
            task = dask.delayed(erosion_tile)(
                cfg, spec, r_year, landcover, names, year if len(qs) == 4 else None, prefix, t,
                factors, features, grades.breaks, grade_colours, quality_colours, dask_key_name=f"erosion-tile-{key}",
            )  # fmt: skip
            # the marker sits with the annual outputs, or (a partial year) with its last quarter's
            batch.append(Unit(task, f"{prefix}/{year if len(qs) == 4 else qs[-1]}/{t}", key))
            keys.append((year, t))
            if len(batch) >= TILE_BATCH:
                flush()
    flush()
    merged: dict[str, dict[str, Any]] = {}
    quality: dict[str, np.ndarray] = {}
    for stats in results:
        for key, e in stats.items():
            if key.endswith("|quality"):
                period = key.split("|")[0]
                quality[period] = quality.get(period, np.zeros(len(QUALITY), np.int64)) + np.asarray(e)
                continue
            m = merged.setdefault(key, {"sum": 0.0, "n": 0})
            m["sum"] += e["sum"]
            m["n"] += e["n"]
            if "grades" in e:
                m["grades"] = (np.asarray(m.get("grades", 0)) + np.asarray(e["grades"])).tolist()
    csv_url = f"{prefix}/summary.csv"
    table = _summary_table(merged, grid, quarters, cfg)
    for code, name in ((OBSERVED, "observed"), (FILLED_SAME_QUARTER, "filled_same_quarter"),
                       (FILLED_ADJACENT, "filled_adjacent"), (MISSING, "missing"),
                       (FILLED_LANDCOVER, "landcover_filled")):  # fmt: skip
        # share of the land pixels (quality ≠ no data) per period, whole AOI (subregion ALL)
        table[f"fvc_{name}_pct"] = [
            100.0 * quality[_period_key(r)][code] / max(1, quality[_period_key(r)][1:].sum())
            if r.subregion == "ALL" and _period_key(r) in quality else np.nan for r in table.itertuples()
        ]  # fmt: skip
    write_bytes(csv_url, table.to_csv(index=False, float_format="%.6g").encode(), store)
    run = ErosionRun(prefix=prefix, quarters=sorted(quarters), years=[y for y in years if sum(q.year == y for q in quarters) == 4],
                     summary_csv=csv_url, tiles=sorted({t for _, t in keys}))  # fmt: skip
    run.plots = _plots(run, table, grid, cfg)
    return run


def _period_key(row: Any) -> str:
    return str(row.year) if row.period == "annual" else f"{row.year}{row.period}"


def _summary_table(merged: dict[str, dict[str, Any]], grid: OutputGrid, quarters: list[Quarter], cfg: PipelineConfig) -> Any:
    import pandas as pd

    grades = cfg.science.rusle.grades
    eroded_from = grades.names.index(grades.eroded_from)
    rows = []
    for key, e in sorted(merged.items()):
        period, region = key.split("|")
        is_year = "Q" not in period
        q = Quarter(int(period), 1) if is_year else Quarter.parse(period)
        px_km2 = grid.grid.resolution_for(q) ** 2 / 1e6
        row: dict[str, Any] = {
            "year": int(period[:4]),
            "period": "annual" if is_year else period[4:],
            "subregion": region,
            "mean_erosion": e["sum"] / e["n"] if e["n"] else float("nan"),
            "unit": "t/(hm2·a)" if is_year else "t/(hm2·q)",
            "area_km2": e["n"] * px_km2,
        }
        if is_year:
            counts = np.asarray(e["grades"])
            row["eroded_area_pct"] = 100.0 * counts[eroded_from:].sum() / e["n"] if e["n"] else float("nan")
            for name, n in zip(grades.names, counts, strict=True):
                row[f"area_km2_{name}"] = n * px_km2
        rows.append(row)
    table = pd.DataFrame(rows)
    annual = table[table.period == "annual"].set_index(["year", "subregion"])["mean_erosion"]
    quarterly = table.period != "annual"
    share = [
        100.0 * r.mean_erosion / annual.get((r.year, r.subregion), np.nan) if quarterly.iloc[i] else np.nan
        for i, r in enumerate(table.itertuples())
    ]
    table["share_of_annual_pct"] = share
    return table


def _plots(run: ErosionRun, table: Any, grid: OutputGrid, cfg: PipelineConfig) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = cfg.store
    out: list[str] = []

    def save(fig: Any, name: str) -> None:
        out.append(write_png(fig, f"{run.prefix}/plots/{name}.png", store))

    whole = table[table.subregion == "ALL"]
    annual = whole[whole.period == "annual"]
    if len(annual):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(annual.year.astype(str), annual.mean_erosion, color="#a0522d")
        ax.axhline(cfg.science.rusle.grades.tolerance_t_hm2_a, color="k", lw=0.8, ls="--", label="tolerance")
        ax.set_ylabel("mean soil loss, t/(hm²·a)")
        ax.set_title("Mean annual erosion (RUSLE)", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, "annual_mean")
        q = whole[whole.period != "annual"].pivot(index="year", columns="period", values="share_of_annual_pct")
        q = q.loc[annual.year.values]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bottom = np.zeros(len(q))
        for col, colour in zip(q.columns, ("#9ecae1", "#4292c6", "#08519c", "#c6dbef"), strict=False):
            ax.bar(q.index.astype(str), q[col].values, bottom=bottom, label=col, color=colour)
            bottom += np.nan_to_num(q[col].values)
        ax.set_ylabel("share of annual erosion, %")
        ax.set_title("Quarterly shares of annual erosion", fontsize=10)
        ax.legend(fontsize=8, ncol=4)
        save(fig, "quarterly_shares")
    period = str(run.years[-1]) if run.years else str(run.quarters[-1])
    q0 = Quarter(int(period), 1) if run.years else run.quarters[-1]
    full = grid.geobox(q0)
    urls = [f"{run.prefix}/{period}/{tile_id(index)}/erosion.tif" for index, _ in grid.iter_tiles(q0)]
    # a display-sized view (every k-th pixel) read lazily from the tiles: nothing AOI-sized on the client
    lazy = load_files(urls, full, name="erosion", chunks=cfg.grid.chunk_size, store=store)
    m = np.asarray(display_image(lazy).values, np.float64)
    fig, ax = plt.subplots(figsize=(6, 5))
    vmax = float(np.nanpercentile(m, 98)) if np.isfinite(m).any() else 1.0
    im = ax.imshow(m, cmap="YlOrBr", vmin=0, vmax=max(vmax, 1e-6))
    fig.colorbar(im, ax=ax, shrink=0.8, label="t/(hm²·a)" if run.years else "t/(hm²·q)")
    ax.set_title(f"Soil erosion {period}", fontsize=10)
    ax.axis("off")
    save(fig, f"map_{period}")
    return out
