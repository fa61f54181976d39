"""Run a quarter's composite over the AOI, tile by tile, on Dask; write COGs, a summary and a quicklook.

Layout under the output URL (local path or ``s3://``)::

    <YYYYQn>/<tile>/{blue,green,red,nir,swir1,count,ndvi,fvc}.tif   COGs on the equal-area grid
    <YYYYQn>/norm_stats.json                                          band mean/std (for the model)
    <YYYYQn>/composite.json                                           search report, endmembers, tiles
    <YYYYQn>/quicklook.png                                            RGB and FVC preview

One compute point per tile (odc-stats' habit): a tile is one Dask task that builds its graph (load →
median) on the worker, computes it there and writes the COGs (:mod:`lpqlc.composite.tile_task`), and
returns only small results (the NDVI histogram and band sums), so memory per worker is bounded by the
tile, whatever the AOI, and the client's cost per tile is an index query, a key and a submit. A
tile's graph holds only the items whose footprint intersects it (:mod:`lpqlc.composite.tiles`), so
its time slices and unit key depend on those items alone, and tile tasks are submitted in batches
(:func:`tile_batch`), so client memory does not grow with the number of tiles. FVC needs the area's NDVI percentiles (a global reduction), so
it is a second pass that reads back each tile's NDVI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
from odc.geo.geobox import GeoBox

from lpqlc import __version__
from lpqlc.cluster import compute_bounded
from lpqlc.cog import cog_bytes
from lpqlc.composite.build import COUNT, NDVI, build_composite, plan_slices
from lpqlc.composite.normalise import BandSums, NormStats
from lpqlc.composite.tile_task import portable_items, tile_block
from lpqlc.composite.tiles import ItemIndex, TileSources, batched, tile_sources
from lpqlc.composite.vegetation import ndvi_endmembers, ndvi_histogram
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.preview import mosaic_tiles, write_png
from lpqlc.quarter import Quarter
from lpqlc.sources.rules import SourceRule
from lpqlc.sources.search import Dropped, SearchReport, SearchResult, search_quarter
from lpqlc.storage import Store, exists, gdal_env, parse_storage_url, read_bytes, write_bytes
from lpqlc.tiling import (
    composite_layer,
    composite_summary,
    default_composites_dir,
    item_stamp,
    layer_urls,
    tile_id,
)
from lpqlc.units import Unit, run_units, unit_key

__all__ = [
    "CompositeRun",
    "run_composite",
    "tile_id",
    "FVC",
    "default_composites_dir",
    "ensure_composites",
    "composite_summary",
    "layer_urls",
    "composite_layer",
    "item_stamp",
    "tile_batch",
    "tile_graph",
    "tile_unit",
    "layer_names",
]

log = logging.getLogger(__name__)

FVC = "fvc"


#: How many unreadable source items a quarter may lose before its composite fails.
MAX_UNREADABLE = 20

#: Fewest tiles built and submitted as one batch (see :func:`tile_batch`).
TILE_BATCH = 32


def unreadable_asset(exc: BaseException, items: list[Any], store: Store | None = None) -> tuple[str, str] | None:
    """The (item id, asset key) a read error comes from, or None when it cannot be pinned on one.

    A message naming a whole href settles it; GDAL often names only the file (``red.tif: …``), so the
    assets whose file name the message holds are opened one by one and the one that fails is the culprit.
    """
    import rasterio

    text = str(exc)
    named = []
    for it in items:
        for key, asset in it.assets.items():
            href = asset.get_absolute_href() or asset.href or ""
            if href and (href in text or href.split("://", 1)[-1] in text):
                return it.id, key
            if href and href.rsplit("/", 1)[-1] in text:
                named.append((it.id, key, href))
    failing = []
    with rasterio.Env(**gdal_env(store)):
        for item_id, key, href in named:
            try:
                with rasterio.open(href):
                    pass
            except rasterio.errors.RasterioIOError:
                failing.append((item_id, key))
    return failing[0] if len(failing) == 1 else None


def tile_batch(client: Any = None) -> int:
    """Tiles whose graphs are built and submitted together: enough to keep every worker thread busy
    (four per thread, at least ``TILE_BATCH``), few enough that client memory does not grow with the AOI."""
    threads = sum(client.nthreads().values()) if client is not None else 1
    return max(TILE_BATCH, 4 * threads)


def tile_graph(ts: TileSources, rule: SourceRule, cfg: PipelineConfig, names: list[str]) -> tuple[da.Array, int]:
    """One tile's lazy composite as a (layer, y, x) float32 Dask array over ``names``, and its time slices:
    the graph a tile task builds on its worker (:func:`lpqlc.composite.tile_task.tile_block`)."""
    comp = build_composite(list(ts.items), rule, cfg.science.composite, ts.gbox, cfg.grid.chunk_size,
                           env=gdal_env(cfg.store))  # fmt: skip
    return da.stack([comp[n].data.astype(np.float32) for n in names]), int(comp.attrs["n_slices"])


def tile_unit(
    ts: TileSources, rule: SourceRule, cfg: PipelineConfig, quarter: Quarter, prefix: str, names: list[str],
    portable: dict[str, str], docs: tuple[Any, Any] | None = None,
) -> tuple[Unit, int]:
    """A tile's composite unit, and its time slices: all the client does per tile (metadata only).

    ``portable``: the quarter's items as :func:`lpqlc.composite.tile_task.portable_items` made them;
    ``docs``: the composite and grid settings as JSON (made once per quarter; else here). The task is
    named by the unit key, so dask need not hash the items' JSON to name it.
    """
    ccfg_doc, grid_doc = docs or (cfg.science.composite.model_dump(mode="json"),
                                  cfg.grid.model_dump(mode="json"))  # fmt: skip
    n_slices = len(plan_slices(list(ts.items), rule, cfg.science.composite, ts.gbox)[0])
    folder = f"{prefix}/{tile_id(ts.index)}"
    sources = {it.id: item_stamp(it) for it in ts.items}
    bounds = list(ts.gbox.boundingbox)
    key = unit_key("composite", __version__, str(quarter), sources, ccfg_doc, grid_doc, bounds)
    carried = tuple(portable[it.id] for it in ts.items)
    task = dask.delayed(_composite_tile)(carried, rule, cfg, ts.gbox, names, folder,
                                         dask_key_name=f"composite-{key}")  # fmt: skip
    return Unit(task, folder, key), n_slices


def layer_names(cfg: PipelineConfig) -> list[str]:
    """The layers a tile's composite task writes (FVC comes in a second pass)."""
    return [*cfg.science.composite.bands, COUNT, NDVI]


