"""The scenario's inputs, lazy on one quarter's output grid: the baseline land cover, FVC, R, the erosion
job's static layers, annual precipitation, elevation, silt and the subregion codes.

Sources are the ones the erosion job uses (``lpqlc.erosion.inputs``): the configured DEM, soil and
daily precipitation collections, the composites' FVC, the static slope/LS/K COGs the erosion job
caches (made here if missing, by :func:`lpqlc.erosion.run.static_layers`). The baseline land cover
is the published ``<prefix>-landcover`` items of the quarter, else the pipeline's refined maps, or a
path template given by the user. Resampling as in docs/erosion.md: continuous layers bilinear, land
cover nearest (mode from a finer source).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import assign_crs, xr_coords

from lpqlc.composite.run import FVC, composite_summary, ensure_composites, layer_urls, tile_id
from lpqlc.config import PipelineConfig
from lpqlc.erosion.inputs import load_dem, precip_totals, r_quarter, r_quarters, subregion_features
from lpqlc.erosion.run import static_layers
from lpqlc.errors import ConfigError, SourceError
from lpqlc.grid import OutputGrid
from lpqlc.publish.catalog import asset_url, item_url, read_item
from lpqlc.publish.collections import collection_id
from lpqlc.publish.items import Period, item_id
from lpqlc.quarter import Quarter
from lpqlc.sources.rasters import file_item, load_files
from lpqlc.sources.search import search_collection
from lpqlc.storage import exists, gdal_env, parse_storage_url

__all__ = [
    "ScenarioInputs",
    "baseline_landcover",
    "precip_annual",
    "silt_layer",
    "region_codes",
    "load_inputs",
]

log = logging.getLogger(__name__)


@dataclass
class ScenarioInputs:
    """Lazy (y, x) layers on ``gbox`` (``fvc`` and ``r``: (quarter, y, x)) and what they came from."""

    gbox: GeoBox
    quarters: list[Quarter]
    landcover: xr.DataArray
    fvc: xr.DataArray
    r: xr.DataArray
    k: xr.DataArray
    ls: xr.DataArray
    slope_deg: xr.DataArray
    elevation: xr.DataArray
    precip: xr.DataArray
    silt: xr.DataArray
    regions: xr.DataArray
    region_names: list[str]
    landcover_source: str
    baseline_items: list[str] = field(default_factory=list)


def baseline_landcover(
    cfg: PipelineConfig, quarter: Quarter, template: str | None = None
) -> tuple[list[str], list[str], str]:
    """(land-cover raster URLs, baseline item ids, a sentence naming the source) of ``quarter``.

    ``template`` (``{quarter}``, optionally ``{tile}``) wins; else the published land-cover items of
    the quarter (one per tile); else the pipeline's refined maps ``<storage>/classify/refined``.
    """
    store = cfg.store
    tiles = [tile_id(i) for i, _ in OutputGrid.from_config(cfg).iter_tiles(quarter)]
    if template:
        if "{quarter}" not in template:
            raise ConfigError(f"--landcover {template!r} must hold {{quarter}} (and optionally {{tile}})")
        if "{tile}" in template:
            return [template.format(quarter=quarter, tile=t) for t in tiles], [], f"land cover {template}"
        return [template.format(quarter=quarter)], [], f"land cover {template}"
    root = cfg.publish_url.rstrip("/")
    cid = collection_id(cfg, "landcover")
    urls, ids = [], []
    for t in tiles:
        iid = item_id(cid, Period.of(quarter), t)
        url = item_url(root, cid, iid)
        doc = read_item(url, store)
        if doc is None or "landcover" not in doc.get("assets", {}):
            continue
        urls.append(asset_url(root, doc, "landcover"))
        ids.append(iid)
    if urls:
        return urls, ids, f"the published land cover {cid} {quarter} ({len(ids)} item(s))"
    refined = parse_storage_url(cfg.storage.url).join("classify", "refined", str(quarter))
    found = [f"{refined}/{t}/class.tif" for t in tiles if exists(f"{refined}/{t}/class.tif", store)]
    if found:
        return found, [], f"the refined land cover under {refined}"
    raise ConfigError(
        f"no land cover of {quarter}: no published item in {root}/{cid} and nothing under {refined}; "
        "run `lpqlc run` for that quarter or pass --landcover TEMPLATE"
    )


def precip_annual(cfg: PipelineConfig, years: list[int], gbox: GeoBox) -> xr.DataArray:
    """Lazy mean annual precipitation (mm/a) over ``years`` on ``gbox``: each year's daily file summed by
    windows (:func:`lpqlc.erosion.inputs.precip_totals`), averaged, then reprojected bilinear."""
    try:
        totals = precip_totals(cfg, years)
    except SourceError as e:
        raise SourceError(f"{e} (science.analysis.scenario.precip_years)") from e
    mean = totals.mean("year", skipna=False).astype(np.float32)
    mean = assign_crs(mean, totals.odc.crs)
    c = cfg.grid.chunk_size
    return mean.odc.reproject(gbox, resampling="bilinear", dst_nodata=np.nan, chunks=(c, c)).rename("precip")


def silt_layer(cfg: PipelineConfig, gbox: GeoBox) -> xr.DataArray:
    """Lazy surface silt (%) of the soil collection on ``gbox``, bilinear (scale/offset/nodata from the
    asset's ``raster:bands``)."""
    import odc.stac

    items = search_collection(cfg, cfg.sources.collections.soil)
    if "silt" not in items[0].assets:
        raise SourceError(f"soil item {items[0].id} has no 'silt' asset (assets {list(items[0].assets)})")
    ds = odc.stac.load(items, bands=["silt"], chunks={}, groupby=lambda *_: 0, dtype="float32").isel(
        time=0, drop=True
    )
    rb = (items[0].assets["silt"].extra_fields.get("raster:bands") or [{}])[0]
    silt = ds["silt"].where(ds["silt"] != rb.get("nodata", 255)) * rb.get("scale", 1.0) + rb.get(
        "offset", 0.0
    )
    silt = assign_crs(silt.astype(np.float32), ds.odc.crs)
    c = cfg.grid.chunk_size
    return silt.odc.reproject(gbox, resampling="bilinear", dst_nodata=np.nan, chunks=(c, c)).rename("silt")


def _region_block(*, features: list[dict[str, Any]], gbox: GeoBox, block_info: Any = None) -> np.ndarray:
    from odc.geo import geom
    from rasterio.features import rasterize

    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    sub = gbox[y0:y1, x0:x1]
    if not features:
        return np.zeros(sub.shape.yx, np.uint8)
    shapes = [(geom.Geometry(g, "EPSG:4326").to_crs(sub.crs).geom, i + 1) for i, g in enumerate(features)]
    return rasterize(shapes, out_shape=sub.shape.yx, transform=sub.transform, fill=0, dtype="uint8")


def region_codes(cfg: PipelineConfig, gbox: GeoBox) -> tuple[xr.DataArray, list[str]]:
    """Lazy (y, x) uint8 subregion index on ``gbox`` (0 outside every subregion, i ≥ 1 the i-th) and the
    subregion names (index − 1), rasterised chunk by chunk."""
    feats = subregion_features(cfg)
    if len(feats) > 254:
        raise ConfigError(f"{len(feats)} subregions: at most 254 are supported")
    c = cfg.grid.chunk_size
    arr = da.map_blocks(
        _region_block,
        features=[g for _, g in feats],
        gbox=gbox,
        dtype=np.uint8,
        chunks=tuple(tuple(min(c, n - i) for i in range(0, n, c)) for n in gbox.shape.yx),
    )
    return xr.DataArray(arr, dims=gbox.dimensions, coords=xr_coords(gbox), name="region"), [
        n for n, _ in feats
    ]


def _fvc(cfg: PipelineConfig, comp_dir: str, q: Quarter, gbox: GeoBox, like: xr.DataArray) -> xr.DataArray:
    summary = composite_summary(cfg, comp_dir, q)
    if FVC not in summary["layers"]:
        log.warning("%s: the composite has no FVC (no clear observation): C is NaN for vegetated classes", q)
        return xr.full_like(like, np.nan, dtype=np.float32)
    urls = layer_urls(comp_dir, q, summary, FVC)
    return load_files(
        urls,
        gbox,
        name=FVC,
        resampling="bilinear",
        chunks=cfg.grid.chunk_size,
        store=cfg.store,
    )


def load_inputs(
    cfg: PipelineConfig,
    quarter: Quarter,
    *,
    landcover: str | None,
    composites: str,
    erosion: str,
    client: Any = None,
) -> ScenarioInputs:
    """Every input of the scenario of ``quarter`` (its year's four quarters of R and FVC for
    ``period: year``), lazy; makes missing composites and static layers first."""
    import odc.stac

    scfg = cfg.science.analysis.scenario
    store, chunk = cfg.store, cfg.grid.chunk_size
    odc.stac.configure_rio(cloud_defaults=True, **gdal_env(store))
    grid = OutputGrid.from_config(cfg)
    quarters = [Quarter(quarter.year, n) for n in (1, 2, 3, 4)] if scfg.period == "year" else [quarter]
    res = {grid.grid.resolution_for(q) for q in quarters}
    if len(res) > 1:
        raise ConfigError(
            f"year {quarter.year} spans two grid resolutions {sorted(res)}: align grid.resolutions to years"
        )
    gbox = grid.geobox(quarter)
    lc_urls, lc_ids, lc_source = baseline_landcover(cfg, quarter, landcover)
    lc_res = abs(
        file_item(lc_urls[0], "landcover", store).assets["landcover"].extra_fields["proj:transform"][0]
    )
    lc = load_files(
        lc_urls,
        gbox,
        name="landcover",
        resampling="mode" if lc_res < gbox.resolution.x * 0.75 else "nearest",
        chunks=chunk,
        store=store,
    )
    static = static_layers(cfg, erosion, grid)

    def static_layer(name: str) -> xr.DataArray:
        return load_files(
            static[name], gbox, name=name, resampling="bilinear", chunks=chunk, store=store
        )

    k, ls, slope = static_layer("k"), static_layer("ls"), static_layer("slope")
    ensure_composites(cfg, composites, quarters, client)
    labels = [str(q) for q in quarters]
    fvc = xr.concat([_fvc(cfg, composites, q, gbox, k) for q in quarters], "quarter").assign_coords(
        quarter=labels
    )
    r_all = r_quarters(cfg, sorted({q.year for q in quarters}))
    r = xr.concat(
        [r_quarter(cfg, r_all, q, gbox).assign_coords(y=k["y"], x=k["x"]) for q in quarters], "quarter"
    )
    r = r.assign_coords(quarter=labels)
    precip = precip_annual(cfg, list(scfg.precip_years) or [quarter.year], gbox).assign_coords(
        y=k["y"], x=k["x"]
    )
    silt = silt_layer(cfg, gbox).assign_coords(y=k["y"], x=k["x"])
    elevation = load_dem(cfg, gbox)
    regions, names = region_codes(cfg, gbox)
    regions = regions.assign_coords(y=k["y"], x=k["x"])
    return ScenarioInputs(
        gbox=gbox,
        quarters=quarters,
        landcover=lc,
        fvc=fvc,
        r=r,
        k=k,
        ls=ls,
        slope_deg=slope,
        elevation=elevation,
        precip=precip,
        silt=silt,
        regions=regions,
        region_names=names,
        landcover_source=lc_source,
        baseline_items=lc_ids,
    )
