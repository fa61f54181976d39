"""The output grid: one equal-area GeoBox over the AOI per resolution era, and its processing tiles."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cached_property

from odc.geo import CRS, geom
from odc.geo.geobox import GeoBox, GeoboxTiles

from lpqlc.config.pipeline import GridConfig, PipelineConfig
from lpqlc.errors import ConfigError
from lpqlc.quarter import Quarter
from lpqlc.storage import open_filesystem, parse_storage_url

__all__ = ["OutputGrid", "load_aoi"]


def load_aoi(cfg: PipelineConfig) -> geom.Geometry:
    """The AOI as an EPSG:4326 geometry (bbox, or the union of a GeoJSON's polygons)."""
    aoi = cfg.aoi
    if aoi.bbox is not None:
        return geom.box(*aoi.bbox, crs="EPSG:4326")
    assert aoi.geojson is not None
    loc = parse_storage_url(aoi.geojson, what="aoi.geojson")
    try:
        with open_filesystem(loc, cfg.store).open(loc.root, "r") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"aoi.geojson {aoi.geojson}: cannot read GeoJSON: {exc}") from None
    features = doc.get("features", [doc]) if isinstance(doc, dict) else []
    shapes = [f.get("geometry", f) for f in features if isinstance(f, dict)]
    polys = [geom.Geometry(s, crs="EPSG:4326") for s in shapes if s and "Polygon" in str(s.get("type"))]
    if not polys:
        raise ConfigError(f"aoi.geojson {aoi.geojson}: holds no Polygon or MultiPolygon")
    return geom.unary_union(polys)


class OutputGrid:
    """The pipeline's equal-area grid over the AOI.

    Its bounds are snapped outward to multiples of ``grid.anchor`` metres, so the 30 m grid of the
    Landsat era and the 10 m grid of the Sentinel-2 era share their outer edges, and every coarse pixel
    holds an exact block of fine pixels.
    """

    def __init__(self, aoi_4326: geom.Geometry, grid: GridConfig):
        self.grid = grid
        self.crs = CRS(grid.crs)
        self.aoi = aoi_4326.to_crs(self.crs)
        a = grid.anchor
        x0, y0, x1, y1 = self.aoi.boundingbox
        self.bounds = (
            math.floor(x0 / a) * a,
            math.floor(y0 / a) * a,
            math.ceil(x1 / a) * a,
            math.ceil(y1 / a) * a,
        )

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> OutputGrid:
        return cls(load_aoi(cfg), cfg.grid)

    def geobox(self, quarter: Quarter | float) -> GeoBox:
        """GeoBox of a quarter's era (or of a pixel size in metres)."""
        res = quarter if isinstance(quarter, float | int) else self.grid.resolution_for(quarter)
        return GeoBox.from_bbox(self.bounds, self.crs, resolution=float(res))

    def tiles(self, quarter: Quarter | float) -> GeoboxTiles:
        """Processing tiles (``grid.tile_size`` pixels square) of a quarter's GeoBox."""
        size = self.grid.tile_size
        return GeoboxTiles(self.geobox(quarter), (size, size))

    def iter_tiles(self, quarter: Quarter | float) -> Iterator[tuple[tuple[int, int], GeoBox]]:
        """(tile index, tile GeoBox) of the tiles that touch the AOI."""
        tiles = self.tiles(quarter)
        ny, nx = tiles.shape
        for iy in range(ny):
            for ix in range(nx):
                gbox = tiles[iy, ix]
                if gbox.extent.intersects(self.aoi):
                    yield (iy, ix), gbox

    @cached_property
    def area_km2(self) -> float:
        """AOI area in km² (exact on the equal-area CRS)."""
        return float(self.aoi.area) / 1e6
