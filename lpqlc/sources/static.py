"""Search a static STAC catalog with the filters a STAC API would apply: collection, bbox, datetime, cloud."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pystac
from odc.geo import geom

from lpqlc.errors import SourceError
from lpqlc.publish.stacio import read_catalog
from lpqlc.storage import Store

__all__ = ["search_static"]


def _interval(item: pystac.Item) -> tuple[datetime, datetime]:
    if item.datetime is not None:
        return item.datetime, item.datetime
    start, end = item.common_metadata.start_datetime, item.common_metadata.end_datetime
    if start is None or end is None:
        raise SourceError(f"item {item.id} has neither datetime nor start/end_datetime")
    return start, end


def search_static(
    catalog: str,
    collections: Sequence[str],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    intersects: dict[str, Any] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    max_cloud_cover: float | None = None,
    store: Store | None = None,
) -> list[pystac.Item]:
    """Items of ``collections`` in the static catalog intersecting bbox (lon/lat), or the GeoJSON geometry
    ``intersects`` when given, and [start, end].

    Items without ``eo:cloud_cover`` pass the cloud filter (as in a STAC API ``lte`` query, they are
    not dropped silently: the caller sees them). Sorted by datetime, then id.
    """
    try:
        root = read_catalog(catalog, store)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the static catalog {catalog}: {exc}") from None
    if intersects is not None:
        area: geom.Geometry | None = geom.Geometry(intersects, crs="EPSG:4326")
    else:
        area = geom.box(*bbox, crs="EPSG:4326") if bbox else None
    out: list[pystac.Item] = []
    for cid in collections:
        coll = root.get_child(cid)
        if coll is None:
            raise SourceError(f"static catalog {catalog} has no collection {cid!r}")
        for item in coll.get_items():
            lo, hi = _interval(item)
            if start is not None and hi < start or end is not None and lo > end:
                continue
            if area is not None and item.geometry is not None:
                if not geom.Geometry(item.geometry, crs="EPSG:4326").intersects(area):
                    continue
            cc = item.properties.get("eo:cloud_cover")
            if max_cloud_cover is not None and cc is not None and cc > max_cloud_cover:
                continue
            out.append(item)
    return sorted(out, key=lambda it: (_interval(it)[0], it.id))
