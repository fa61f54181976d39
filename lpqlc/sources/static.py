"""Search a static STAC catalog with the filters a STAC API would apply: collection, bbox, datetime, cloud.

One traversal for both layouts: a collection with item links (the sample archive, a user's catalog)
and a collection partitioned into year sub-catalogs (lpqlc's published catalog, docs/publishing.md),
of which only the years the interval touches are read. pystac's ``get_items`` does not recurse into
sub-catalogs, hence :func:`collection_items`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pystac
from odc.geo import geom

from lpqlc.errors import SourceError
from lpqlc.publish.stacio import read_catalog
from lpqlc.storage import Store

__all__ = ["search_static", "collection_items"]


def _interval(item: pystac.Item) -> tuple[datetime, datetime]:
    if item.datetime is not None:
        return item.datetime, item.datetime
    start, end = item.common_metadata.start_datetime, item.common_metadata.end_datetime
    if start is None or end is None:
        raise SourceError(f"item {item.id} has neither datetime nor start/end_datetime")
    return start, end


def collection_items(root: pystac.Catalog, cid: str, *, start: datetime | None = None, end: datetime | None = None,
                     where: str = "static catalog") -> Iterator[pystac.Item]:  # fmt: skip
    """The items of collection ``cid`` of ``root``: its own item links, then those of its sub-catalogs
    (year sub-catalogs: only those of the years [start, end] touches are read). :class:`SourceError`
    names ``where`` when there is no such collection."""
    coll = root.get_child(cid)
    if coll is None:
        raise SourceError(f"{where} has no collection {cid!r}")
    yield from coll.get_items()
    for link in coll.get_child_links():
        name = link.href.rstrip("/").split("/")[-2]  # a year: ./<YYYY>/catalog.json
        if name.isdigit() and (start is not None and int(name) < start.year or end is not None and int(name) > end.year):
            continue
        yield from link.resolve_stac_object(root=root).target.get_items()


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
    root: pystac.Catalog | None = None,
) -> list[pystac.Item]:
    """Items of ``collections`` in the static catalog intersecting bbox (lon/lat), or the GeoJSON geometry
    ``intersects`` when given, and [start, end] (``root``: the catalog, when the caller has read it).

    Items without ``eo:cloud_cover`` pass the cloud filter (as in a STAC API ``lte`` query, they are
    not dropped silently: the caller sees them). Sorted by datetime, then id.
    """
    if root is None:
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
        for item in collection_items(root, cid, start=start, end=end, where=f"static catalog {catalog}"):
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
