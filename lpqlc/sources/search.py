"""Search the imagery of one quarter: STAC API (pystac-client) or static catalog, same filters.

A quarter becomes a datetime range; items are pre-filtered by ``eo:cloud_cover``; the API is paged
(``sources.page_limit``) with retries and exponential backoff on timeouts and 5xx answers. Items that
cannot feed the composite are dropped with a reason: the same acquisition served in several processing
versions keeps only the newest, and an item that lacks an asset the source rule needs is reported.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pystac

from lpqlc.config import PipelineConfig
from lpqlc.errors import SourceError
from lpqlc.quarter import Quarter
from lpqlc.sources.modifiers import resolve_href_modifier
from lpqlc.sources.rules import SourceRule, rule_for
from lpqlc.sources.static import search_static

__all__ = [
    "Dropped",
    "SearchReport",
    "SearchResult",
    "search_quarter",
    "search_api",
    "search_collection",
    "deduplicate",
    "acquisition_key",
    "aoi_geometry",
]

log = logging.getLogger(__name__)

#: HTTP answers retried with backoff (besides connection errors and read timeouts).
RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Dropped:
    """An item left out of a composite, and why."""

    item_id: str
    reason: str


@dataclass
class SearchReport:
    """What a quarter's search found: items kept per platform, and every dropped item with its reason."""

    quarter: Quarter
    sensor: str
    collection: str
    found: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    dropped: list[Dropped] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable report, one line per fact."""
        kept = ", ".join(f"{p} {n}" for p, n in sorted(self.kept.items())) or "none"
        out = [f"{self.quarter} {self.sensor} ({self.collection}): {self.found} found, kept {kept}"]
        reasons = Counter(d.reason.split(":")[0] for d in self.dropped)
        out += [f"  dropped {n}: {r}" for r, n in sorted(reasons.items())]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "quarter": str(self.quarter),
            "sensor": self.sensor,
            "collection": self.collection,
            "found": self.found,
            "kept": dict(self.kept),
            "dropped": [{"id": d.item_id, "reason": d.reason} for d in self.dropped],
        }


@dataclass
class SearchResult:
    """The items that feed a quarter's composite, the rule that reads them, and the search report."""

    items: list[pystac.Item]
    rule: SourceRule
    report: SearchReport


def _tile(item: pystac.Item) -> str:
    p = item.properties
    if "s2:mgrs_tile" in p:
        return str(p["s2:mgrs_tile"])
    if "mgrs:grid_square" in p:
        return f"{p.get('mgrs:utm_zone', '')}{p.get('mgrs:latitude_band', '')}{p['mgrs:grid_square']}"
    if "landsat:wrs_path" in p:
        return f"{p['landsat:wrs_path']}/{p.get('landsat:wrs_row', '')}"
    return str(p.get("grid:code", item.id))


def acquisition_key(item: pystac.Item) -> tuple[str, str, str, str]:
    """(collection, platform, tile, acquisition second): equal for processing versions of one acquisition."""
    when = item.datetime.strftime("%Y-%m-%dT%H:%M:%S") if item.datetime else item.id
    return (item.collection_id or "", str(item.properties.get("platform", "")), _tile(item), when)


def _version(item: pystac.Item) -> tuple[str, str, str]:
    """Sort key of a processing version: baseline, then generation/update time, then id."""
    p = item.properties
    stamp = str(p.get("s2:generation_time") or p.get("updated") or p.get("created") or "")
    return (str(p.get("s2:processing_baseline", "")), stamp, item.id)


def deduplicate(items: list[pystac.Item]) -> tuple[list[pystac.Item], list[Dropped]]:
    """Keep the newest processing version of each acquisition; the others come back as dropped."""
    groups: dict[tuple[str, str, str, str], list[pystac.Item]] = {}
    for it in items:
        groups.setdefault(acquisition_key(it), []).append(it)
    kept, dropped = [], []
    for group in groups.values():
        group.sort(key=_version)
        kept.append(group[-1])
        dropped += [Dropped(old.id, f"superseded: newer processing {group[-1].id}") for old in group[:-1]]
    kept.sort(key=lambda it: (it.datetime.isoformat() if it.datetime else "", it.id))
    return kept, dropped