def aoi_text(cfg: PipelineConfig) -> str:
    """The AOI as a log message names it."""
    return f"{cfg.aoi.name} ({list(cfg.aoi.bbox) if cfg.aoi.bbox else cfg.aoi.geojson})"


@dataclass
class CompositeRun:
    """What a composite run wrote."""

    quarter: Quarter
    prefix: str
    tiles: list[str]
    report: SearchReport
    endmembers: tuple[float, float] | None
    norm_stats: NormStats | None
    quicklook: str | None
    layers: list[str] = field(default_factory=list)

    def layer_url(self, tile: str, layer: str) -> str:
        return f"{self.prefix}/{tile}/{layer}.tif"


@dataclass(frozen=True)
class _TileOut:
    hist: np.ndarray
    sums: BandSums

    def to_json(self) -> dict[str, Any]:
        return {"hist": np.asarray(self.hist).tolist(), "n": self.sums.n, "s1": self.sums.s1, "s2": self.sums.s2}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> _TileOut:
        return cls(hist=np.asarray(doc["hist"]), sums=BandSums(n=doc["n"], s1=doc["s1"], s2=doc["s2"]))


def _write_tile(
    block: np.ndarray, names: list[str], gbox: GeoBox, prefix: str, store: Store | None, bins: int,
    blocksize: int = 512,
) -> _TileOut:
    """Write one tile's layers as COGs (runs on a worker); return its NDVI histogram and band sums."""
    crs = gbox.crs.to_wkt()
    for i, name in enumerate(names):
        if name == COUNT:
            data, nodata, resampling = block[i].astype(np.uint16), None, "nearest"
        else:
            data, nodata, resampling = block[i].astype(np.float32), float("nan"), "average"
        blob = cog_bytes(data, gbox.transform, crs, nodata=nodata, overview_resampling=resampling,  # type: ignore[arg-type]
                         blocksize=blocksize)
        write_bytes(f"{prefix}/{name}.tif", blob, store)
    bands = [n for n in names if n not in (COUNT, NDVI)]
    hist = ndvi_histogram(block[names.index(NDVI)], bins)
    return _TileOut(hist=np.asarray(hist), sums=BandSums.of({b: block[names.index(b)] for b in bands}))


