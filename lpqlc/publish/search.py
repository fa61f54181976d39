"""Searching published items, in a static catalog or a STAC API, by collection, bbox and datetime."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pystac

from lpqlc.errors import LpqlcError
from lpqlc.storage import Store

__all__ = ["search_items", "parse_interval"]


def _parse_time(text: str, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LpqlcError(f"--datetime: {text!r} is not an ISO date or datetime") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    if end and len(text) == 10:  # a bare date ends at its last instant
        t = t.replace(hour=23, minute=59, second=59, microsecond=999999)
    return t


def parse_interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    """``2021-07-01/2021-09-30`` (either end may be ``..``) or one instant → (start, end), UTC."""
    if not text:
        return None, None
    if "/" in text:
        a, b = text.split("/", 1)
        return _parse_time(a, False), _parse_time(b, True)
    return _parse_time(text, False), _parse_time(text, True)


def search_items(target: str, *, collections: Sequence[str] | None = None,
                 bbox: tuple[float, float, float, float] | None = None, datetime: str | None = None,
                 limit: int = 100, store: Store | None = None) -> list[pystac.Item]:  # fmt: skip
    """Items matching the filters: through pystac-client for an ``http(s)`` STAC API, else by walking
    the static catalog at ``target`` (local path or ``s3://``; year sub-catalogs of the years asked
    for only: :func:`lpqlc.sources.static.search_static`)."""
    if target.startswith(("http://", "https://")) and not target.endswith(".json"):
        from pystac_client import Client

        search = Client.open(target).search(collections=list(collections) if collections else None, bbox=bbox,
                                            datetime=datetime, max_items=limit)  # fmt: skip
        return list(search.items())
    from lpqlc.publish.stacio import read_catalog
    from lpqlc.sources.static import search_static

    start, end = parse_interval(datetime)
    root = read_catalog(target, store)
    if not collections:
        collections = [c.id for c in root.get_children()]
    return search_static(target, collections, bbox=bbox, start=start, end=end, store=store, root=root)[:limit]
