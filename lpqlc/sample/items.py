"""STAC item and collection JSON shaped like the public archives' (Earth Search v1).

Items declare only the extensions whose schemas validate offline (eo, projection 1.2 — which holds both
``proj:code`` and ``proj:epsg`` —, raster, classification). The archives' other fields (``view:*``,
``mgrs:*``, ``s2:*``, ``landsat:*``) are carried as properties, as the real items carry them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from affine import Affine
from pyproj import Transformer

__all__ = [
    "EXT",
    "COG_TYPE",
    "s2_item",
    "landsat_item",
    "raster_item",
    "collection",
    "footprint",
    "s2_item_id",
    "landsat_item_id",
    "to_planetary_computer",
    "PC_S2_KEYS",
]

EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.2.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

_S2_BANDS = {
    # key: (band, title, centre µm, FWHM µm, gsd m)
    "blue": ("B02", "Blue (band 2) - 10m", 0.49, 0.098, 10),
    "green": ("B03", "Green (band 3) - 10m", 0.56, 0.045, 10),
    "red": ("B04", "Red (band 4) - 10m", 0.665, 0.038, 10),
    "nir": ("B08", "NIR 1 (band 8) - 10m", 0.842, 0.145, 10),
    "swir16": ("B11", "SWIR 1.6μm (band 11) - 20m", 1.61, 0.143, 20),
}
_LANDSAT_BANDS = {
    # key: {platform family: (band name)}, title, centre µm, FWHM µm
    "blue": ({"tm": "SR_B1", "oli": "SR_B2"}, "Blue Band", 0.48, 0.06),
    "green": ({"tm": "SR_B2", "oli": "SR_B3"}, "Green Band", 0.56, 0.06),
    "red": ({"tm": "SR_B3", "oli": "SR_B4"}, "Red Band", 0.65, 0.04),
    "nir08": ({"tm": "SR_B4", "oli": "SR_B5"}, "Near Infrared Band 0.8", 0.86, 0.03),
    "swir16": ({"tm": "SR_B5", "oli": "SR_B6"}, "Short-wave Infrared Band 1.6", 1.6, 0.08),
}
_QA_BITFIELDS = [
    {"name": "fill", "offset": 0, "length": 1, "classes": [{"name": "not_fill", "value": 0}, {"name": "fill", "value": 1}]},
    {"name": "dilated_cloud", "offset": 1, "length": 1, "classes": [{"name": "not_dilated", "value": 0}, {"name": "dilated", "value": 1}]},
    {"name": "cirrus", "offset": 2, "length": 1, "classes": [{"name": "not_cirrus", "value": 0}, {"name": "cirrus", "value": 1}]},
    {"name": "cloud", "offset": 3, "length": 1, "classes": [{"name": "not_cloud", "value": 0}, {"name": "cloud", "value": 1}]},
    {"name": "cloud_shadow", "offset": 4, "length": 1, "classes": [{"name": "not_shadow", "value": 0}, {"name": "shadow", "value": 1}]},
    {"name": "snow", "offset": 5, "length": 1, "classes": [{"name": "not_snow", "value": 0}, {"name": "snow", "value": 1}]},
    {"name": "clear", "offset": 6, "length": 1, "classes": [{"name": "not_clear", "value": 0}, {"name": "clear", "value": 1}]},
    {"name": "water", "offset": 7, "length": 1, "classes": [{"name": "not_water", "value": 0}, {"name": "water", "value": 1}]},
    {"name": "cloud_confidence", "offset": 8, "length": 2, "classes": [
        {"name": "not_set", "value": 0}, {"name": "low", "value": 1}, {"name": "medium", "value": 2}, {"name": "high", "value": 3}]},
    {"name": "cloud_shadow_confidence", "offset": 10, "length": 2, "classes": [
        {"name": "not_set", "value": 0}, {"name": "low", "value": 1}, {"name": "reserved", "value": 2}, {"name": "high", "value": 3}]},
    {"name": "snow_confidence", "offset": 12, "length": 2, "classes": [
        {"name": "not_set", "value": 0}, {"name": "low", "value": 1}, {"name": "reserved", "value": 2}, {"name": "high", "value": 3}]},
    {"name": "cirrus_confidence", "offset": 14, "length": 2, "classes": [
        {"name": "not_set", "value": 0}, {"name": "low", "value": 1}, {"name": "reserved", "value": 2}, {"name": "high", "value": 3}]},
]  # fmt: skip
# classification v1.1.0 requires a description on every class
for _field in _QA_BITFIELDS:
    _field["description"] = str(_field["name"]).replace("_", " ")
    for _cls in _field["classes"]:  # type: ignore[attr-defined]
        _cls["description"] = f"{_field['description']}: {_cls['name'].replace('_', ' ')}"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def footprint(transform: Affine, shape: tuple[int, int], epsg: int) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon (EPSG:4326) and bbox of a raster's extent."""
    h, w = shape
    corners = [transform @ (0, 0), transform @ (w, 0), transform @ (w, h), transform @ (0, h)]
    if epsg != 4326:
        tr = Transformer.from_crs(epsg, 4326, always_xy=True)
        corners = [tr.transform(x, y) for x, y in corners]
    ring = [[round(x, 7), round(y, 7)] for x, y in corners]
    ring.append(ring[0])
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Polygon", "coordinates": [ring]}, [min(xs), min(ys), max(xs), max(ys)]


