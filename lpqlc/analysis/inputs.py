"""What the analyses read: the published datacubes of one resolution, the subregions on their grid, the
output tiles they cover, and the result record the analyses fill."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import xarray as xr

from lpqlc.analysis.counts import rasterize_blocks
from lpqlc.config import PipelineConfig
from lpqlc.errors import ConfigError
from lpqlc.quarter import Quarter
from lpqlc.storage import exists

__all__ = ["AnalysisResult", "Span", "Cubes", "regions_raster", "tiles", "TREND_KEY"]

log = logging.getLogger(__name__)

#: Product key of the trend collection (template ``stac/trend.json``).
TREND_KEY = "trend"


@dataclass
class AnalysisResult:
    """What ``lpqlc analyse`` wrote and what it skipped (analysis → reason)."""

    out: str
    files: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Span:
    """The period of a trend item: whole years ``first``–``last`` (duck-types publish.items.Period)."""

    first: int
    last: int

    @property
    def label(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def start(self) -> datetime:
        return datetime(self.first, 1, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(self.last + 1, 1, 1, tzinfo=UTC) - timedelta(seconds=1)

    @property
    def middle(self) -> datetime:
        return self.start + (self.end + timedelta(seconds=1) - self.start) / 2


class Cubes:
    """The published datacubes of one resolution, opened lazily, with their grid."""

    def __init__(self, cfg: PipelineConfig, resolution: float | None):
        from lpqlc.publish.collections import collection_id
        from lpqlc.publish.datacube import datacube_name, open_datacube

        self.cfg = cfg
        store = cfg.store
        root = cfg.publish_url.rstrip("/")

        def url(key: str, res: float) -> str:
            return f"{root}/{collection_id(cfg, key)}/{datacube_name(res)}"

        if resolution is None:
            have = [
                r.resolution for r in cfg.grid.resolutions if exists(url("landcover", r.resolution), store)
            ]
            if not have:
                raise ConfigError(f"no published land-cover datacube under {root}: run `lpqlc run` first")
            resolution = min(have)
        self.res = float(resolution)
        self.pixel_km2 = self.res * self.res / 1e6
        self.ds: dict[str, xr.Dataset] = {}
        for key in ("landcover", "erosion", "erosion-annual"):
            if exists(url(key, self.res), store):
                self.ds[key] = open_datacube(url(key, self.res), store)
        if "landcover" not in self.ds:
            raise ConfigError(f"no published land-cover datacube at {self.res:g} m under {root}")
        gt = [float(v) for v in self.ds["landcover"]["spatial_ref"].attrs["GeoTransform"].split()]
        from affine import Affine

        self.transform = Affine(gt[1], gt[2], gt[0], gt[4], gt[5], gt[3])
        self.crs_wkt = self.ds["landcover"]["spatial_ref"].attrs["crs_wkt"]

    def quarters(self, key: str) -> list[Quarter]:
        return [Quarter.of(pd.Timestamp(t).to_pydatetime()) for t in self.ds[key]["time"].values]

    def years(self) -> list[int]:
        return (
            [pd.Timestamp(t).year for t in self.ds["erosion-annual"]["time"].values]
            if "erosion-annual" in self.ds
            else []
        )

    def geobox(self) -> Any:
        from odc.geo.geobox import GeoBox

        lc = self.ds["landcover"]["landcover"]
        return GeoBox((lc.sizes["y"], lc.sizes["x"]), self.transform, self.crs_wkt)


def regions_raster(cfg: PipelineConfig, cubes: Cubes) -> tuple[xr.DataArray | None, list[str]]:
    """The subregion raster (1…R) on the cubes' grid, built block by block; (None, []) without subregions."""
    from odc.geo import geom

    from lpqlc.erosion.inputs import subregion_features
    from lpqlc.errors import LpqlcError

    try:
        features = subregion_features(cfg)
    except (LpqlcError, OSError) as exc:
        log.warning("no subregions (%s): tables cover the whole AOI only", exc)
        return None, []
    if not features:
        return None, []
    shapes = [
        (geom.Geometry(g, "EPSG:4326").to_crs(cubes.crs_wkt).geom, i + 1) for i, (_, g) in enumerate(features)
    ]
    like = cubes.ds["landcover"]["landcover"].isel(time=0, drop=True)
    return rasterize_blocks(shapes, like, cubes.transform), [code for code, _ in features]


def tiles(cubes: Cubes) -> list[tuple[str, Any, tuple[slice, slice]]]:
    """(tile id, tile GeoBox, (y, x) slices into the cubes) of the output tiles the cubes cover."""
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid

    grid = OutputGrid.from_config(cubes.cfg)
    h, w = cubes.ds["landcover"].sizes["y"], cubes.ds["landcover"].sizes["x"]
    out = []
    for index, gbox in grid.iter_tiles(cubes.res):
        t = gbox.transform
        ox = round((t.c - cubes.transform.c) / cubes.res)
        oy = round((cubes.transform.f - t.f) / cubes.res)
        th, tw = gbox.shape.yx
        if ox < 0 or oy < 0 or ox >= w or oy >= h:
            continue
        out.append((tile_id(index), gbox, (slice(oy, min(oy + th, h)), slice(ox, min(ox + tw, w)))))
    return out
