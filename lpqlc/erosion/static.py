"""The static RUSLE layers (slope, LS, K) on the anchor (30 m) grid, one worker task per output tile.

Layout: ``<out>/static/<tile>/{slope,ls,k}.tif`` (tiled COGs, one per output tile of the 30 m grid) with
the tile's ``_unit.json`` marker (:mod:`lpqlc.units`): a tile is computed again only when its inputs
(the DEM and soil items meeting it — ids, ``updated``, asset hrefs —, LS and K settings, code version)
change.

The client searches the DEM and soil collections once and sends each tile the items that meet it
(:func:`static_layers`); the task (:func:`static_tile`) reads the DEM once over the tile plus the LS
halo (:func:`lpqlc.erosion.terrain.ls_halo_px`, cut at the edge of the AOI grid), computes slope and LS
in one pass (:func:`lpqlc.erosion.terrain.slope_ls_block`), crops them to the tile, computes K from the
soil window the tile needs, and writes the three COGs. Nothing AOI-sized is built or held anywhere:
memory per task is bounded by (tile + 2·halo)² (about 70 bytes a pixel at the peak of LS), whatever
the AOI; the client's work per tile is choosing its items and one submit.

The COGs are an internal cache, read back at full resolution by the erosion tile tasks, so they are
written the fast way, :data:`CACHE_COG`: ZSTD level 1 without a predictor (on the 10 m Jacksboro LS and
slope: ~70 ms to write and ~32 ms to read a 2048² tile, against ~120 and ~60 ms with the floating-point
predictor, for 15–20 % more bytes; NaN outside the AOI still compresses to nothing; a cache tile is read
again by every year's erosion units) and no overviews (which cost as much again and are never read;
docs/performance.md). Published layers keep :func:`lpqlc.cog.cog_bytes`' DEFLATE with overviews.
"""

from __future__ import annotations

import logging
from typing import Any

import dask
import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc import __version__
from lpqlc.composite.run import tile_id
from lpqlc.config import PipelineConfig
from lpqlc.config.science import LSFactorConfig
from lpqlc.erosion.inputs import k_layer, load_dem
from lpqlc.erosion.terrain import cell_size_m, ls_halo_px, slope_degrees, slope_ls_block
from lpqlc.errors import ConfigError
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import cog_bytes
from lpqlc.sources.search import search_collection
from lpqlc.storage import Store, gdal_env, write_bytes
from lpqlc.tiling import item_stamp
from lpqlc.units import Unit, run_units, unit_key

__all__ = ["static_layers", "static_tile", "slope_ls_tile", "write_cache", "STATIC", "CACHE_COG"]

log = logging.getLogger(__name__)

STATIC = ("slope", "ls", "k")

#: COG encoding of the static cache (see the module docstring).
CACHE_COG: dict[str, Any] = {"compress": "ZSTD", "level": 1, "overviews": False, "predictor": False}


def _haloed(aoi: GeoBox, ys: slice, xs: slice, halo: int) -> tuple[GeoBox, tuple[slice, slice]]:
    """The tile ``aoi[ys, xs]`` grown by ``halo`` pixels (cut at the AOI grid's edge), and the tile's
    slices inside it."""
    ny, nx = aoi.shape.yx
    y0, x0 = max(ys.start - halo, 0), max(xs.start - halo, 0)
    y1, x1 = min(ys.stop + halo, ny), min(xs.stop + halo, nx)
    inner = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
    return aoi[y0:y1, x0:x1], inner


def _dem_window(aoi: GeoBox, roi: tuple[slice, slice], cfg: LSFactorConfig) -> tuple[GeoBox, tuple[slice, slice]]:
    """Where a tile's task reads the DEM: the tile plus the LS halo, or plus Horn's one pixel when LS
    comes from an external raster (:func:`_haloed`)."""
    return _haloed(aoi, *roi, 1 if cfg.external else ls_halo_px(aoi, cfg))


def static_tile(cfg: PipelineConfig, aoi: GeoBox, roi: tuple[slice, slice], dem_items: list[dict[str, Any]],
                soil_items: list[dict[str, Any]], folder: str) -> dict[str, int]:  # fmt: skip
    """One tile's slope (°), LS and K, computed here (a worker task) and written as COGs under ``folder``.

    ``aoi``: the 30 m grid's GeoBox, ``roi`` the tile's (y, x) slices in it; ``dem_items``/``soil_items``
    the STAC items (as dicts) that meet the tile. Returns the tile's count of pixels with a valid slope
    (the DEM covers them). LS comes from ``science.rusle.ls.external`` when set (bilinear onto the tile).
    """
    import odc.stac

    from lpqlc.sources.rasters import load_files

    odc.stac.configure_rio(cloud_defaults=True, **gdal_env(cfg.store))
    store, lcfg = cfg.store, cfg.science.rusle.ls
    tile = aoi[roi]
    box, inner = _dem_window(aoi, roi, lcfg)
    dem = load_dem(cfg, box, [pystac.Item.from_dict(d) for d in dem_items], lazy=False)
    if lcfg.external:
        slope = slope_degrees(dem).values[inner]
        ls = load_files([lcfg.external], tile, name="ls", resampling="bilinear", store=store)
        ls = ls.compute(scheduler="synchronous").values
    else:
        slope, ls = slope_ls_tile(dem, inner, lcfg)
    k = k_layer(cfg, tile, [pystac.Item.from_dict(d) for d in soil_items], lazy=False).values
    write_cache({"slope": slope, "ls": ls, "k": k}, tile, folder, store, cfg.grid.cog_blocksize)
    return {"dem_valid": int(np.isfinite(slope).sum())}