def _proj(epsg: int, transform: Affine, shape: tuple[int, int]) -> dict[str, Any]:
    # Both spellings: pystac/projection ≥ 1.2 write proj:code, stackstac 0.5 reads only proj:epsg.
    return {
        "proj:epsg": epsg,
        "proj:code": f"EPSG:{epsg}",
        "proj:shape": [int(shape[0]), int(shape[1])],
        "proj:transform": [transform.a, transform.b, transform.c, transform.d, transform.e, transform.f],
    }


def s2_item_id(platform: str, mgrs: str, when: date, sequence: int) -> str:
    """Earth Search v1 id, e.g. ``S2B_49SFU_20210815_0_L2A``."""
    return f"S2{platform[-1].upper()}_{mgrs}_{when:%Y%m%d}_{sequence}_L2A"


def s2_item(
    *,
    item_id: str,
    platform: str,
    acquired: datetime,
    processed: datetime,
    baseline: str,
    mgrs: str,
    epsg: int,
    grids: dict[int, tuple[Affine, tuple[int, int]]],
    hrefs: dict[str, str],
    cloud_cover: float,
    scl_percentages: dict[str, float],
    sequence: int,
) -> dict[str, Any]:
    """A ``sentinel-2-l2a`` item as Earth Search v1 serves it (subset of assets: 5 bands + SCL).

    ``grids`` maps a resolution (10, 20 m) to its (transform, shape); ``hrefs`` maps asset key → URL.
    From baseline 04.00 the L2A digital numbers hold a +1000 offset, declared as offset −0.1 in
    ``raster:bands`` with ``earthsearch:boa_offset_applied: false``.
    """
    offset = -0.1 if baseline >= "04.00" else 0.0
    geometry, bbox = footprint(*grids[10], epsg)
    assets: dict[str, Any] = {}
    for key, (band, title, centre, fwhm, gsd) in _S2_BANDS.items():
        assets[key] = {
            "href": hrefs[key],
            "type": COG_TYPE,
            "title": title,
            "eo:bands": [
                {"name": band, "common_name": key,
                 "center_wavelength": centre, "full_width_half_max": fwhm}
            ],
            "gsd": gsd,
            **{k: v for k, v in _proj(epsg, *grids[gsd]).items() if k in ("proj:shape", "proj:transform")},
            "raster:bands": [
                {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": gsd,
                 "scale": 0.0001, "offset": offset}
            ],
            "roles": ["data", "reflectance"],
        }  # fmt: skip
    assets["scl"] = {
        "href": hrefs["scl"],
        "type": COG_TYPE,
        "title": "Scene classification map (SCL)",
        **{k: v for k, v in _proj(epsg, *grids[20]).items() if k in ("proj:shape", "proj:transform")},
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20, "unit": "1"}],
        "roles": ["data", "reflectance"],
    }
    zone, band, square = mgrs[:2], mgrs[2], mgrs[3:]
    props: dict[str, Any] = {
        "created": _iso(processed),
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(cloud_cover, 6),
        **{k: v for k, v in _proj(epsg, *grids[10]).items() if k in ("proj:epsg", "proj:code")},
        "mgrs:utm_zone": int(zone),
        "mgrs:latitude_band": band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{mgrs}",
        "view:sun_azimuth": 152.3,
        "view:sun_elevation": 55.0,
        **{f"s2:{k}_percentage": round(v, 6) for k, v in scl_percentages.items()},
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": f"S2{platform[-1].upper()}_MSIL2A_{acquired:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
        f"_R061_T{mgrs}_{processed:%Y%m%dT%H%M%S}.SAFE",
        "s2:generation_time": _iso(processed),
        "s2:sequence": str(sequence),
        "earthsearch:boa_offset_applied": False,
        "processing:software": {"sentinel2-to-stac": "0.1.1"},
        "datetime": _iso(acquired),
        "updated": _iso(processed),
    }
    return _item(item_id, "sentinel-2-l2a", geometry, bbox, props, assets, [EXT["eo"], EXT["proj"], EXT["raster"]])


_LANDSAT_PLATFORM = {
    "landsat-5": ("LT05", ["tm"], "tm"),
    "landsat-7": ("LE07", ["etm+"], "tm"),
    "landsat-8": ("LC08", ["oli", "tirs"], "oli"),
    "landsat-9": ("LC09", ["oli", "tirs"], "oli"),
}


def landsat_item_id(platform: str, path: int, row: int, when: date) -> str:
    """Earth Search v1 id, e.g. ``LC08_L2SP_127035_20210815_02_T1``."""
    return f"{_LANDSAT_PLATFORM[platform][0]}_L2SP_{path:03d}{row:03d}_{when:%Y%m%d}_02_T1"


def landsat_item(
    *,
    item_id: str,
    platform: str,
    acquired: datetime,
    processed: datetime,
    path: int,
    row: int,
    epsg: int,
    transform: Affine,
    shape: tuple[int, int],
    hrefs: dict[str, str],
    cloud_cover: float,
) -> dict[str, Any]:
    """A ``landsat-c2-l2`` item as Earth Search v1 serves it (subset: 5 SR bands + QA_PIXEL)."""
    prefix, instruments, family = _LANDSAT_PLATFORM[platform]
    geometry, bbox = footprint(transform, shape, epsg)
    grid = {k: v for k, v in _proj(epsg, transform, shape).items() if k in ("proj:shape", "proj:transform")}
    assets: dict[str, Any] = {}
    for key, (names, title, centre, fwhm) in _LANDSAT_BANDS.items():
        assets[key] = {
            "href": hrefs[key],
            "type": COG_TYPE,
            "title": title,
            "eo:bands": [{"name": names[family], "common_name": key,
                          "center_wavelength": centre, "full_width_half_max": fwhm}],
            "gsd": 30,
            **grid,
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "spatial_resolution": 30,
                              "scale": 2.75e-05, "offset": -0.2, "unit": "1"}],
            "roles": ["data", "reflectance"],
        }  # fmt: skip
    assets["qa_pixel"] = {
        "href": hrefs["qa_pixel"],
        "type": COG_TYPE,
        "title": "Pixel Quality Assessment Band",
        "description": "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
        **grid,
        "raster:bands": [{"nodata": 1, "data_type": "uint16", "spatial_resolution": 30, "unit": "bit index"}],
        "classification:bitfields": _QA_BITFIELDS,
        "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
    }
    props: dict[str, Any] = {
        "created": _iso(processed),
        "platform": platform,
        "instruments": instruments,
        "eo:cloud_cover": round(cloud_cover, 2),
        **{k: v for k, v in _proj(epsg, transform, shape).items() if k in ("proj:epsg", "proj:code")},
        "view:off_nadir": 0,
        "view:sun_azimuth": 140.2,
        "view:sun_elevation": 50.1,
        "landsat:cloud_cover_land": round(cloud_cover, 2),
        "landsat:wrs_type": "2",
        "landsat:wrs_path": f"{path:03d}",
        "landsat:wrs_row": f"{row:03d}",
        "landsat:scene_id": f"{prefix[0]}{prefix[1]}{prefix[3]}{path:03d}{row:03d}{acquired:%Y%j}LGN00",
        "landsat:collection_category": "T1",
        "landsat:collection_number": "02",
        "landsat:correction": "L2SP",
        "datetime": _iso(acquired),
        "updated": _iso(processed),
    }
    exts = [EXT["eo"], EXT["proj"], EXT["raster"], EXT["classification"]]
    return _item(item_id, "landsat-c2-l2", geometry, bbox, props, assets, exts)


