"""Plain raster files (COGs we wrote, a user's LS or land-cover map) as STAC items, so odc-stac loads
them lazily onto any output grid like the archive's imagery (same reprojection, chunks, GDAL env)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc.errors import SourceError
from lpqlc.storage import Store, as_store, gdal_env

__all__ = ["file_item", "load_files"]


def file_item(url: str, key: str = "data", store: Store | None = None, item_id: str | None = None) -> pystac.Item:
    """A STAC item for one single-band raster file (metadata read now; pixels later)."""
    href = url if "://" in url or url.startswith("/") else str(url)
    try:
        with rasterio.Env(**gdal_env(store)), rasterio.open(href) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            dtype, nodata = src.dtypes[0], src.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise SourceError(f"cannot open raster {url}: {exc}") from None
    if crs is None:
        raise SourceError(f"raster {url} has no CRS")
    gbox = GeoBox(shape, transform, crs)
    footprint = gbox.extent.to_crs("EPSG:4326")
    item = pystac.Item(
        id=item_id or url.rsplit("/", 1)[-1],
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=datetime(2000, 1, 1, tzinfo=UTC),
        properties={"proj:code": f"EPSG:{crs.to_epsg()}"} if crs.to_epsg() else {"proj:wkt2": crs.to_wkt()},
    )
    band: dict[str, Any] = {"data_type": dtype}
    if nodata is not None:
        band["nodata"] = nodata
    item.add_asset(key, pystac.Asset(href=href, media_type=pystac.MediaType.COG, roles=["data"], extra_fields={
        "proj:shape": list(shape), "proj:transform": list(transform)[:6], "raster:bands": [band],
    }))  # fmt: skip
    return item


def load_files(
    urls: list[str],
    geobox: GeoBox,
    *,
    name: str,
    resampling: str = "nearest",
    chunks: int | None = 1024,
    store: Store | None = None,
    dtype: str | None = None,
) -> xr.DataArray:
    """Lazy (y, x) mosaic of single-band rasters on ``geobox`` (first valid pixel wins where they overlap);
    the ``store``'s GDAL settings travel with the read tasks. ``chunks=None``: read now, in one piece,
    without a Dask graph (a tile task's window)."""
    import odc.stac

    if not urls:
        raise SourceError(f"no file to load for {name}")
    items = [file_item(u, name, store, item_id=f"{name}-{i}") for i, u in enumerate(urls)]
    # odc-stac captures its configured GDAL options into every read task (an active rasterio.Env's
    # endpoint would be dropped as a session key): the Store's settings travel with the tasks
    odc.stac.configure_rio(cloud_defaults=True, **as_store(store).gdal_env())
    ds = odc.stac.load(items, bands=[name], geobox=geobox, chunks={"x": chunks, "y": chunks} if chunks else None,
                       resampling=resampling, groupby=lambda *_: 0, dtype=dtype)  # fmt: skip
    return ds[name].isel(time=0, drop=True)
