"""STAC item documents for published COGs: geometry, projection, raster, file and processing fields.

Projection v1.2.0 is declared because it holds both ``proj:code`` and ``proj:epsg`` (v2 drops the
latter, which stackstac still reads). An item is one product × period (a quarter or a year) × output tile. Its assets are COGs of one grid;
the projection fields describe that grid (``proj:code``/``proj:epsg`` when the CRS has an authority
code, ``null`` with ``proj:wkt2``/``proj:projjson`` for a custom equal-area CRS such as the China
Albers default). Checksums are sha2-256 multihashes (``1220`` + hex digest) of the exact bytes.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.io import MemoryFile

from lpqlc.errors import LpqlcError
from lpqlc.quarter import Quarter

__all__ = [
    "EXTENSIONS",
    "Period",
    "CogInfo",
    "cog_info",
    "multihash",
    "build_item",
    "item_id",
    "isoformat",
    "inputs_digest",
    "LINEAGE_REL",
]

#: The link relation of an item's lineage document (``v<N>/lineage.json``: every input item id).
LINEAGE_REL = "lineage"

#: Extensions every published item declares (schemas shipped for offline validation).
EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v1.2.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
}


def isoformat(t: datetime) -> str:
    """``2021-07-01T00:00:00Z`` (UTC, seconds)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Period:
    """The time an item covers: a quarter (``2021Q3``) or a year (``2021``)."""

    label: str

    @classmethod
    def of(cls, value: Quarter | int | str) -> Period:
        return cls(str(value))

    @property
    def is_year(self) -> bool:
        return "Q" not in self.label

    @property
    def quarters(self) -> list[Quarter]:
        if self.is_year:
            return [Quarter(int(self.label), i) for i in (1, 2, 3, 4)]
        return [Quarter.parse(self.label)]

    @property
    def start(self) -> datetime:
        return self.quarters[0].start

    @property
    def end(self) -> datetime:
        """Last second of the period (inclusive)."""
        return (self.quarters[-1] + 1).start - timedelta(seconds=1)

    @property
    def middle(self) -> datetime:
        """The nominal datetime of the period's products."""
        return self.start + (self.end + timedelta(seconds=1) - self.start) / 2


def item_id(collection: str, period: Period, tile: str) -> str:
    """``lpqlc-landcover-2021Q3-x000y000``."""
    return f"{collection}-{period.label}-{tile}"


def inputs_digest(inputs: Sequence[str]) -> str:
    """``lpqlc:inputs_digest``: the sha2-256 multihash of the sorted, distinct input item ids (one per line).

    Items carry this digest and ``lpqlc:inputs_count`` instead of the ids themselves, which are listed
    in the item's lineage document: an item stays a few kB however many source items its window holds.
    """
    return multihash("\n".join(sorted(set(inputs))).encode("utf-8"))


def multihash(blob: bytes) -> str:
    """The sha2-256 multihash of ``blob``, hex (``file:checksum``)."""
    return "1220" + hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class CogInfo:
    """What an item needs from one COG: its grid, type, size, checksum and summary statistics."""

    shape: tuple[int, int]
    transform: tuple[float, ...]
    crs_wkt: str
    dtype: str
    nodata: float | int | None
    size: int
    checksum: str
    statistics: dict[str, float] | None

    def same_grid(self, other: CogInfo) -> bool:
        return self.shape == other.shape and np.allclose(self.transform, other.transform) and self.crs_wkt == other.crs_wkt


def cog_info(blob: bytes, where: str, *, statistics: bool = True) -> CogInfo:
    """Read a COG's header (and, with ``statistics``, its pixels) from bytes; ``where`` names it in errors.

    Raises :class:`LpqlcError` when the bytes are not a valid Cloud-Optimized GeoTIFF.
    """
    from rio_cogeo.cogeo import cog_validate

    try:
        with MemoryFile(blob) as mem:
            valid, errors, _ = cog_validate(mem.name, quiet=True)
            if not valid:
                raise LpqlcError(f"{where} is not a valid Cloud-Optimized GeoTIFF: {'; '.join(errors)}")
            with mem.open() as src:
                stats = None
                if statistics:
                    data = src.read(1, masked=True).astype(np.float64)
                    if src.nodata is not None and math.isnan(src.nodata):
                        data = np.ma.masked_invalid(data)
                    n = int(data.count())
                    stats = {"valid_percent": round(100.0 * n / data.size, 4)}
                    if n:
                        stats.update(minimum=float(data.min()), maximum=float(data.max()), mean=float(data.mean()),
                                     stddev=float(data.std()))  # fmt: skip
                return CogInfo(
                    shape=(src.height, src.width),
                    transform=tuple(src.transform)[:6],
                    crs_wkt=src.crs.to_wkt(),
                    dtype=src.dtypes[0],
                    nodata=src.nodata,
                    size=len(blob),
                    checksum=multihash(blob),
                    statistics=stats,
                )
    except rasterio.errors.RasterioError as exc:
        raise LpqlcError(f"{where} cannot be read as a GeoTIFF: {exc}") from None


