"""The second loader (``science.composite.loader: stackstac``): stackstac stacks, fused into time slices.

Same contract as odc-stac's path in :func:`lpqlc.composite.build.load_stack`: integer stacks of the
rule's assets on the output GeoBox, one time slice per solar day (the first valid item of a slice wins,
as in odc-stac's ``groupby``), reflectance resampled with ``cfg.resampling``, masks nearest. stackstac
reads the CRS of an item only from ``proj:epsg``; an item without it gets it from ``proj:code`` when
that is an EPSG code, else a :class:`SourceError` names the item. stackstac also needs an EPSG-coded
output grid (the default, EPSG:10594); a custom CRS is refused with a clear error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc.config.science import CompositeConfig
from lpqlc.errors import ConfigError, SourceError
from lpqlc.sources.rules import SourceRule

__all__ = ["with_epsg", "stackstac_slices"]


def with_epsg(item: pystac.Item) -> pystac.Item:
    """``item`` itself when it (or each asset) has ``proj:epsg``; else a copy with ``proj:epsg`` from an
    ``EPSG:n`` ``proj:code``. Raises :class:`SourceError` naming the item when neither gives an EPSG code."""
    if item.properties.get("proj:epsg") is not None:
        return item
    code = item.properties.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:") and code[5:].isdigit():
        out = item.clone()
        out.properties["proj:epsg"] = int(code[5:])
        return out
    if item.assets and all(a.extra_fields.get("proj:epsg") is not None for a in item.assets.values()):
        return item
    raise SourceError(
        f"item {item.id}: stackstac needs proj:epsg (or an EPSG proj:code), the item has proj:code {code!r}; "
        "use science.composite.loader: odc-stac for it"
    )


def _absolute(item: pystac.Item) -> pystac.Item:
    """``item`` with absolute asset hrefs (stackstac opens an href as written; a static catalog's are relative)."""
    if all("://" in a.href or a.href.startswith("/") for a in item.assets.values()):
        return item
    out = item.clone()
    for key, asset in item.assets.items():
        out.assets[key].href = asset.get_absolute_href() or asset.href
    return out


def _stack(items: list[pystac.Item], assets: list[str], geobox: GeoBox, chunk: int, resampling: str, dtype: str,
           fill: int, env: dict[str, Any] | None) -> xr.DataArray:  # fmt: skip
    import stackstac
    from rasterio.enums import Resampling

    left, bottom, right, top = geobox.boundingbox
    return stackstac.stack(
        items, assets=assets, epsg=int(geobox.crs.epsg), resolution=abs(float(geobox.resolution.x)),
        bounds=(left, bottom, right, top), snap_bounds=False, resampling=Resampling[resampling],
        chunksize=chunk, dtype=np.dtype(dtype), fill_value=np.dtype(dtype).type(fill), rescale=False, sortby_date=False,
        properties=False, band_coords=False, xy_coords="center", errors_as_nodata=(),
        gdal_env=stackstac.DEFAULT_GDAL_ENV.updated(always=env or {}),
    )  # fmt: skip


def stackstac_slices(
    items: list[pystac.Item],
    rule: SourceRule,
    cfg: CompositeConfig,
    geobox: GeoBox,
    chunk_size: int,
    keys: dict[str, tuple[Any, ...]],
    env: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Lazy (time, y, x) integer stacks per asset of ``rule``, one time per slice key (sorted), like odc-stac's.

    ``keys`` maps item id → slice key (:func:`lpqlc.composite.build.plan_slices`); ``env`` holds GDAL
    options (e.g. the S3 endpoint) that travel with the read tasks (stackstac's ``LayeredEnv``).
    """
    import stackstac

    if geobox.crs.epsg is None:
        raise ConfigError(
            "science.composite.loader stackstac needs an EPSG-coded grid.crs (stackstac takes only EPSG codes); "
            f"the grid CRS is {geobox.crs.to_wkt()[:80]}…: use the default EPSG:10594 or loader odc-stac"
        )
    order = sorted(items, key=lambda it: (keys[it.id], it.id))
    ready = [_absolute(with_epsg(it)) for it in order]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, it in enumerate(order):
        groups.setdefault(keys[it.id], []).append(i)
    bands = list(rule.bands.values())
    dn = _stack(ready, bands, geobox, chunk_size, cfg.resampling, rule.dtype, rule.nodata, env)
    mask = _stack(ready, [rule.mask_asset], geobox, chunk_size, "nearest", rule.mask_dtype, rule.mask_nodata, env)
    out = {}
    for name, arr, fill in [*((b, dn.isel(band=j), rule.nodata) for j, b in enumerate(bands)),
                            (rule.mask_asset, mask.isel(band=0), rule.mask_nodata)]:  # fmt: skip
        fused = [stackstac.mosaic(arr.isel(time=idx), dim="time", reverse=True, nodata=fill) for idx in groups.values()]
        out[name] = xr.concat([f.drop_vars([c for c in f.coords if c not in ("x", "y")]) for f in fused], dim="time")
    return xr.Dataset(out)