def _composite_tile(sources: tuple[str, ...], rule: SourceRule, cfg: PipelineConfig, gbox: GeoBox,
                    names: list[str], prefix: str) -> _TileOut:  # fmt: skip
    """A tile's whole unit on a worker: build and compute its composite, write its COGs."""
    store = cfg.store
    ccfg = cfg.science.composite
    block = tile_block(sources, rule, ccfg, gbox, cfg.grid.chunk_size, names, gdal_env(store))
    return _write_tile(block, names, gbox, prefix, store, ccfg.ndvi_histogram_bins, cfg.grid.cog_blocksize)


def _read_cog(url: str, store: Store | None) -> np.ndarray:
    from rasterio.io import MemoryFile

    with MemoryFile(read_bytes(url, store)) as mem, mem.open() as src:
        return np.asarray(src.read(1))


def _write_fvc(prefix: str, gbox: GeoBox, store: Store | None, soil: float, veg: float,
               blocksize: int = 512) -> None:  # fmt: skip
    """FVC of one tile from its NDVI COG (runs on a worker)."""
    ndvi = _read_cog(f"{prefix}/{NDVI}.tif", store)
    with np.errstate(invalid="ignore"):
        fvc = np.clip((ndvi - soil) / (veg - soil), 0.0, 1.0).astype(np.float32)
    blob = cog_bytes(fvc, gbox.transform, gbox.crs.to_wkt(), nodata=float("nan"), blocksize=blocksize)
    write_bytes(f"{prefix}/{FVC}.tif", blob, store)


