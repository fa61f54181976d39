"""Generate the offline sample archive: COGs, a static STAC catalog, truth maps; optionally a STAC API.

Layout under the output URL::

    catalog.json                              the static catalog (root)
    <collection>/collection.json
    <collection>/<item id>/<item id>.json     items; their asset hrefs are relative ("./blue.tif")
    <collection>/<item id>/<asset>.tif        COGs
    truth/landcover/<YYYYQn>.tif              true land cover per quarter (never read by the pipeline)
    truth/manifest.json                       what the truth holds and the dynamics it follows

Items posted to a STAC API carry absolute asset hrefs (the output URL joined with the relative ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from affine import Affine

from lpqlc.config.science import WORLDCOVER_CLASSES, WORLDCOVER_COLOURS
from lpqlc.publish.cog import cog_bytes
from lpqlc.quarter import Quarter, quarter_range
from lpqlc.sample import ancillary as anc
from lpqlc.sample import items as stac
from lpqlc.sample.scenes import Acquisition, landsat_encode, landsat_qa, s2_encode, s2_scl, simulate
from lpqlc.sample.schedule import SampleSchedule, acquisitions, reprocessed
from lpqlc.sample.world import TRANSITIONS, World, WorldSpec
from lpqlc.storage import StorageURL, Store, parse_storage_url, write_bytes

__all__ = ["SampleSpec", "SampleArchive", "generate", "dumps"]

MGRS_TILE = "49SFU"
WRS_PATH, WRS_ROW = 127, 35
LABEL_YEAR = 2021
_S2_KEYS = ("blue", "green", "red", "nir", "swir16")
_LANDSAT_KEYS = ("blue", "green", "red", "nir08", "swir16")


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: the seed, the world's size (fine 10 m pixels), the quarters, the schedule."""

    seed: int = 42
    size: int = 384
    start: Quarter = Quarter(2000, 1)
    end: Quarter = Quarter(2024, 4)
    label_noise: float = 0.04
    schedule: SampleSchedule = field(default_factory=SampleSchedule)
    #: Item shape of the imagery: Earth Search v1 or Planetary Computer (same pixels either way).
    flavour: str = "earth-search"

    def __post_init__(self) -> None:
        if self.size % 6:
            raise ValueError(f"size must be a multiple of 6 (10/20/30 m grids nest), got {self.size}")
        if self.flavour not in ("earth-search", "planetary-computer"):
            raise ValueError(f"flavour must be earth-search or planetary-computer, got {self.flavour!r}")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.schedule.seed != self.seed:
            object.__setattr__(self, "schedule", SampleSchedule(**{**asdict(self.schedule), "seed": self.seed}))

    @property
    def quarters(self) -> list[Quarter]:
        return quarter_range(self.start, self.end)


@dataclass
class SampleArchive:
    """What was written: the catalog URL, items per collection, and where the truth lies."""

    root: str
    catalog: str
    truth: str
    items: dict[str, list[str]]

    def summary(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.items.items()}


