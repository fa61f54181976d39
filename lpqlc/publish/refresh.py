"""The catalog's indexes, refreshed at the cost of what a run changed, not of what exists.

Layout under ``<publish>/<collection>/`` (items themselves: :mod:`lpqlc.publish.catalog`)::

    collection.json                 a child link per year; extent and summaries merged run by run
    <YYYY>/catalog.json             year sub-catalog: an item link per item of that year
    geoparquet/year=<YYYY>/items.parquet   stac-geoparquet of the year's items (hive partition)
    datacube-<res>m.json            datacube index: one kerchunk reference file per year (below)
    datacube/<YYYY>-<res>m.json     kerchunk references of the year's items at that resolution
    datacube/<YYYY>-<res>m.scans.json   the year's COG scans, so a rebuild scans only changed COGs

A run passes the outcomes of its publish tasks. An item is *indexed* when it is new or updated, or
when its year's sub-catalog does not list it yet (a run killed after publishing, before this step).
Only indexed items are read, only their COGs scanned, only their years' partitions rewritten, only
they are upserted into the STAC API; a collection with none is not touched at all. Every partition
rewrite reads the old partition once and merges (years are bounded: 4 quarters × the tiles). With no
outcomes the whole catalog is rebuilt from a listing (``lpqlc run`` on storage published by an older
layout, or a repair).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dask

from lpqlc import __version__
from lpqlc.cluster import compute_bounded
from lpqlc.config import PipelineConfig
from lpqlc.publish.catalog import PublishOutcome, asset_url, item_url, list_items, to_json
from lpqlc.publish.collections import PRODUCTS, collection_doc, collection_id, product
from lpqlc.publish.datacube import build_references, datacube_name, partition_name
from lpqlc.storage import Store, exists, parse_storage_url, put_file, read_bytes, write_bytes

__all__ = ["CatalogIndex", "refresh_catalog", "item_year", "publish_analysis_collection"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class CatalogIndex:
    """What a catalog refresh wrote (URLs), and how many items it indexed per collection."""

    catalog: str
    collections: dict[str, str] = field(default_factory=dict)
    datacubes: dict[str, list[str]] = field(default_factory=dict)
    geoparquet: dict[str, list[str]] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    api: dict[str, int] | None = None
    written: list[str] = field(default_factory=list)


def item_year(item_id: str) -> int:
    """The year of an item from its id (``<collection>-<period>-<tile>``, period ``2021Q3`` or ``2021``)."""
    return int(item_id.rsplit("-", 2)[1][:4])


def _read_json(url: str, store: Store | None) -> dict[str, Any] | None:
    if not exists(url, store):
        return None
    doc: dict[str, Any] = json.loads(read_bytes(url, store))
    return doc


def _parallel(fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
    """Small storage reads in a few threads (I/O bound, a handful per collection and year)."""
    if len(args) < 4:
        return [fn(a) for a in args]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(fn, args))


def _scan(url: str, store: Store | None) -> dict[str, Any]:
    from lpqlc.publish.datacube import scan_cog

    return scan_cog(url, store)


def _trim(item: Mapping[str, Any], assets: Sequence[str]) -> dict[str, Any]:
    """What :func:`build_references` needs of an item (kept in the scans file of its year)."""
    keep = ("datetime", "proj:transform", "proj:bbox", "proj:wkt2", "proj:code")
    return {"id": item["id"], "properties": {k: item["properties"][k] for k in keep if k in item["properties"]},
            "assets": {a: {k: v for k, v in item["assets"][a].items()
                           if k in ("raster:bands", "title", "classification:classes")} for a in assets}}  # fmt: skip


class _Writer:
    """Writes documents and remembers what it wrote."""

    def __init__(self, store: Store | None, index: CatalogIndex):
        self.store, self.index = store, index

    def json(self, url: str, doc: Mapping[str, Any]) -> str:
        write_bytes(url, to_json(doc), self.store)
        self.index.written.append(url)
        return url

    def geoparquet(self, url: str, items: list[dict[str, Any]], collection: dict[str, Any]) -> str:
        from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "items.parquet")
            to_parquet(parse_stac_items_to_arrow(items), path, collections={collection["id"]: collection})
            put_file(path, url, self.store)
        self.index.written.append(url)
        return url


def _read_geoparquet(url: str, store: Store | None) -> list[dict[str, Any]]:
    if not exists(url, store):
        return []
    import io

    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import stac_table_to_items

    return list(stac_table_to_items(pq.read_table(io.BytesIO(read_bytes(url, store)))))


def _merge_extent(doc: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    """Grow ``doc``'s extent and summaries (made from this run's items) by the old collection's."""
    if not old or "extent" not in old:
        return
    if "extent" not in doc:
        doc["extent"], doc["summaries"] = old["extent"], old.get("summaries", {})
        return
    (a,), (b,) = doc["extent"]["spatial"]["bbox"], old["extent"]["spatial"]["bbox"]
    doc["extent"]["spatial"]["bbox"] = [[min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]]
    (s, e), (s0, e0) = doc["extent"]["temporal"]["interval"][0], old["extent"]["temporal"]["interval"][0]
    doc["extent"]["temporal"]["interval"] = [[min(s, s0), max(e, e0)]]
    for k, v in (old.get("summaries") or {}).items():
        doc.setdefault("summaries", {})[k] = sorted(set(doc["summaries"].get(k, [])) | set(v))