def search_api(
    url: str,
    collection: str,
    *,
    bbox: tuple[float, float, float, float] | None,
    quarter: Quarter | None,
    max_cloud_cover: float | None,
    page_limit: int = 100,
    max_retries: int = 5,
    timeout_s: float = 60.0,
    modifier: Any = None,
    intersects: dict[str, Any] | None = None,
) -> list[pystac.Item]:
    """Items of ``collection`` in ``quarter`` (any time if None) from a STAC API, paged, retried with backoff.

    ``intersects`` (a GeoJSON geometry, lon/lat) searches by geometry instead of ``bbox``.
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from pystac_client.warnings import DoesNotConformTo
    from requests.exceptions import RequestException
    from urllib3 import Retry

    retry = Retry(
        total=max_retries,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # POST searches are idempotent reads: retry them too
        raise_on_status=False,
    )
    io = StacApiIO(max_retries=retry, timeout=timeout_s)
    query = {"eo:cloud_cover": {"lte": max_cloud_cover}} if max_cloud_cover is not None else None
    # stac-fastapi-pgstac sorts but does not advertise the sort conformance class, and our own
    # ordering (deduplicate) does not rely on it: no warning for the user
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DoesNotConformTo)
        try:
            client = Client.open(url, stac_io=io, modifier=modifier, timeout=timeout_s)
            search = client.search(
                collections=[collection],
                bbox=bbox if intersects is None else None,
                intersects=intersects,
                datetime=quarter.datetime_range() if quarter is not None else None,
                query=query,
                limit=page_limit,
                sortby=[{"field": "properties.datetime", "direction": "asc"}],
            )
            items = list(search.items())
        except (APIError, RequestException) as exc:
            raise SourceError(f"STAC API {url} search of {collection} in {quarter or 'any time'} failed: {exc}") from None
    return items


def aoi_geometry(cfg: PipelineConfig) -> dict[str, Any] | None:
    """The GeoJSON geometry (lon/lat) a GeoJSON AOI searches with (``intersects``); None for a bbox AOI."""
    if cfg.aoi.geojson is None:
        return None
    from lpqlc.grid import load_aoi

    return load_aoi(cfg).json  # type: ignore[no-any-return]


def _find(cfg: PipelineConfig, collection: str, quarter: Quarter | None, max_cloud_cover: float | None) -> list[pystac.Item]:
    """Items of ``collection`` over the AOI (in ``quarter`` if given) from the configured STAC API or
    static catalog, with the configured href modifier applied."""
    src = cfg.sources
    modifier = resolve_href_modifier(src.href_modifier)
    shape = aoi_geometry(cfg)
    if src.stac_api is not None:
        return search_api(
            src.stac_api, collection, bbox=cfg.aoi.bbox, quarter=quarter, max_cloud_cover=max_cloud_cover,
            page_limit=src.page_limit, max_retries=src.max_retries, timeout_s=src.timeout_s, modifier=modifier,
            intersects=shape,
        )  # fmt: skip
    assert src.catalog is not None
    found = search_static(
        src.catalog, [collection], bbox=cfg.aoi.bbox, intersects=shape, start=quarter.start if quarter else None,
        end=quarter.end if quarter else None, max_cloud_cover=max_cloud_cover, store=cfg.store,
    )  # fmt: skip
    return [modifier(it) or it for it in found] if modifier is not None else found


def search_collection(cfg: PipelineConfig, collection: str) -> list[pystac.Item]:
    """Every item of an ancillary ``collection`` (DEM, precipitation, soil…) over the AOI, any time."""
    found = _find(cfg, collection, None, None)
    if not found:
        where = cfg.sources.stac_api or cfg.sources.catalog
        raise SourceError(f"{where} has no {collection!r} item over the AOI {cfg.aoi.bbox or cfg.aoi.geojson}")
    return found


def search_quarter(cfg: PipelineConfig, quarter: Quarter) -> SearchResult:
    """The items that feed ``quarter``'s composite for the sensor its era names, with a report.

    Uses ``sources.stac_api`` when set, else the static ``sources.catalog``; the href modifier (if
    configured) is applied to every item before it is returned.
    """
    src = cfg.sources
    sensor = src.sensor_for(quarter)
    rule = rule_for(src.flavour, sensor, cfg.science.composite.bands)
    collection = src.collections.sentinel2 if sensor == "sentinel2" else src.collections.landsat
    report = SearchReport(quarter=quarter, sensor=sensor, collection=collection)
    found = _find(cfg, collection, quarter, src.max_cloud_cover)
    report.found = len(found)
    usable = []
    for it in found:
        missing = [a for a in rule.assets if a not in it.assets]
        if missing:
            report.dropped.append(Dropped(it.id, f"missing assets: {', '.join(missing)}"))
        else:
            usable.append(it)
    items, superseded = deduplicate(usable)
    report.dropped += superseded
    report.kept = dict(Counter(str(it.properties.get("platform", "unknown")) for it in items))
    for line in report.lines():
        log.info(line)
    return SearchResult(items=items, rule=rule, report=report)