def dumps(doc: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a STAC document (stable key order, 2-space indent, final newline)."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


class _Writer:
    """Writes assets and remembers items per collection."""

    def __init__(self, root: StorageURL, store: Store | None):
        self.root = root
        self.store = store
        self.items: dict[str, list[dict[str, Any]]] = {}

    def put(self, relpath: str, blob: bytes) -> None:
        write_bytes(self.root.join(relpath), blob, self.store)

    def cog(self, collection: str, item_id: str, key: str, data: np.ndarray, transform: Any, crs: str, **kw: Any) -> str:
        self.put(f"{collection}/{item_id}/{key}.tif", cog_bytes(data, transform, crs, **kw))
        return f"./{key}.tif"

    def add(self, item: dict[str, Any], flavour: str = "earth-search") -> None:
        if flavour == "planetary-computer":
            item = stac.to_planetary_computer(item)
        self.items.setdefault(item["collection"], []).append(item)


def _s2(world: World, w: _Writer, acq: Acquisition, sequence: int, baseline: str, processed: datetime) -> dict[str, Any]:
    spec = world.spec
    scene = simulate(world, acq)
    rng = np.random.default_rng(acq.seed + 1)
    item_id = stac.s2_item_id(acq.platform, MGRS_TILE, acq.when, sequence)
    coll = "sentinel-2-l2a"
    t10 = spec.transform
    t20 = t10 @ Affine.scale(2)
    n = spec.size
    dn10, dn20 = s2_encode(scene, 1, baseline >= "04.00"), s2_encode(scene, 2, baseline >= "04.00")
    scl = s2_scl(scene, 2, rng)
    crs = f"EPSG:{spec.epsg}"
    hrefs = {}
    for i, key in enumerate(_S2_KEYS):
        data, tr = (dn20[i], t20) if key == "swir16" else (dn10[i], t10)
        hrefs[key] = w.cog(coll, item_id, key, data, tr, crs, nodata=0)
    hrefs["scl"] = w.cog(coll, item_id, "scl", scl, t20, crs, nodata=0, overview_resampling="nearest")
    valid = scl > 0
    pct = {
        name: float(np.isin(scl[valid], codes).mean() * 100) if valid.any() else 0.0
        for name, codes in (
            ("cloud_shadow", [3]), ("vegetation", [4]), ("not_vegetated", [5]), ("water", [6]),
            ("unclassified", [7]), ("medium_proba_clouds", [8]), ("high_proba_clouds", [9]),
            ("thin_cirrus", [10]), ("snow_ice", [11]),
        )
    }  # fmt: skip
    pct["nodata_pixel"] = float((~valid).mean() * 100)
    cloud_cover = pct["medium_proba_clouds"] + pct["high_proba_clouds"] + pct["thin_cirrus"]
    return stac.s2_item(
        item_id=item_id,
        platform=acq.platform,
        acquired=stac.acquisition_time(acq.when),
        processed=processed,
        baseline=baseline,
        mgrs=MGRS_TILE,
        epsg=spec.epsg,
        grids={10: (t10, (n, n)), 20: (t20, (n // 2, n // 2))},
        hrefs=hrefs,
        cloud_cover=cloud_cover,
        scl_percentages=pct,
        sequence=sequence,
    )


def _landsat(world: World, w: _Writer, acq: Acquisition) -> dict[str, Any]:
    spec = world.spec
    scene = simulate(world, acq)
    item_id = stac.landsat_item_id(acq.platform, WRS_PATH, WRS_ROW, acq.when)
    coll = "landsat-c2-l2"
    t30 = spec.transform @ Affine.scale(3)
    crs = f"EPSG:{spec.epsg}"
    dn = landsat_encode(scene, 3)
    qa = landsat_qa(scene, 3, has_cirrus_band=acq.platform in ("landsat-8", "landsat-9"))
    hrefs = {key: w.cog(coll, item_id, key, dn[i], t30, crs, nodata=0) for i, key in enumerate(_LANDSAT_KEYS)}
    hrefs["qa_pixel"] = w.cog(coll, item_id, "qa_pixel", qa, t30, crs, nodata=1, overview_resampling="nearest")
    flagged = (qa & 0b111110) > 0
    valid = qa != 1
    cloud_cover = float(flagged[valid].mean() * 100) if valid.any() else 100.0
    acquired = stac.acquisition_time(acq.when, hour=3, minute=5)
    return stac.landsat_item(
        item_id=item_id,
        platform=acq.platform,
        acquired=acquired,
        processed=stac.processing_time(acquired, 15.0),
        path=WRS_PATH,
        row=WRS_ROW,
        epsg=spec.epsg,
        transform=t30,
        shape=(spec.size // 3, spec.size // 3),
        hrefs=hrefs,
        cloud_cover=cloud_cover,
    )


def _s2_items(world: World, w: _Writer, spec: SampleSpec, acq: Acquisition) -> list[dict[str, Any]]:
    acquired = stac.acquisition_time(acq.when)
    baseline = "04.00" if acq.when >= datetime(2022, 1, 25).date() else "02.14"
    out = [_s2(world, w, acq, 0, baseline, stac.processing_time(acquired))]
    if reprocessed(spec.schedule, acq):  # the same acquisition, reprocessed later under baseline 05.00
        out.append(_s2(world, w, acq, 1, "05.00", datetime(2023, 3, 1, 12, tzinfo=UTC)))
    return out


def _ancillary(world: World, w: _Writer, spec: SampleSpec) -> None:
    epoch = datetime(2021, 1, 1, tzinfo=UTC), datetime(2021, 12, 31, 23, 59, 59, tzinfo=UTC)
    grid, dem = anc.dem_layer(world)
    item_id = "Copernicus_DSM_COG_10_N36_00_E109_00_DEM"
    href = w.cog("cop-dem-glo-30", item_id, "data", dem, grid.transform, "EPSG:4326", nodata=-32767.0)
    w.add(stac.raster_item(
        item_id=item_id, collection_id="cop-dem-glo-30", start=epoch[0], end=epoch[1], epsg=4326,
        transform=grid.transform, shape=grid.shape, properties={"gsd": 30, "platform": "tandem-x"},
        assets={"data": {"href": href, "type": stac.COG_TYPE, "title": "Elevation", "roles": ["data"],
                         "raster:bands": [{"data_type": "float32", "nodata": -32767.0, "unit": "metre",
                                           "spatial_resolution": 30}]}},
    ))  # fmt: skip
    for year in sorted({q.year for q in spec.quarters}):
        grid, rain, dates = anc.precipitation_year(world, year, spec.seed)
        item_id = f"chirps-daily-{year}"
        href = w.cog("chirps-daily", item_id, "data", rain, grid.transform, "EPSG:4326", nodata=-9999.0,
                     descriptions=dates, blocksize=256)  # fmt: skip
        start, end = anc.year_range(year)
        w.add(stac.raster_item(
            item_id=item_id, collection_id="chirps-daily", start=start, end=end, epsg=4326,
            transform=grid.transform, shape=grid.shape, properties={"lpqlc:band_dates": [dates[0], dates[-1]]},
            assets={"data": {"href": href, "type": stac.COG_TYPE, "title": "Daily precipitation (band = day of year)",
                             "roles": ["data"],
                             "raster:bands": [{"data_type": "float32", "nodata": -9999.0, "unit": "mm"}] * len(dates)}},
        ))  # fmt: skip
    grid, soil = anc.soil_layers(world)
    assets = {}
    for key, arr in soil.items():
        href = w.cog("openlandmap-soil", "openlandmap-soil-b0", key, arr, grid.transform, "EPSG:4326", nodata=255)
        unit, scale = ("g/kg", 5.0) if key == "organic_carbon" else ("%", 1.0)
        assets[key] = {"href": href, "type": stac.COG_TYPE, "title": f"{key.replace('_', ' ')} at 0 cm",
                       "roles": ["data"],
                       "raster:bands": [{"data_type": "uint8", "nodata": 255, "unit": unit, "scale": scale,
                                         "offset": 0.0, "spatial_resolution": 250}]}  # fmt: skip
    w.add(stac.raster_item(
        item_id="openlandmap-soil-b0", collection_id="openlandmap-soil", start=datetime(1950, 1, 1, tzinfo=UTC),
        end=datetime(2017, 12, 31, tzinfo=UTC), epsg=4326, transform=grid.transform, shape=grid.shape,
        assets=assets, properties={"lpqlc:depth_cm": 0},
    ))  # fmt: skip
    grid, labels = anc.worldcover_layer(world, LABEL_YEAR, spec.label_noise)
    item_id = "ESA_WorldCover_10m_2021_v200_N36E108"
    colours = {c["value"]: "#" + c["color_hint"] for c in anc.worldcover_classes()}
    href = w.cog("esa-worldcover", item_id, "map", labels, grid.transform, "EPSG:4326", nodata=0,
                 overview_resampling="mode", colormap=colours)  # fmt: skip
    w.add(stac.raster_item(
        item_id=item_id, collection_id="esa-worldcover", start=epoch[0], end=epoch[1], epsg=4326,
        transform=grid.transform, shape=grid.shape, properties={"esa_worldcover:product_version": "2.0.0"},
        extensions=("proj", "raster", "classification"),
        assets={"map": {"href": href, "type": stac.COG_TYPE, "title": "Land cover classes", "roles": ["data"],
                        "raster:bands": [{"data_type": "uint8", "nodata": 0, "spatial_resolution": 10}],
                        "classification:classes": anc.worldcover_classes()}},
    ))  # fmt: skip
    regions = anc.subregions(world)
    w.put("lpqlc-subregions/subregions/subregions.geojson", dumps(regions))
    geom, bbox = stac.footprint(world.spec.transform, (world.spec.size,) * 2, world.spec.epsg)
    w.add({
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": "subregions",
        "geometry": geom, "bbox": bbox,
        "properties": {"datetime": None, "start_datetime": "2000-01-01T00:00:00.000000Z",
                       "end_datetime": "2024-12-31T23:59:59.000000Z",
                       "lpqlc:codes": [c for c, _ in anc.SUBREGIONS]},
        "links": [], "collection": "lpqlc-subregions",
        "assets": {"data": {"href": "./subregions.geojson", "type": "application/geo+json",
                            "title": "Management subregions", "roles": ["data"]}},
    })  # fmt: skip


def _truth(world: World, w: _Writer, spec: SampleSpec) -> None:
    crs = f"EPSG:{world.spec.epsg}"
    for q in spec.quarters:
        blob = cog_bytes(world.truth(q), world.spec.transform, crs, nodata=0, overview_resampling="mode",
                         colormap=WORLDCOVER_COLOURS)  # fmt: skip
        w.put(f"truth/landcover/{q}.tif", blob)
    manifest = {
        "seed": spec.seed,
        "crs": crs,
        "transform": list(world.spec.transform)[:6],
        "shape": [world.spec.size, world.spec.size],
        "quarters": [str(q) for q in spec.quarters],
        "classes": {str(k): v for k, v in WORLDCOVER_CLASSES.items()},
        "transitions": [{"from": a, "to": b, "rule": name} for a, b, name in TRANSITIONS],
        "label_year": LABEL_YEAR,
        "label_noise": spec.label_noise,
    }
    w.put("truth/manifest.json", dumps(manifest))


_DESCRIPTIONS = {
    "sentinel-2-l2a": ("Sentinel-2 Level-2A (sample)", "Synthetic Sentinel-2 L2A surface reflectance shaped like Earth Search v1."),
    "landsat-c2-l2": ("Landsat Collection 2 Level-2 (sample)", "Synthetic Landsat 5/7/8/9 C2 L2 surface reflectance shaped like Earth Search v1."),
    "cop-dem-glo-30": ("Copernicus DEM GLO-30 (sample)", "Synthetic 1-arc-second elevation of the sample catchment."),
    "chirps-daily": ("CHIRPS daily precipitation (sample)", "Synthetic daily precipitation on the 0.05° CHIRPS grid, one COG per year."),
    "openlandmap-soil": ("OpenLandMap soil texture and carbon (sample)", "Synthetic surface sand/silt/clay (%) and organic carbon (×5 g/kg) at 250 m."),
    "esa-worldcover": ("ESA WorldCover 2021 v200 (sample)", "Synthetic WorldCover-like 10 m labels of 2021."),
    "lpqlc-subregions": ("Loess Plateau management subregions (sample)", "Six subregion polygons over the sample area."),
}  # fmt: skip


_FLAVOUR_NAMES = {"earth-search": "Earth Search v1", "planetary-computer": "Planetary Computer"}


def _write_catalog(w: _Writer, spec: SampleSpec) -> tuple[str, dict[str, dict[str, Any]]]:
    """Write items, collections and the root catalog; returns the catalog URL and the collections."""
    collections: dict[str, dict[str, Any]] = {}
    root_links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for cid in sorted(w.items):
        items = sorted(w.items[cid], key=lambda it: it["id"])
        title, desc = _DESCRIPTIONS[cid]
        coll = stac.collection(cid, desc, items, title=title)
        coll["links"] = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ] + [{"rel": "item", "href": f"./{it['id']}/{it['id']}.json", "type": "application/geo+json"} for it in items]
        for it in items:
            it["links"] = [
                {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            ]
            w.put(f"{cid}/{it['id']}/{it['id']}.json", dumps(it))
        w.put(f"{cid}/collection.json", dumps(coll))
        collections[cid] = coll
        root_links.append({"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json", "title": title})
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "lpqlc-sample",
        "title": "lpqlc offline sample archive",
        "description": (
            f"Deterministic synthetic archive (seed {spec.seed}) of a {spec.size * 10 / 1000:.2f} km loess "
            f"hilly-gully catchment near Yan'an, {spec.start}–{spec.end}, items shaped like {_FLAVOUR_NAMES[spec.flavour]}."
        ),
        "links": root_links,
    }
    w.put("catalog.json", dumps(catalog))
    return w.root.join("catalog.json"), collections


def generate(
    out: str,
    spec: SampleSpec = SampleSpec(),
    *,
    store: Store | None = None,
    stac_api: str | None = None,
    workers: int = 2,
    import_xrspatial: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SampleArchive:
    """Write the sample archive under ``out`` (a local path or ``s3://bucket/prefix``).

    With ``stac_api`` the collections and items are also upserted into that STAC API (Transactions).
    With ``import_xrspatial`` the real Sentinel-2 bands of the xarray-spatial wheel join as one more
    ``sentinel-2-l2a`` item (:mod:`lpqlc.sample.realpixels`).
    ``progress`` is called once per item written, with its id.
    """
    root = parse_storage_url(out, what="--out")
    world = World(WorldSpec(seed=spec.seed, size=spec.size, first_quarter=Quarter(2000, 1)))
    w = _Writer(root, store)
    tick = progress or (lambda _id: None)

    jobs: list[Callable[[], list[dict[str, Any]]]] = []
    for q in spec.quarters:
        for acq in acquisitions(spec.schedule, q, "landsat"):
            jobs.append(lambda acq=acq: [_landsat(world, w, acq)])
        for acq in acquisitions(spec.schedule, q, "sentinel2"):
            jobs.append(lambda acq=acq: _s2_items(world, w, spec, acq))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for made in pool.map(lambda job: job(), jobs):
            for item in made:
                w.add(item, spec.flavour)
                tick(item["id"])
    _ancillary(world, w, spec)
    tick("ancillary")
    _truth(world, w, spec)
    tick("truth")
    if import_xrspatial:
        from lpqlc.sample.realpixels import XRSPATIAL_ITEM_ID, xrspatial_s2_item

        w.add(xrspatial_s2_item(lambda key, *a, **kw: w.cog("sentinel-2-l2a", XRSPATIAL_ITEM_ID, key, *a, **kw)),
              spec.flavour)  # fmt: skip
        tick(XRSPATIAL_ITEM_ID)
    catalog, collections = _write_catalog(w, spec)
    archive = SampleArchive(
        root=root.url,
        catalog=catalog,
        truth=root.join("truth"),
        items={cid: sorted(it["id"] for it in items) for cid, items in w.items.items()},
    )
    if stac_api:
        from lpqlc.publish.stacapi import ingest

        ingest(stac_api, collections, w.items, root)
    return archive

