"""The lazy quarterly composite: odc-stac load on the output grid → mask → scale → median, count, NDVI.

Metadata is resolved eagerly (which items, their scale/offset and nodata per band, how they group into
time slices); pixels stay lazy. :func:`build_composite` returns a Dask-backed ``xarray.Dataset`` and
computes nothing: every output chunk is one fused task over the loaded integer stacks
(:func:`lpqlc.composite.masking.median_block`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dask.array as da
import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from lpqlc.composite.masking import median_block
from lpqlc.config.science import CompositeConfig
from lpqlc.errors import SourceError
from lpqlc.sources.rules import SourceRule, item_scaling

__all__ = ["TimeSlice", "plan_slices", "load_stack", "build_composite", "COUNT", "NDVI"]

COUNT = "count"
NDVI = "ndvi"


@dataclass(frozen=True)
class TimeSlice:
    """Items fused into one time slice (same solar day, platform and scaling), with their scaling.

    ``scale``/``offset`` per composite band, harmonisation folded in; ``nodata`` per band (DN).
    """

    key: tuple[Any, ...]
    items: tuple[str, ...]
    platform: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    nodata: tuple[int, ...]


def _harmonisation(cfg: CompositeConfig, platform: str, sensor: str, band: str) -> tuple[float, float]:
    for key in (platform, sensor):
        if key in cfg.harmonisation and band in cfg.harmonisation[key]:
            slope, intercept = cfg.harmonisation[key][band]
            return float(slope), float(intercept)
    return 1.0, 0.0


def _slice_key(item: pystac.Item, rule: SourceRule, cfg: CompositeConfig, lon: float) -> tuple[Any, ...]:
    if item.datetime is None:
        raise SourceError(f"item {item.id} has no datetime: it cannot join a quarterly composite")
    solar_day = (item.datetime + timedelta(hours=lon / 15.0)).date().isoformat()
    platform = str(item.properties.get("platform", ""))
    scaling = []
    for band, asset in rule.bands.items():
        scale, offset, nodata = item_scaling(item, asset, rule, cfg)
        slope, intercept = _harmonisation(cfg, platform, rule.sensor, band)
        scaling.append((scale * slope, offset * slope + intercept, nodata))
    return (solar_day, platform, tuple(scaling))


def plan_slices(items: list[pystac.Item], rule: SourceRule, cfg: CompositeConfig, geobox: GeoBox) -> tuple[list[TimeSlice], dict[str, tuple[Any, ...]]]:
    """Group items into time slices (metadata only) in the order odc-stac will stack them.

    Returns the slices and the item id → slice key map that odc-stac's ``groupby`` is given.
    """
    lon = float(geobox.extent.centroid.to_crs("EPSG:4326").coords[0][0])
    keys = {it.id: _slice_key(it, rule, cfg, lon) for it in items}
    slices = []
    for key in sorted(set(keys.values())):
        members = tuple(sorted(i for i, k in keys.items() if k == key))
        slices.append(TimeSlice(
            key=key, items=members, platform=key[1],
            scale=tuple(s for s, _, _ in key[2]), offset=tuple(o for _, o, _ in key[2]),
            nodata=tuple(n for _, _, n in key[2]),
        ))  # fmt: skip
    return slices, keys


def _stac_cfg(rule: SourceRule, collection: str | None) -> dict[str, Any]:
    """odc-stac per-collection defaults for assets whose items carry no raster:bands."""
    assets = {a: {"data_type": rule.dtype, "nodata": rule.nodata} for a in rule.bands.values()}
    assets[rule.mask_asset] = {"data_type": rule.mask_dtype, "nodata": rule.mask_nodata}
    return {collection or "*": {"assets": assets}}


def load_stack(
    items: list[pystac.Item],
    rule: SourceRule,
    cfg: CompositeConfig,
    geobox: GeoBox,
    chunk_size: int,
    env: dict[str, Any] | None = None,
) -> tuple[xr.Dataset, list[TimeSlice]]:
    """Lazy integer stacks of the rule's assets on ``geobox``, one time slice per solar day, by the
    loader ``cfg.loader`` names (stackstac: :mod:`lpqlc.composite.stackstac_loader`, or odc-stac; an
    unset loader on a grid without an EPSG code uses odc-stac, which stackstac cannot serve).

    Reflectance uses ``cfg.resampling``, the quality layer nearest. Chunks are ``chunk_size`` square.
    ``env``: GDAL options for the stackstac reads (odc-stac takes them from ``odc.stac.configure_rio``).
    """
    import odc.stac

    slices, keys = plan_slices(items, rule, cfg, geobox)
    loader = cfg.loader
    if loader == "stackstac" and geobox.crs.epsg is None and "loader" not in cfg.model_fields_set:
        loader = "odc-stac"  # the default loader needs an EPSG grid: a custom grid CRS falls back to odc-stac
    if loader == "stackstac":
        from lpqlc.composite.stackstac_loader import stackstac_slices

        return stackstac_slices(items, rule, cfg, geobox, chunk_size, keys, env), slices
    resampling = {a: cfg.resampling for a in rule.bands.values()}
    resampling[rule.mask_asset] = "nearest"
    ds = odc.stac.load(
        items,
        bands=rule.assets,
        geobox=geobox,
        chunks={"x": chunk_size, "y": chunk_size},
        groupby=lambda item, parsed, idx: keys[item.id],
        resampling=resampling,
        stac_cfg=_stac_cfg(rule, items[0].collection_id if items else None),
        fail_on_error=True,
    )
    if ds.sizes.get("time", 0) != len(slices):
        raise SourceError(f"odc-stac stacked {ds.sizes.get('time')} slices where {len(slices)} were planned")
    return ds, slices


def build_composite(
    items: list[pystac.Item],
    rule: SourceRule,
    cfg: CompositeConfig,
    geobox: GeoBox,
    chunk_size: int = 512,
    env: dict[str, Any] | None = None,
) -> xr.Dataset:
    """The quarter's median composite on ``geobox``, lazily.

    Variables, all (y, x) on ``geobox``: one float32 surface reflectance per composite band (NaN where
    no clear observation), ``count`` (uint16, clear observations), ``ndvi`` (float32, from the median
    red and NIR). With no item at all, every band is NaN and the count 0. Computes nothing.
    """
    bands = list(rule.bands)
    ny, nx = geobox.shape.yx
    ychunks = tuple(min(chunk_size, ny - i) for i in range(0, ny, chunk_size))
    xchunks = tuple(min(chunk_size, nx - i) for i in range(0, nx, chunk_size))
    if items:
        ds, slices = load_stack(items, rule, cfg, geobox, chunk_size, env)
        dn = da.stack([ds[a].data for a in rule.bands.values()], axis=1)  # (T, B, y, x)
        quality = ds[rule.mask_asset].data  # (T, y, x)
        kwargs = dict(
            mask_kind=rule.mask_kind,
            keep=tuple(cfg.s2_keep_scl),
            mask_bits=tuple(cfg.landsat_mask_bits),
            mask_nodata=rule.mask_nodata,
            scale=np.array([s.scale for s in slices], dtype=np.float64),
            offset=np.array([s.offset for s in slices], dtype=np.float64),
            nodata=np.array(_common_nodata(slices)),
            valid_range=tuple(cfg.valid_reflectance),
            red=bands.index("red") if "red" in bands else None,
            nir=bands.index("nir") if "nir" in bands else None,
        )
        block = da.blockwise(
            median_block, "cyx", dn, "tbyx", quality, "tyx",
            new_axes={"c": len(bands) + 2}, concatenate=True, dtype=np.float32,
            meta=np.empty((0, 0, 0), np.float32), **kwargs,
        )  # fmt: skip
        n_slices = len(slices)
    else:
        nan = da.full((len(bands), ny, nx), np.nan, dtype=np.float32, chunks=(-1, ychunks, xchunks))
        zero = da.zeros((1, ny, nx), dtype=np.float32, chunks=(-1, ychunks, xchunks))
        block = da.concatenate([nan, zero, nan[:1]], axis=0)
        n_slices = 0
    coords = xr_coords(geobox, crs_coord_name="spatial_ref")
    data_vars = {b: (("y", "x"), block[i]) for i, b in enumerate(bands)}
    data_vars[COUNT] = (("y", "x"), block[len(bands)].astype(np.uint16))
    data_vars[NDVI] = (("y", "x"), block[len(bands) + 1])
    out = xr.Dataset(data_vars, coords=coords)
    for b in bands:
        out[b].attrs.update(units="1", long_name=f"median surface reflectance, {b}", nodata=np.nan)
    out[COUNT].attrs.update(units="1", long_name="clear observations", nodata=0)
    out[NDVI].attrs.update(units="1", long_name="NDVI of the median composite", nodata=np.nan)
    out.attrs.update(sensor=rule.sensor, flavour=rule.flavour, n_items=len(items), n_slices=n_slices)
    return out


def _common_nodata(slices: list[TimeSlice]) -> tuple[int, ...]:
    if len({s.nodata for s in slices}) == 1:
        return slices[0].nodata
    raise SourceError(
        "items of one composite declare different nodata values per band: "
        + "; ".join(f"{s.items[0]}: {s.nodata}" for s in slices[:3])
    )