def _projection(info: CogInfo) -> dict[str, Any]:
    from pyproj import CRS

    crs = CRS.from_wkt(info.crs_wkt)
    auth = crs.to_authority(min_confidence=100)
    code = f"{auth[0]}:{auth[1]}" if auth else None
    epsg = int(auth[1]) if auth and auth[0] == "EPSG" else None
    h, w = info.shape
    a, b, c, d, e, f = info.transform
    xs = [c, c + a * w + b * h]
    ys = [f, f + d * w + e * h]
    props: dict[str, Any] = {
        "proj:code": code,
        "proj:epsg": epsg,
        "proj:shape": [h, w],
        "proj:transform": [a, b, c, d, e, f, 0.0, 0.0, 1.0],
        "proj:bbox": [min(xs), min(ys), max(xs), max(ys)],
    }
    if code is None:
        props["proj:wkt2"] = crs.to_wkt()
        props["proj:projjson"] = crs.to_json_dict()
    return props


def _band(template: Mapping[str, Any], info: CogInfo, resolution: float, classes: bool) -> dict[str, Any]:
    band = dict(template)
    band["data_type"] = info.dtype
    nodata = info.nodata
    if isinstance(nodata, float) and math.isnan(nodata):
        band["nodata"] = "nan"
    elif nodata is not None and np.issubdtype(np.dtype(info.dtype), np.integer):
        band["nodata"] = int(nodata)
    else:
        band["nodata"] = nodata
    band["spatial_resolution"] = resolution
    if info.statistics and not classes:
        band["statistics"] = info.statistics
    return {k: v for k, v in band.items() if v is not None}


def build_item(
    *,
    collection: str,
    period: Period,
    tile: str,
    gbox: GeoBox,
    assets: Mapping[str, tuple[str, CogInfo]],
    item_assets: Mapping[str, Mapping[str, Any]],
    version: int,
    created: datetime,
    updated: datetime,
    lineage: str,
    inputs: Sequence[str],
    software: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A STAC item (dict) for one product × period × tile.

    ``assets`` maps an asset key to (href relative to the item, :class:`CogInfo`); their fields come
    from the collection's ``item_assets`` (title, roles, type, classes, band units). ``inputs`` are the
    ids of the items the outputs were made from: the item records their digest and count
    (``lpqlc:inputs_digest``, ``lpqlc:inputs_count``); the ids go to its lineage document.
    """
    infos = [info for _, info in assets.values()]
    if any(not infos[0].same_grid(i) for i in infos[1:]):
        raise LpqlcError(f"{collection} {period.label} {tile}: the assets are not on one grid")
    foot = gbox.footprint("EPSG:4326", npoints=8)
    bbox = [round(v, 7) for v in foot.boundingbox]
    used = {"projection", "raster", "file", "processing"}
    out_assets: dict[str, Any] = {}
    for key, (href, info) in assets.items():
        tmpl = copy.deepcopy(dict(item_assets.get(key, {})))
        if not tmpl:
            raise LpqlcError(f"collection {collection} has no item_assets entry for asset {key!r}")
        band_tmpl = (tmpl.pop("raster:bands", None) or [{}])[0]
        asset = {"href": href, **tmpl}
        asset["raster:bands"] = [_band(band_tmpl, info, abs(info.transform[0]), "classification:classes" in asset)]
        asset["file:checksum"] = info.checksum
        asset["file:size"] = info.size
        if "classification:classes" in asset:
            used.add("classification")
        out_assets[key] = asset
    properties: dict[str, Any] = {
        "datetime": isoformat(period.middle),
        "start_datetime": isoformat(period.start),
        "end_datetime": isoformat(period.end),
        "created": isoformat(created),
        "updated": isoformat(updated),
        "version": str(version),
        **_projection(infos[0]),
        "processing:level": "L4",
        "processing:lineage": lineage,
        "processing:software": dict(software),
        "processing:datetime": isoformat(updated),
        "lpqlc:period": period.label,
        "lpqlc:tile": tile,
        "lpqlc:inputs_digest": inputs_digest(inputs),
        "lpqlc:inputs_count": len(set(inputs)),
        **(extra or {}),
    }
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [EXTENSIONS[k] for k in EXTENSIONS if k in used],
        "id": item_id(collection, period, tile),
        "collection": collection,
        "geometry": foot.json,
        "bbox": bbox,
        "properties": properties,
        "assets": out_assets,
        "links": [],
    }