def _refresh_collection(cfg: PipelineConfig, key: str, outcomes: Sequence[PublishOutcome] | None, w: _Writer,
                        client: Any, progress: Progress | None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:  # fmt: skip
    """Refresh one collection's partitions; returns its document and the items indexed (None: untouched)."""
    from lpqlc.publish.stacapi import absolute_item

    root = cfg.publish_url.rstrip("/")
    store = cfg.store
    rootloc = parse_storage_url(root, what="publish.url")
    prod = product(key)
    cid = collection_id(cfg, key)
    base = f"{root}/{cid}"
    old_coll = _read_json(f"{base}/collection.json", store)
    layered = old_coll is not None and any(link.get("rel") == "child" for link in old_coll.get("links", []))
    rebuild = outcomes is None or not layered  # first publish, or storage of the one-document layout
    if rebuild:
        items = list_items(root, cid, store)
        year_docs: dict[int, dict[str, Any] | None] = {y: None for y in {item_year(i["id"]) for i in items}}
    else:
        mine = [o for o in outcomes or () if o.url.startswith(f"{base}/")]
        years = sorted({item_year(o.item_id) for o in mine})
        year_docs = dict(zip(years, _parallel(lambda y: _read_json(f"{base}/{y}/catalog.json", store), years),
                             strict=True))  # fmt: skip
        linked = {y: {link["href"] for link in (d or {}).get("links", []) if link.get("rel") == "item"} for y, d in year_docs.items()}
        todo = [o for o in mine if o.status != "unchanged" or f"../{o.item_id}/{o.item_id}.json" not in linked[item_year(o.item_id)]]
        items = _parallel(lambda o: json.loads(read_bytes(item_url(root, cid, o.item_id), store)), todo)
    if not items:
        return None
    by_year: dict[int, list[dict[str, Any]]] = {}
    for it in items:
        by_year.setdefault(item_year(it["id"]), []).append(it)
    absolute = {it["id"]: absolute_item(it, rootloc) for it in items}
    doc = collection_doc(cfg, key, items, None)
    _merge_extent(doc, None if rebuild else old_coll)
    scans: dict[tuple[str, str], Any] = {}
    if cfg.publish.kerchunk:
        pairs = [(i["id"], a) for i in items for a in prod.assets]
        tasks = [dask.delayed(_scan, pure=True)(asset_url(root, absolute[i], a), store) for i, a in pairs]
        scans = dict(zip(pairs, compute_bounded(tasks, client, f"datacube {key}", progress), strict=True))
    partitions: dict[str, dict[str, str]] = {}  # resolution → year → reference file
    for year, group in sorted(by_year.items()):
        old_year = year_docs.get(year)
        links = {link["href"]: link for link in (old_year or {}).get("links", []) if link.get("rel") == "item"}
        for it in group:
            href = f"../{it['id']}/{it['id']}.json"
            links[href] = {"rel": "item", "href": href, "type": "application/geo+json"}
        w.json(f"{base}/{year}/catalog.json", {
            "type": "Catalog", "stac_version": "1.1.0", "id": f"{cid}-{year}", "title": f"{cid}: {year}",
            "description": f"The {year} items of {cid}.",
            "links": [{"rel": "root", "href": "../../catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "../collection.json", "type": "application/json"},
                      *(links[h] for h in sorted(links))],
        })  # fmt: skip
        if cfg.publish.geoparquet:
            url = f"{base}/geoparquet/year={year}/items.parquet"
            fresh = {it["id"] for it in group}
            kept = [] if rebuild else [i for i in _read_geoparquet(url, store) if i["id"] not in fresh]
            rows = sorted(kept + [absolute[it["id"]] for it in group], key=lambda i: i["id"])
            w.index.geoparquet.setdefault(cid, []).append(w.geoparquet(url, rows, doc))
        if cfg.publish.kerchunk:
            by_res: dict[float, list[dict[str, Any]]] = {}
            for it in group:
                by_res.setdefault(abs(it["properties"]["proj:transform"][0]), []).append(it)
            for res, members in sorted(by_res.items()):
                name = partition_name(year, res)
                cache_url = f"{base}/datacube/{name.removesuffix('.json')}.scans.json"
                cache = {} if rebuild else (_read_json(cache_url, store) or {})
                for it in members:
                    cache[it["id"]] = {"item": _trim(absolute[it["id"]], prod.assets),
                                       "scans": {a: scans[(it["id"], a)] for a in prod.assets}}  # fmt: skip
                trimmed = [cache[i]["item"] for i in sorted(cache)]
                flat = {(i, a): s for i in cache for a, s in cache[i]["scans"].items()}
                refs = build_references(trimmed, flat, prod.assets, title=f"{cid} {year} at {res:g} m")
                w.json(cache_url, cache)
                w.index.datacubes.setdefault(cid, []).append(w.json(f"{base}/datacube/{name}", refs))
                if f"{res:g}" not in partitions:
                    old_index = None if rebuild else _read_json(f"{base}/{datacube_name(res)}", store)
                    partitions[f"{res:g}"] = dict((old_index or {}).get("partitions", {}))
                partitions[f"{res:g}"][str(year)] = f"./datacube/{name}"
    assets: dict[str, dict[str, Any]] = dict((old_coll or {}).get("assets") or {}) if not rebuild else {}
    assets.pop("geoparquet", None)  # the one-file mirror of the old layout
    if cfg.publish.kerchunk:
        for res, parts in sorted(partitions.items()):
            name = datacube_name(float(res))
            w.json(f"{base}/{name}", {"type": "lpqlc-datacube-index", "collection": cid, "resolution": float(res),
                                      "partitions": dict(sorted(parts.items()))})  # fmt: skip
            assets[name.removesuffix(".json")] = {
                "href": f"./{name}", "type": "application/json", "roles": ["index", "references"],
                "title": f"Kerchunk references of the {res} m time series, one file per year (lpqlc datacube --years)",
            }  # fmt: skip
    if cfg.publish.geoparquet:
        assets["geoparquet"] = {"href": "./geoparquet/", "type": "application/vnd.apache.parquet",
                                "roles": ["collection-mirror"],
                                "title": "stac-geoparquet of the items, partitioned by year (year=YYYY/items.parquet)"}  # fmt: skip
    doc["assets"] = assets
    years = {int(link["href"].split("/")[1]) for link in (old_coll or {}).get("links", []) if link.get("rel") == "child"}
    years = (set() if rebuild else years) | set(by_year)
    doc["links"] = [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                    {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                    *({"rel": "child", "href": f"./{y}/catalog.json", "type": "application/json", "title": str(y)}
                      for y in sorted(years))]  # fmt: skip
    w.index.collections[cid] = w.json(f"{base}/collection.json", doc)
    w.index.items[cid] = len(items)
    return doc, items


def publish_analysis_collection(cfg: PipelineConfig, key: str) -> str:
    """Write the collection of an analysis product (``trend``, ``scenario``: a few items per run, linked
    directly, no year partitions or datacubes), link it from the root catalog and upsert it and its items
    into ``publish.stac_api`` when set. Returns the collection URL."""
    from lpqlc.publish.catalog import write_collection
    from lpqlc.publish.stacapi import ingest

    root, store = cfg.publish_url.rstrip("/"), cfg.store
    cid = collection_id(cfg, key)
    items = list_items(root, cid, store)
    doc = collection_doc(cfg, key, items)
    url = write_collection(root, doc, items, store)
    _root_catalog(cfg, [cid], _Writer(store, CatalogIndex(catalog=f"{root}/catalog.json")))
    if cfg.publish.stac_api:
        ingest(cfg.publish.stac_api, {cid: doc}, {cid: items}, parse_storage_url(root, what="publish.url"))
    return url


def _root_catalog(cfg: PipelineConfig, cids: Iterable[str], w: _Writer) -> None:
    """Write the root catalog when a collection is missing from it (read it once otherwise)."""
    root = cfg.publish_url.rstrip("/")
    url = f"{root}/catalog.json"
    old = _read_json(url, w.store)
    have = {link["href"].split("/")[1] for link in (old or {}).get("links", []) if link.get("rel") == "child"}
    if old is not None and set(cids) <= have:
        return
    ids = sorted(have | set(cids))
    w.json(url, {
        "type": "Catalog", "stac_version": "1.1.0",
        "id": parse_storage_url(root).root.rstrip("/").rsplit("/", 1)[-1] or "lpqlc",
        "title": f"{cfg.name}: LP-QLC land cover and soil erosion",
        "description": f"Quarterly land cover and RUSLE soil erosion for {cfg.aoi.name}, made by lpqlc {__version__}.",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
        + [{"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"} for cid in ids],
    })  # fmt: skip


def refresh_catalog(cfg: PipelineConfig, keys: Sequence[str] = tuple(PRODUCTS), *, client: Any = None,
                    progress: Progress | None = None, outcomes: Sequence[PublishOutcome] | None = None) -> CatalogIndex:  # fmt: skip
    """Refresh year sub-catalogs, collections, stac-geoparquet and kerchunk partitions and the root
    catalog for the items in ``outcomes`` (a run's publish results; None: rebuild from a listing),
    then upsert those items into ``publish.stac_api`` when set (see the module doc)."""
    from lpqlc.publish.stacapi import ingest

    root = cfg.publish_url.rstrip("/")
    index = CatalogIndex(catalog=f"{root}/catalog.json")
    w = _Writer(cfg.store, index)
    docs: dict[str, dict[str, Any]] = {}
    indexed: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        got = _refresh_collection(cfg, key, outcomes, w, client, progress)
        if got is not None:
            cid = collection_id(cfg, key)
            docs[cid], indexed[cid] = got
    if docs:
        _root_catalog(cfg, docs, w)
    if cfg.publish.stac_api and docs:
        api_docs = {}
        for cid, doc in docs.items():
            d = dict(doc)
            d["assets"] = {k: {**a, "href": f"{root}/{cid}/{a['href'].removeprefix('./')}"}
                           for k, a in (doc.get("assets") or {}).items()}  # fmt: skip
            api_docs[cid] = d
        index.api = ingest(cfg.publish.stac_api, api_docs, indexed, parse_storage_url(root, what="publish.url"))
    log.info("catalog: %d item(s) indexed, %d document(s) written", sum(index.items.values()), len(index.written))
    return index