def raster_item(
    *,
    item_id: str,
    collection_id: str,
    start: datetime,
    end: datetime,
    epsg: int,
    transform: Affine,
    shape: tuple[int, int],
    assets: dict[str, dict[str, Any]],
    properties: dict[str, Any] | None = None,
    extensions: tuple[str, ...] = ("proj", "raster"),
) -> dict[str, Any]:
    """An ancillary raster item (DEM, precipitation, soil, WorldCover) covering [start, end]."""
    geometry, bbox = footprint(transform, shape, epsg)
    grid = _proj(epsg, transform, shape)
    props = {
        "datetime": None,
        "start_datetime": _iso(start),
        "end_datetime": _iso(end),
        **grid,
        **(properties or {}),
    }
    return _item(item_id, collection_id, geometry, bbox, props, assets, [EXT[e] for e in extensions])


def _item(
    item_id: str,
    collection_id: str,
    geometry: dict[str, Any],
    bbox: list[float],
    props: dict[str, Any],
    assets: dict[str, Any],
    extensions: list[str],
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": extensions,
        "id": item_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [],
        "assets": assets,
        "collection": collection_id,
    }


def collection(
    collection_id: str,
    description: str,
    items: list[dict[str, Any]],
    *,
    title: str | None = None,
    license: str = "proprietary",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A collection whose extent covers the given items (bbox union, datetime range)."""
    if not items:
        raise ValueError(f"collection {collection_id} has no items")
    xs0, ys0, xs1, ys1 = zip(*(it["bbox"] for it in items), strict=True)
    times = []
    for it in items:
        p = it["properties"]
        times += [t for t in (p.get("datetime"), p.get("start_datetime"), p.get("end_datetime")) if t]
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": collection_id,
        "title": title or collection_id,
        "description": description,
        "license": license,
        "extent": {
            "spatial": {"bbox": [[min(xs0), min(ys0), max(xs1), max(ys1)]]},
            "temporal": {"interval": [[min(times), max(times)]]},
        },
        "links": [],
        **(extra or {}),
    }


def acquisition_time(day: date, hour: int = 3, minute: int = 20) -> datetime:
    """Overpass time over the Loess Plateau (~11:20 local, 03:20 UTC)."""
    return datetime.combine(day, time(hour, minute, 5), tzinfo=UTC)


def processing_time(acquired: datetime, days: float = 2.3) -> datetime:
    """When the ground segment produced the item: a fixed lag after acquisition (deterministic)."""
    return acquired + timedelta(days=days)


#: Earth Search v1 → Planetary Computer asset keys of ``sentinel-2-l2a``.
PC_S2_KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "scl": "SCL"}


def to_planetary_computer(item: dict[str, Any]) -> dict[str, Any]:
    """The same acquisition as Planetary Computer serves it (same pixels, PC's item shape).

    Sentinel-2: PC ids (``S2A_MSIL2A_<acq>_R061_T49SFU_<generation>``), band-named asset keys
    (``B02`` … ``SCL``), no ``raster:bands`` scale/offset (PC leaves the baseline-04.00 offset to the
    user, who reads ``s2:processing_baseline``), ``s2:mgrs_tile`` instead of ``mgrs:*``. Landsat items
    are the same in both archives but for the Earth Search-only fields.
    """
    out = json.loads(json.dumps(item))
    props = out["properties"]
    for key in [k for k in props if k.startswith(("earthsearch:", "mgrs:", "grid:", "processing:"))]:
        del props[key]
    if out["collection"] != "sentinel-2-l2a":
        return out
    mgrs = f"{item['properties']['mgrs:utm_zone']}{item['properties']['mgrs:latitude_band']}{item['properties']['mgrs:grid_square']}"
    props["s2:mgrs_tile"] = mgrs
    uri = props["s2:product_uri"].removesuffix(".SAFE").split("_")
    out["id"] = "_".join([uri[0], uri[1], uri[2], uri[4], uri[5], uri[6]])
    assets = {}
    for key, asset in out["assets"].items():
        asset.pop("raster:bands", None)
        if asset["href"].startswith("./"):  # the pixels stay where the Earth Search-shaped item put them
            asset["href"] = f"../{item['id']}/{asset['href'][2:]}"
        assets[PC_S2_KEYS.get(key, key)] = asset
    out["assets"] = assets
    out["stac_extensions"] = [EXT["eo"], EXT["proj"]]
    return out