def run_composite(
    cfg: PipelineConfig,
    quarter: Quarter,
    out: str,
    *,
    client: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CompositeRun:
    """Composite ``quarter`` over the configured AOI and write it under ``out`` (see the module doc).

    ``client`` is a ``dask.distributed.Client`` (tiles then run on its workers); without one, tiles
    run one after another on the local threaded scheduler. ``progress(stage, done, total)`` is called
    as tiles finish.
    """
    import odc.stac

    store = cfg.store
    ccfg = cfg.science.composite
    root = parse_storage_url(out, what="--out")
    prefix = root.join(str(quarter))
    result = search_quarter(cfg, quarter)
    grid = OutputGrid.from_config(cfg)
    tiles = list(grid.iter_tiles(quarter))
    # For graphs built here (tile_graph on the local scheduler); each tile task configures its own worker.
    odc.stac.configure_rio(cloud_defaults=True, **gdal_env(store))
    names = layer_names(cfg)

    if not result.items:
        log.warning("%s: the search of %s over the AOI %s found no usable item: every tile is written as "
                    "nodata (count 0)", quarter, result.report.collection, aoi_text(cfg))  # fmt: skip
    index = ItemIndex(result.items, grid.crs)
    portable = portable_items(result.items)  # once per quarter: what each tile task carries of its items
    docs = ccfg.model_dump(mode="json"), cfg.grid.model_dump(mode="json")
    unreadable: dict[str, str] = {}
    outs: list[_TileOut] = []
    tile_items: dict[str, int] = {}
    tile_slices: dict[str, int] = {}
    batch = tile_batch(client)
    for chunk in batched(tiles, batch):
        base = len(outs)

        def tick(stage: str, done: int, _total: int, base: int = base) -> None:
            if progress is not None:
                progress(stage, base + done, len(tiles))

        while True:
            units, used = [], {}
            for ts in tile_sources(index, chunk, exclude=set(unreadable)):
                unit, n_slices = tile_unit(ts, result.rule, cfg, quarter, prefix, names, portable, docs)
                used.update({it.id: it for it in ts.items})
                tid = tile_id(ts.index)
                tile_items[tid], tile_slices[tid] = len(ts.items), n_slices
                units.append(unit)
            try:
                outs += run_units(units, client, "composite", store=store, progress=tick,
                                  encode=_TileOut.to_json, decode=_TileOut.from_json)  # fmt: skip
                break
            except Exception as exc:  # noqa: BLE001 — only a read error that names one of the items' assets is handled
                culprit = unreadable_asset(exc, list(used.values()), store)
                if culprit is None or len(unreadable) >= MAX_UNREADABLE:
                    raise
                item_id, key = culprit
                reason = f"unreadable asset {key!r}: {type(exc).__name__}: {str(exc)[:300]}"
                log.warning("%s: leaving out item %s (%s); compositing the other observations in the tiles it "
                            "covers", quarter, item_id, reason)  # fmt: skip
                unreadable[item_id] = reason
                result.report.dropped.append(Dropped(item_id, reason))
    items = [it for it in result.items if it.id not in unreadable]
    result = SearchResult(items=items, rule=result.rule, report=result.report)
    hist = np.sum([o.hist for o in outs], axis=0) if outs else None
    sums = sum((o.sums for o in outs), BandSums())
    valid = hist is not None and int(hist.sum()) > 0
    endmembers: tuple[float, float] | None = None
    if valid or cfg.science.fvc.method == "fixed":
        endmembers = ndvi_endmembers(cfg.science.fvc, hist)
        blocksize = cfg.grid.cog_blocksize
        fvc_tasks = [
            dask.delayed(_write_fvc)(f"{prefix}/{tile_id(i)}", g, store, *endmembers, blocksize)
            for i, g in tiles
        ]
        compute_bounded(fvc_tasks, client, "fvc", progress)
        names.append(FVC)
    else:
        log.warning("%s: no clear observation anywhere in the AOI: no FVC layer written", quarter)
    stats: NormStats | None = None
    if all(sums.n.get(b, 0) >= 2 for b in ccfg.bands):
        stats = sums.stats(source=f"{quarter} composite, {len(tiles)} tiles")
        write_bytes(f"{prefix}/norm_stats.json", stats.to_json(), store)
    run = CompositeRun(
        quarter=quarter, prefix=prefix, tiles=[tile_id(i) for i, _ in tiles], report=result.report,
        endmembers=endmembers, norm_stats=stats, quicklook=None, layers=names,
    )  # fmt: skip
    run.quicklook = _quicklook(run, grid, tiles, store)
    summary = {
        "quarter": str(quarter),
        "sensor": result.rule.sensor,
        "flavour": result.rule.flavour,
        "crs": grid.crs.to_wkt(),
        "resolution": grid.grid.resolution_for(quarter),
        "tiles": {tile_id(i): list(g.boundingbox) for i, g in tiles},
        "layers": names,
        "unreadable": dict(unreadable),
        "tile_items": tile_items,
        "tile_slices": tile_slices,
        "items": [it.id for it in result.items],
        "item_versions": {it.id: item_stamp(it) for it in result.items},
        "search": result.report.to_dict(),
        "fvc_endmembers": {"ndvi_soil": endmembers[0], "ndvi_veg": endmembers[1]} if endmembers else None,
        "fvc_method": cfg.science.fvc.method,
    }
    write_bytes(f"{prefix}/composite.json", (json.dumps(summary, indent=2) + "\n").encode(), store)
    return run


def _quicklook(run: CompositeRun, grid: OutputGrid, tiles: list[tuple[tuple[int, int], GeoBox]],
               store: Store | None) -> str | None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = ["red", "green", "blue", COUNT] + ([FVC] if FVC in run.layers else [])
    if not tiles or not all(b in run.layers for b in ("red", "green", "blue")):
        return None
    full = grid.geobox(run.quarter)
    size = grid.grid.tile_size
    m = np.stack([
        mosaic_tiles({i: run.layer_url(tile_id(i), layer) for i, _ in tiles}, full, size, store) for layer in layers
    ])  # fmt: skip
    fig, axes = plt.subplots(1, 3 if FVC in layers else 2, figsize=(13, 4.6))
    rgb = np.clip(np.nan_to_num(np.moveaxis(m[:3], 0, -1)) / 0.3, 0, 1)
    axes[0].imshow(rgb)
    axes[0].set_title(f"{run.quarter} median RGB ({run.report.sensor})", fontsize=9)
    im = axes[1].imshow(m[3], cmap="viridis")
    axes[1].set_title("clear observations", fontsize=9)
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    if FVC in layers:
        im = axes[2].imshow(m[4], cmap="YlGn", vmin=0, vmax=1)
        soil, veg = run.endmembers or (float("nan"), float("nan"))
        axes[2].set_title(f"FVC (NDVI soil {soil:.3f}, veg {veg:.3f})", fontsize=9)
        fig.colorbar(im, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.axis("off")
    return write_png(fig, f"{run.prefix}/quicklook.png", store)


# ------------------------------------------------------------------------- reading composites back
# (tile_id, item_stamp, default_composites_dir, composite_summary, layer_urls, composite_layer: lpqlc/tiling.py)
def ensure_composites(cfg: PipelineConfig, comp_dir: str, quarters: list[Quarter], client: Any = None) -> None:
    """Run the composite job for the quarters that have none under ``comp_dir``."""
    for q in quarters:
        if not exists(f"{comp_dir}/{q}/composite.json", cfg.store):
            log.info("%s: no composite under %s yet: making it", q, comp_dir)
            run_composite(cfg, q, comp_dir, client=client)
