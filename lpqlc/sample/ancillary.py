"""Ancillary layers of the sample archive, on the grids of their public counterparts.

- DEM: Copernicus GLO-30-like, float32 metres, EPSG:4326 at 1″.
- Precipitation: CHIRPS-like daily totals, float32 mm/day, EPSG:4326 at 0.05°, one multi-band COG
  per year (band i = day i, described by its date).
- Soil: OpenLandMap-like surface (0 cm) sand, silt, clay in % and organic carbon in steps of 5 g/kg,
  uint8, EPSG:4326 at 1/480° (~250 m).
- Labels: ESA WorldCover v200 2021-like map, uint8 codes, EPSG:4326 at 1/12000°.
- Subregions: GeoJSON polygons of the six management subregions (IA, SL, HG, TG, RV, RM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from affine import Affine

from lpqlc.config.science import WORLDCOVER_COLOURS
from lpqlc.sample.world import World, smooth_field

__all__ = [
    "GeoGrid",
    "SUBREGIONS",
    "WORLDCOVER_V200",
    "geo_grid",
    "dem_layer",
    "precipitation_year",
    "soil_layers",
    "worldcover_layer",
    "worldcover_classes",
    "subregions",
    "year_range",
]

SUBREGIONS = (
    ("IA", "Irrigated agriculture"),
    ("SL", "Sandy land and desert"),
    ("HG", "Loess hilly-gully"),
    ("TG", "Loess tableland-gully"),
    ("RV", "River valley plain"),
    ("RM", "Rock-soil mountains"),
)

#: All ESA WorldCover v200 codes with their names (the archive's legend; the pipeline remaps absent ones).
WORLDCOVER_V200 = {
    10: "Tree cover", 20: "Shrubland", 30: "Grassland", 40: "Cropland", 50: "Built-up",
    60: "Bare / sparse vegetation", 70: "Snow and ice", 80: "Permanent water bodies",
    90: "Herbaceous wetland", 95: "Mangroves", 100: "Moss and lichen",
}  # fmt: skip


@dataclass(frozen=True)
class GeoGrid:
    """A north-up EPSG:4326 grid: transform and (height, width)."""

    transform: Affine
    shape: tuple[int, int]


def geo_grid(bounds: tuple[float, float, float, float], step: float) -> GeoGrid:
    """The grid of ``step``-degree pixels, aligned to multiples of ``step``, covering ``bounds``."""
    w, s, e, n = bounds
    x0, y1 = math.floor(w / step) * step, math.ceil(n / step) * step
    width = math.ceil((e - x0) / step - 1e-9)
    height = math.ceil((y1 - s) / step - 1e-9)
    return GeoGrid(Affine(step, 0.0, x0, 0.0, -step, y1), (height, width))


def dem_layer(world: World) -> tuple[GeoGrid, np.ndarray]:
    """Elevation (m, float32) at 1″ over the world plus a 300 m margin."""
    grid = geo_grid(world.lonlat_bounds(300), 1 / 3600)
    return grid, world.sample(world.dem, grid.transform, grid.shape, 4326, order=1)


def precipitation_year(world: World, year: int, seed: int) -> tuple[GeoGrid, np.ndarray, list[str]]:
    """Daily precipitation (mm/day, float32, (day, y, x)) of a year on the 0.05° grid, and the dates.

    A wet-day chain with a summer monsoon peak (July–August), gamma amounts, and a west→east gradient:
    ~450–550 mm per year, as on the central Loess Plateau.
    """
    grid = geo_grid(world.lonlat_bounds(3000), 0.05)
    rng = np.random.default_rng([seed, year, 7919])
    ndays = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    h, w = grid.shape
    gradient = 1.0 + 0.08 * (np.arange(w) - (w - 1) / 2)[None, :] + 0.05 * smooth_field(rng, (h + 4, w + 4), 2)[2:-2, 2:-2]
    out = np.zeros((ndays, h, w), np.float32)
    dates = []
    for d in range(ndays):
        day = date(year, 1, 1) + timedelta(days=d)
        dates.append(day.isoformat())
        season = max(0.0, math.sin(math.pi * (d - 90) / 220)) if 90 < d < 310 else 0.0
        p_wet = 0.06 + 0.28 * season
        if rng.random() >= p_wet:
            continue
        mean = 2.0 + 9.5 * season**2
        amount = rng.gamma(0.75, mean / 0.75)
        field = amount * gradient * rng.lognormal(0.0, 0.15, (h, w))
        out[d] = np.round(field, 2)
    return grid, out, dates


def soil_layers(world: World) -> tuple[GeoGrid, dict[str, np.ndarray]]:
    """Surface sand, silt, clay (%) and organic carbon (×5 g/kg) on the ~250 m grid, uint8."""
    grid = geo_grid(world.lonlat_bounds(600), 1 / 480)
    a = world.sample(world.texture["a"].astype(np.float32), grid.transform, grid.shape, 4326)
    b = world.sample(world.texture["b"].astype(np.float32), grid.transform, grid.shape, 4326)
    silt = np.clip(62 + 5 * a, 45, 75)
    clay = np.clip(16 + 3 * b, 8, 28)
    sand = 100 - silt - clay
    oc_gkg = np.clip(6.5 + 2.5 * b - 1.5 * a, 2.5, 14)  # 0.25–1.4 % organic carbon
    return grid, {
        "sand": np.rint(sand).astype(np.uint8),
        "silt": np.rint(silt).astype(np.uint8),
        "clay": np.rint(clay).astype(np.uint8),
        "organic_carbon": np.rint(oc_gkg / 5.0).clip(1, 255).astype(np.uint8),
    }


def worldcover_layer(world: World, year: int, noise: float) -> tuple[GeoGrid, np.ndarray]:
    """WorldCover-like 2021 labels (uint8 codes) on its 1/12000° grid over the world."""
    grid = geo_grid(world.lonlat_bounds(0), 1 / 12000)
    labels = world.worldcover_labels(year, noise)
    return grid, world.sample(labels, grid.transform, grid.shape, 4326, order=0)


def worldcover_classes() -> list[dict[str, Any]]:
    """``classification:classes`` of the WorldCover map asset."""
    colours = {**WORLDCOVER_COLOURS, 70: "#f0f0f0", 95: "#00cf75", 100: "#fae6a0"}
    return [
        {"value": k, "name": v.lower().replace(" / ", "-").replace(" ", "-"), "description": v,
         "color_hint": colours[k].lstrip("#").upper()}
        for k, v in WORLDCOVER_V200.items()
    ]  # fmt: skip


def subregions(world: World) -> dict[str, Any]:
    """GeoJSON FeatureCollection: the world split into the six subregions (3 columns × 2 rows)."""
    w, s, e, n = world.lonlat_bounds(0)
    dx, dy = (e - w) / 3, (n - s) / 2
    feats = []
    for i, (code, name) in enumerate(SUBREGIONS):
        r, c = divmod(i, 3)
        x0, y1 = w + c * dx, n - r * dy
        ring = [[x0, y1 - dy], [x0 + dx, y1 - dy], [x0 + dx, y1], [x0, y1], [x0, y1 - dy]]
        ring = [[round(x, 7), round(y, 7)] for x, y in ring]
        feats.append({"type": "Feature", "id": code, "properties": {"code": code, "name": name},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}


def year_range(year: int) -> tuple[datetime, datetime]:
    """First and last instant of a year, UTC."""
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)