def slope_ls_tile(dem: xr.DataArray, inner: tuple[slice, slice], cfg: LSFactorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Slope (float32 °) and LS (float32) of a tile from its DEM read with the LS halo (numpy-backed,
    (y, x) m, with x/y coordinates), cropped to the tile's slices ``inner``."""
    dx, dy = cell_size_m(dem)
    return slope_ls_block(np.asarray(dem.values), dx, dy, cfg, inner)  # type: ignore[no-any-return]


def write_cache(layers: dict[str, np.ndarray], gbox: GeoBox, folder: str, store: Store | None, blocksize: int) -> None:
    """Write float32 (y, x) layers on ``gbox`` as ``folder/<name>.tif`` COGs in the cache encoding
    (:data:`CACHE_COG`; NaN nodata)."""
    crs = gbox.crs.to_wkt()
    for name, arr in layers.items():
        blob = cog_bytes(np.ascontiguousarray(arr, np.float32), gbox.transform, crs, nodata=float("nan"),
                         blocksize=blocksize, **CACHE_COG)  # fmt: skip
        write_bytes(f"{folder}/{name}.tif", blob, store)


class _Items:
    """A collection's items as the dicts a task is sent (asset hrefs made absolute: a relative href
    means nothing without the catalog) and their bboxes as one array, both made once per run, so that
    choosing a tile's items is one vectorised comparison."""

    def __init__(self, items: list[pystac.Item]):
        self.dicts = []
        for it in items:
            d = it.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in it.assets.items():
                d["assets"][key]["href"] = asset.get_absolute_href() or asset.href
            self.dicts.append(d)
        self.bbox = np.array([it.bbox or (-180.0, -90.0, 180.0, 90.0) for it in items], float).reshape(-1, 4)

    @staticmethod
    def versions(items: list[dict[str, Any]]) -> list[str]:
        """What identifies a version of ``items``: each one's id, when it last changed
        (:func:`lpqlc.tiling.item_stamp`, as composites key their sources) and asset hrefs, sorted (a
        replaced or re-published DEM or soil item changes it)."""
        out = []
        for d in items:
            hrefs = ",".join(sorted(str(a.get("href")) for a in d.get("assets", {}).values()))
            out.append(f"{d.get('id')}|{item_stamp(d)}|{hrefs}")
        return sorted(out)

    def meeting(self, gbox: GeoBox) -> list[dict[str, Any]]:
        """The items whose bbox meets ``gbox`` (geographic bounds); the first when none does (the load
        then gives NaN, as over the whole list)."""
        w, s, e, n = gbox.geographic_extent.boundingbox
        b = self.bbox
        meets = (b[:, 0] <= e) & (b[:, 2] >= w) & (b[:, 1] <= n) & (b[:, 3] >= s)
        return [self.dicts[i] for i in np.flatnonzero(meets)] or self.dicts[:1]


def static_layers(cfg: PipelineConfig, out: str, grid: OutputGrid, client: Any = None) -> dict[str, list[str]]:
    """Slope, LS and K on the anchor (30 m) grid as per-tile COGs under ``out/static``: URLs per layer.

    Computed as one Dask task per output tile (:func:`static_tile`, on ``client`` when given), reused
    while their inputs are unchanged. Raises :class:`ConfigError` when the DEM covers none of the AOI.
    """
    store = cfg.store
    anchor = float(cfg.grid.anchor)
    g30 = grid.geobox(anchor)
    tiles = grid.tiles(anchor)
    settings = (cfg.science.rusle.ls.model_dump(mode="json"), cfg.science.rusle.k.model_dump(mode="json"),
                cfg.grid.model_dump(mode="json"), cfg.sources.collections.dem, cfg.sources.collections.soil)  # fmt: skip
    units, urls = [], {name: [] for name in STATIC}  # type: dict[str, list[str]]
    dem_items = _Items(search_collection(cfg, cfg.sources.collections.dem))  # once per run, not per tile
    soil_items = _Items(search_collection(cfg, cfg.sources.collections.soil))
    for index, _ in grid.iter_tiles(anchor):
        t = tile_id(index)
        folder = f"{out}/static/{t}"
        roi = tiles.roi[index]
        box, _ = _dem_window(g30, roi, cfg.science.rusle.ls)
        # the items meeting what the task reads, padded for the resampling kernels' reach (two soil
        # pixels of 250 m are 17 px at 30 m); a tile is redone when one of them changes
        dems, soils = dem_items.meeting(box.pad(4)), soil_items.meeting(box.pad(32))
        key = unit_key("erosion-static", __version__, t, settings, _Items.versions(dems), _Items.versions(soils))
        task = dask.delayed(static_tile, pure=True)(cfg, g30, roi, dems, soils, folder,
                                                    dask_key_name=f"static-tile-{key}")  # fmt: skip
        units.append(Unit(task, folder, key))
        for name in STATIC:
            urls[name].append(f"{folder}/{name}.tif")
    log.info("static layers: %d tile(s) of the %s m grid", len(units), cfg.grid.anchor)
    results = run_units(units, client, "static layers", store=store)
    if not any(r["dem_valid"] for r in results):
        raise ConfigError(f"the DEM collection {cfg.sources.collections.dem!r} does not cover the AOI")
    return urls
