"""The RUSLE inputs, read from the archive and aligned to the land-cover grid.

Resampling per input (documented in docs/erosion.md):

- DEM (30 m, geographic) → the equal-area 30 m grid, **bilinear**; slope and LS are computed there
  per tile (LS with a halo, :mod:`lpqlc.erosion.static`) and cached as COGs; on the 10 m grid they are read back
  **bilinear**.
- Soil (250 m): K is computed on the soil grid from sand/silt/clay/organic carbon, then reprojected
  **bilinear** (K is nonlinear in texture: computing it first keeps the EPIC curve intact).
- Precipitation (0.05° daily): R is computed per quarter on the precipitation grid, window by window
  (each task reads one window of the year's daily file), then reprojected **bilinear**.
- Land cover: **mode** when the source is finer than the grid, **nearest** otherwise.
- FVC: from the composites' ``fvc`` COGs, **bilinear**.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import assign_crs, xr_coords

from lpqlc.config import PipelineConfig
from lpqlc.erosion.rfactor import r_factor
from lpqlc.erosion.soil import k_factor
from lpqlc.errors import SourceError
from lpqlc.quarter import Quarter
from lpqlc.sources.search import search_collection
from lpqlc.storage import Store, gdal_env

__all__ = ["load_dem", "k_layer", "r_quarters", "r_quarter", "subregion_features"]

log = logging.getLogger(__name__)


def load_dem(cfg: PipelineConfig, geobox: GeoBox, items: list[pystac.Item] | None = None, *,
             lazy: bool = True) -> xr.DataArray:  # fmt: skip
    """Elevation (m, float32) of the DEM collection on ``geobox``, bilinear; NaN where missing.

    Lazy (Dask, ``grid.chunk_size`` chunks) by default; ``lazy=False`` reads it now, in one piece (a
    tile task's window). ``items``: the collection's items when the caller searched already."""
    import odc.stac

    items = items if items is not None else search_collection(cfg, cfg.sources.collections.dem)
    key = _single_asset(items[0], "data")
    chunks = {"x": cfg.grid.chunk_size, "y": cfg.grid.chunk_size} if lazy else None
    ds = odc.stac.load(items, bands=[key], geobox=geobox, chunks=chunks, resampling="bilinear",
                       groupby=lambda *_: 0, dtype="float32")  # fmt: skip
    dem = ds[key].isel(time=0, drop=True)
    nodata = dem.attrs.get("nodata")
    return dem.where(dem != nodata) if nodata is not None else dem


def _single_asset(item: pystac.Item, preferred: str) -> str:
    if preferred in item.assets:
        return preferred
    data = [k for k, a in item.assets.items() if "data" in (a.roles or [])]
    if len(data) != 1:
        raise SourceError(f"item {item.id}: cannot tell which asset holds the data (assets {list(item.assets)})")
    return data[0]


def k_layer(cfg: PipelineConfig, geobox: GeoBox, items: list[pystac.Item] | None = None, *,
            lazy: bool = True) -> xr.DataArray:  # fmt: skip
    """K (t·hm²·h/(hm²·MJ·mm)) on ``geobox``: EPIC on the soil grid, then bilinear.

    Lazy by default (the soil items' whole native grid, one chunk per item); ``lazy=False`` reads only
    the soil window ``geobox`` needs (its reprojection ROI plus two pixels) and computes now (a tile
    task). ``items``: the soil collection's items when the caller searched already."""
    import odc.stac
    from odc.geo.overlap import compute_reproject_roi

    items = items if items is not None else search_collection(cfg, cfg.sources.collections.soil)
    keys = ("sand", "silt", "clay", "organic_carbon")
    missing = [k for k in keys if k not in items[0].assets]
    if missing:
        raise SourceError(f"soil item {items[0].id} lacks assets {missing}")
    ds = odc.stac.load(items, bands=list(keys), chunks={}, groupby=lambda *_: 0, dtype="float32")
    if not lazy:
        native = ds.odc.geobox
        roi = compute_reproject_roi(native, geobox, padding=2).roi_src
        if any(sl.stop <= sl.start for sl in roi):  # the soil layers do not reach this geobox
            return xr.DataArray(np.full(geobox.shape.yx, np.nan, np.float32), coords=xr_coords(geobox),
                                dims=("y", "x"), name="k")  # fmt: skip
        ds = odc.stac.load(items, bands=list(keys), geobox=native[roi], chunks=None, groupby=lambda *_: 0,
                           dtype="float32")  # fmt: skip
    ds = ds.isel(time=0, drop=True)
    layers = {}
    for k in keys:
        rb = (items[0].assets[k].extra_fields.get("raster:bands") or [{}])[0]
        v = ds[k].where(ds[k] != rb.get("nodata", 255))
        layers[k] = v * rb.get("scale", 1.0) + rb.get("offset", 0.0)
    # OpenLandMap-style carbon is in g/kg after scaling: % = g/kg ÷ 10
    unit = (items[0].assets["organic_carbon"].extra_fields.get("raster:bands") or [{}])[0].get("unit", "%")
    carbon = layers["organic_carbon"] / 10.0 if unit == "g/kg" else layers["organic_carbon"]
    k = k_factor(layers["sand"], layers["silt"], layers["clay"], carbon, cfg.science.rusle.k).astype(np.float32)
    k.attrs = {"nodata": np.nan, "units": "t hm2 h hm-2 MJ-1 mm-1"}
    k = assign_crs(k, ds.odc.crs)
    if not lazy:
        return k.odc.reproject(geobox, resampling="bilinear", dst_nodata=np.nan).rename("k")
    c = cfg.grid.chunk_size
    return k.odc.reproject(geobox, resampling="bilinear", dst_nodata=np.nan, chunks=(c, c)).rename("k")


def _read_precip_window(href: str, store: Store | None, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(days, y, x) float32 mm of one window of a year's daily file; its nodata becomes NaN."""
    from rasterio.windows import Window

    window = Window.from_slices(rows, cols)
    with rasterio.Env(**gdal_env(store)), rasterio.open(href) as src:
        data = src.read(window=window).astype(np.float32)
        if src.nodata is not None:
            data[data == src.nodata] = np.nan
    return data


def _r_window(href: str, store: Store | None, year: int, rcfg: Any, rows: tuple[int, int],
              cols: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """(4, y, x) quarterly R of one window of one year's daily precipitation file (one task)."""
    daily = _read_precip_window(href, store, rows, cols)
    times = pd.date_range(date(year, 1, 1), periods=daily.shape[0], freq="D")
    r = r_factor(xr.DataArray(daily, dims=("time", "y", "x"), coords={"time": times}), rcfg)
    return np.asarray(r.transpose("quarter", "y", "x").values, dtype=np.float32)


def _total_window(href: str, store: Store | None, year: int, rcfg: Any, rows: tuple[int, int],
                  cols: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """(1, y, x) annual precipitation total (mm) of one window; NaN where a day is missing."""
    return _read_precip_window(href, store, rows, cols).sum(axis=0, keepdims=True)


def _by_windows(fn: Any, href: str, store: Store | None, year: int, rcfg: Any, shape: tuple[int, int],
                depth: int) -> da.Array:  # fmt: skip
    """Lazy (depth, y, x) of ``fn`` over one year's daily file: one task per ``rcfg.window_px`` window."""
    w = int(rcfg.window_px)
    blocks = [[da.from_delayed(dask.delayed(fn, pure=True)(href, store, year, rcfg, (r0, min(r0 + w, shape[0])),
                                                           (c0, min(c0 + w, shape[1]))),
                               shape=(depth, min(w, shape[0] - r0), min(w, shape[1] - c0)), dtype=np.float32)
               for c0 in range(0, shape[1], w)] for r0 in range(0, shape[0], w)]  # fmt: skip
    return da.block(blocks)


def _precip_years(cfg: PipelineConfig, years: list[int], fn: Any, depth: int,
                  labels: Any) -> tuple[list[xr.DataArray], Any]:  # fmt: skip
    """Per year, ``fn`` by windows of its daily precipitation file as a lazy (band, y, x) DataArray on the
    file's grid (band coordinate ``labels(year)``); the files' CRS. Errors name the item at fault."""
    coll = cfg.sources.collections.precipitation
    items = {int(it.properties["start_datetime"][:4]): it
             for it in search_collection(cfg, coll) if it.properties.get("start_datetime")}  # fmt: skip
    missing = [y for y in years if y not in items]
    if missing:
        raise SourceError(f"no {coll} item for year(s) {missing}")
    parts, crs0 = [], None
    for y in years:
        it = items[y]
        key = _single_asset(it, "data")
        href = it.assets[key].get_absolute_href() or it.assets[key].href
        with rasterio.Env(**gdal_env(cfg.store)), rasterio.open(href) as src:
            shape, transform, crs, count = (src.height, src.width), src.transform, src.crs, src.count
        ndays = (date(y + 1, 1, 1) - date(y, 1, 1)).days
        if count != ndays:
            raise SourceError(f"precipitation item {it.id}: {count} bands, expected one per day ({ndays})")
        arr = _by_windows(fn, href, cfg.store, y, cfg.science.rusle.r, shape, depth)
        gbox = GeoBox(shape, transform, crs)
        crs0 = crs0 or gbox.crs
        band, values = labels(y)
        parts.append(xr.DataArray(arr, dims=(band, *gbox.dimensions), coords={band: values, **xr_coords(gbox)}))
    return parts, crs0


def r_quarters(cfg: PipelineConfig, years: list[int]) -> xr.DataArray:
    """Lazy quarterly R (quarter, lat/y, lon/x), MJ·mm/(hm²·h·q), on the precipitation grid.

    One task per year and window (``science.rusle.r.window_px`` pixels square) reads that window of the
    year's daily file and applies the half-month model (:func:`lpqlc.erosion.rfactor.r_factor`, missing
    days by its gap policy); coordinate ``quarter`` holds ``YYYYQn`` labels. Reprojecting a quarter
    (:func:`r_quarter`) reads only the windows its output chunks need.
    """
    parts, crs0 = _precip_years(cfg, years, _r_window, 4, lambda y: ("quarter", [f"{y}Q{q}" for q in range(1, 5)]))
    out = xr.concat(parts, "quarter") if len(parts) > 1 else parts[0]
    out.attrs = {"nodata": np.nan, "units": "MJ mm hm-2 h-1 q-1"}
    return assign_crs(out, crs0)


def precip_totals(cfg: PipelineConfig, years: list[int]) -> xr.DataArray:
    """Lazy annual precipitation totals (year, lat/y, lon/x), mm/a, on the precipitation grid, read by
    windows like :func:`r_quarters`; NaN where a day of the year is missing (no total)."""
    parts, crs0 = _precip_years(cfg, years, _total_window, 1, lambda y: ("year", [y]))
    out = xr.concat(parts, "year") if len(parts) > 1 else parts[0]
    out.attrs = {"nodata": np.nan, "units": "mm a-1"}
    return assign_crs(out, crs0)


def r_quarter(cfg: PipelineConfig, r: xr.DataArray, quarter: Quarter, geobox: GeoBox) -> xr.DataArray:
    """Lazy R of one quarter (MJ·mm/(hm²·h·q)) on ``geobox``, reprojected bilinear from :func:`r_quarters`."""
    one = r.sel(quarter=str(quarter), drop=True)
    c = cfg.grid.chunk_size
    return one.odc.reproject(geobox, resampling="bilinear", dst_nodata=np.nan, chunks=(c, c)).rename("r")


def subregion_features(cfg: PipelineConfig) -> list[tuple[str, dict[str, Any]]]:
    """(code, GeoJSON geometry in EPSG:4326) of the management subregions; empty if none are catalogued."""
    import json

    from lpqlc.storage import read_bytes

    try:
        items = search_collection(cfg, cfg.sources.collections.subregions)
    except SourceError:
        log.warning("no subregions collection: the summary covers the whole AOI only")
        return []
    out = []
    for it in items:
        for asset in it.assets.values():
            href = asset.get_absolute_href() or asset.href
            doc = json.loads(read_bytes(href, cfg.store))
            for f in doc.get("features", []):
                code = str(f.get("properties", {}).get("code") or f.get("id"))
                out.append((code, f["geometry"]))
    return out
