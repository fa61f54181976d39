"""Per-tile sources: which items feed which output tile, from a spatial index of item footprints.

A plateau quarter holds ~1,500 Sentinel-2 items and hundreds of output tiles; a tile's composite
graph must hold only the items whose footprint intersects the tile, so that its planning cost, its
time slices and its unit key depend on those items alone (an unreadable asset then re-keys only the
tiles it touches). Footprints are projected once to the grid CRS and indexed with shapely's
``STRtree``; each tile is a box query (``predicate="intersects"``). Metadata only: nothing is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import shapely
import shapely.geometry
from odc.geo import CRS
from odc.geo.geobox import GeoBox

from lpqlc.errors import SourceError

__all__ = ["ItemIndex", "TileSources", "tile_sources", "batched"]

log = logging.getLogger(__name__)


def _footprint(item: pystac.Item) -> Any:
    """The item's footprint in EPSG:4326 as a shapely geometry (its ``geometry``, else its ``bbox``), or None."""
    try:
        if item.geometry is not None:
            return shapely.geometry.shape(item.geometry)
        if item.bbox is not None:
            return shapely.box(*item.bbox[:2], *item.bbox[-2:])
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.ShapelyError) as exc:
        raise SourceError(f"item {item.id}: unusable footprint ({exc})") from None
    return None


class ItemIndex:
    """Item footprints in the grid CRS, in a shapely ``STRtree``.

    Footprints are projected all at once (``shapely.transform`` with one pyproj transformer: vertices
    as given, no densification, as ``odc.geo``'s ``to_crs`` does by default, ~20× faster than one
    ``to_crs`` per item). Items without geometry or bbox cannot be placed: they go to every tile (and
    are logged once).
    """

    def __init__(self, items: Iterable[pystac.Item], crs: CRS):
        from pyproj import Transformer

        self.items = list(items)
        self.crs = crs
        lonlat: list[Any] = []
        self._everywhere: list[int] = []
        placed: list[int] = []
        for i, it in enumerate(self.items):
            fp = _footprint(it)
            if fp is None:
                self._everywhere.append(i)
                continue
            lonlat.append(fp)
            placed.append(i)
        if self._everywhere:
            log.warning("%d items have no geometry or bbox: they enter every tile's composite (e.g. %s)",
                        len(self._everywhere), self.items[self._everywhere[0]].id)  # fmt: skip
        tr = Transformer.from_crs("EPSG:4326", crs.proj, always_xy=True)

        def project(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

        self._placed = np.asarray(placed, dtype=np.int64)
        shapes = np.empty(len(lonlat), dtype=object)
        shapes[:] = lonlat
        self.footprints = list(shapely.transform(shapes, project))
        self._tree = shapely.STRtree(self.footprints)

    def query(self, gbox: GeoBox) -> list[int]:
        """Positions (in ``items`` order) of the items whose footprint intersects ``gbox``."""
        hits = self._tree.query(gbox.extent.to_crs(self.crs).geom, predicate="intersects")
        return sorted([int(i) for i in self._placed[hits]] + self._everywhere)

    def overlap_fraction(self, i: int, gbox: GeoBox) -> float:
        """Share (0–1) of item ``i``'s footprint area inside ``gbox`` (1 for an item without footprint)."""
        pos = np.searchsorted(self._placed, i)
        if pos >= len(self._placed) or self._placed[pos] != i:
            return 1.0
        fp = self.footprints[pos]
        if fp.area <= 0:
            return 1.0
        return float(shapely.intersection(fp, gbox.extent.to_crs(self.crs).geom).area / fp.area)


@dataclass(frozen=True)
class TileSources:
    """One output tile and the items whose footprint intersects it (in search order)."""

    index: tuple[int, int]
    gbox: GeoBox
    items: tuple[pystac.Item, ...]


def tile_sources(index: ItemIndex, tiles: Iterable[tuple[tuple[int, int], GeoBox]],
                 exclude: set[str] | frozenset[str] = frozenset()) -> Iterator[TileSources]:  # fmt: skip
    """Each tile with its intersecting items, lazily (one tile at a time); ``exclude`` holds item ids left out."""
    for idx, gbox in tiles:
        items = tuple(index.items[i] for i in index.query(gbox) if index.items[i].id not in exclude)
        yield TileSources(idx, gbox, items)


def batched(seq: list[Any], size: int) -> Iterator[list[Any]]:
    """``seq`` in consecutive slices of at most ``size``."""
    for i in range(0, len(seq), max(1, size)):
        yield seq[i : i + size]
