"""The static RUSLE layers (slope, LS, K) on the anchor (30 m) grid, per output tile as Dask tasks.

Layout: ``<out>/static/<tile>/{slope,ls,k}.tif`` (tiled COGs, one per output tile of the 30 m grid) with
the tile's ``_unit.json`` marker (:mod:`lpqlc.units`): a tile is computed again only when its inputs
(DEM and soil collections, LS and K settings, code version) change. Each tile's task reads the DEM of
its chunks plus the LS halo (:func:`lpqlc.erosion.terrain.ls_halo_px`) through odc-stac, so nothing
AOI-sized is held anywhere: memory per task is bounded by (chunk + 2·halo)².
"""

from __future__ import annotations

import logging
from typing import Any

import dask
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc import __version__
from lpqlc.composite.run import tile_id
from lpqlc.config import PipelineConfig
from lpqlc.erosion.inputs import k_layer, load_dem
from lpqlc.erosion.terrain import cell_size_m, ls_factor, ls_halo_px, slope_degrees
from lpqlc.errors import ConfigError
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import cog_bytes
from lpqlc.sources.rasters import load_files
from lpqlc.storage import Store, write_bytes
from lpqlc.units import Unit, run_units, unit_key

__all__ = ["static_layers", "STATIC"]

log = logging.getLogger(__name__)

STATIC = ("slope", "ls", "k")


def _write_static_tile(layers: dict[str, np.ndarray], gbox: GeoBox, folder: str, store: Store | None,
                       blocksize: int) -> dict[str, int]:  # fmt: skip
    """Write one tile's static COGs; return its count of pixels with a valid slope (the DEM covers them)."""
    crs = gbox.crs.to_wkt()
    for name, arr in layers.items():
        blob = cog_bytes(np.asarray(arr, np.float32), gbox.transform, crs, nodata=float("nan"), blocksize=blocksize)
        write_bytes(f"{folder}/{name}.tif", blob, store)
    return {"dem_valid": int(np.isfinite(layers["slope"]).sum())}


def _lazy_layers(cfg: PipelineConfig, g30: GeoBox) -> dict[str, xr.DataArray]:
    """Lazy slope (°), LS and K on ``g30`` (Dask-backed; nothing is read here)."""
    store, chunk = cfg.store, cfg.grid.chunk_size
    dem = load_dem(cfg, g30)
    slope = slope_degrees(dem)
    lcfg = cfg.science.rusle.ls
    if lcfg.external:
        ls = load_files([lcfg.external], g30, name="ls", resampling="bilinear", chunks=chunk, store=store)
    else:
        dx, dy = cell_size_m(dem)
        halo = ls_halo_px(float(np.sqrt(dx * dy).min()), lcfg)
        # chunks at least twice the halo, so the overlap costs at most (1 + 2·halo/chunk)² ≤ 4× the chunk
        big = max(chunk, 2 * halo)
        ls = ls_factor(dem.chunk({"y": big, "x": big}), lcfg)
    return {"slope": slope, "ls": ls.astype(np.float32), "k": k_layer(cfg, g30)}


def static_layers(cfg: PipelineConfig, out: str, grid: OutputGrid, client: Any = None) -> dict[str, list[str]]:
    """Slope, LS and K on the anchor (30 m) grid as per-tile COGs under ``out/static``: URLs per layer.

    Computed as one Dask task per output tile (on ``client`` when given), reused while their inputs are
    unchanged. LS comes from ``science.rusle.ls.external`` when set (reprojected bilinear onto the grid).
    Raises :class:`ConfigError` when the DEM covers none of the AOI.
    """
    store = cfg.store
    g30 = grid.geobox(float(cfg.grid.anchor))
    tiles = grid.tiles(float(cfg.grid.anchor))
    lazy = _lazy_layers(cfg, g30)
    settings = (cfg.science.rusle.ls.model_dump(mode="json"), cfg.science.rusle.k.model_dump(mode="json"),
                cfg.grid.model_dump(mode="json"), cfg.sources.collections.dem, cfg.sources.collections.soil)  # fmt: skip
    units, urls = [], {name: [] for name in STATIC}  # type: dict[str, list[str]]
    for index, tile_gbox in grid.iter_tiles(float(cfg.grid.anchor)):
        ys, xs = tiles.roi[index]
        t = tile_id(index)
        folder = f"{out}/static/{t}"
        arrays = {name: lazy[name].isel(y=ys, x=xs).data for name in STATIC}
        task = dask.delayed(_write_static_tile, pure=True)(arrays, tile_gbox, folder, store, cfg.grid.cog_blocksize)
        units.append(Unit(task, folder, unit_key("erosion-static", __version__, t, settings)))
        for name in STATIC:
            urls[name].append(f"{folder}/{name}.tif")
    log.info("static layers: %d tile(s) of the %s m grid", len(units), cfg.grid.anchor)
    results = run_units(units, client, "static layers", store=store)
    if not any(r["dem_valid"] for r in results):
        raise ConfigError(f"the DEM collection {cfg.sources.collections.dem!r} does not cover the AOI")
    return urls
