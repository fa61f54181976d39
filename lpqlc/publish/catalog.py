"""The published static catalog: versioned items committed after their assets, and the catalog tree.

Layout under the publish root (local path or ``s3://``)::

    catalog.json                                   root catalog, a child link per collection
    <collection>/collection.json                   collection, an item link per item, index assets
    <collection>/<item>/<item>.json                the item: its commit point
    <collection>/<item>/v<N>/<asset>.tif           the COGs of version N (immutable once committed)
    <collection>/<item>/v<N>/lineage.json          version N's lineage: every input item id (linked ``lineage``)
    <collection>/<item>/v<N>/<item>.json           a superseded version's item (``superseded: keep``)

Publishing an item writes its COGs under a new version folder (each atomically), then the item JSON
(atomically): readers see the old version or the whole new one, and a publish interrupted before the
item is written leaves no visible item (the next run writes that version again). Republishing
identical content (same checksums, same inputs) writes nothing, so reruns are idempotent and untouched
items stay byte-identical. A changed item gets version N+1, a new ``updated`` and keeps ``created``.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from lpqlc.publish.items import LINEAGE_REL, CogInfo, cog_info, inputs_digest, multihash
from lpqlc.storage import Store, exists, list_files, read_bytes, remove, write_bytes

__all__ = [
    "PublishOutcome",
    "item_url",
    "read_item",
    "publish_item",
    "list_items",
    "write_collection",
    "to_json",
    "lineage_document",
    "read_inputs",
]

log = logging.getLogger(__name__)

Status = Literal["new", "updated", "unchanged"]


def to_json(doc: Mapping[str, Any]) -> bytes:
    """Stable JSON bytes (2-space indent, keys in insertion order, UTF-8, trailing newline)."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def item_url(root: str, collection: str, item_id: str) -> str:
    """``<root>/<collection>/<item>/<item>.json``."""
    return f"{root.rstrip('/')}/{collection}/{item_id}/{item_id}.json"


def asset_url(root: str, item: Mapping[str, Any], key: str) -> str:
    """The absolute URL of asset ``key`` of a published ``item`` (its href taken relative to the item)."""
    href = item["assets"][key]["href"]
    if "://" in href or href.startswith("/"):
        return str(href)
    return f"{item_url(root, item['collection'], item['id']).rsplit('/', 1)[0]}/{href.removeprefix('./')}"


def read_item(url: str, store: Store | None) -> dict[str, Any] | None:
    """The item JSON at ``url``, or None when there is none."""
    if not exists(url, store):
        return None
    doc: dict[str, Any] = json.loads(read_bytes(url, store))
    return doc


@dataclass(frozen=True)
class PublishOutcome:
    """What publishing one item did."""

    item_id: str
    status: Status
    version: int
    url: str


def _item_links(collection: str, item_id: str) -> list[dict[str, Any]]:
    year = item_id.rsplit("-", 2)[1][:4]  # <collection>-<period>-<tile>: the year sub-catalog is the parent
    return [
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": f"../{year}/catalog.json", "type": "application/json"},
        {"rel": "collection", "href": "../collection.json", "type": "application/json", "title": collection},
    ]


def publish_item(
    root: str,
    collection: str,
    item_id: str,
    blobs: Mapping[str, bytes],
    make_item: Callable[[int, Mapping[str, tuple[str, CogInfo]], datetime, datetime], dict[str, Any]],
    *,
    inputs: Sequence[str],
    store: Store | None = None,
    superseded: Literal["keep", "delete"] = "keep",
    now: datetime | None = None,
) -> PublishOutcome:
    """Publish one item's COG ``blobs`` (asset key → bytes) and then the item.

    ``make_item(version, assets, created, updated)`` builds the item document from the asset hrefs
    (relative to the item) and their :class:`CogInfo`; ``inputs`` are the item's ``lpqlc:inputs``.
    Nothing is read beyond checksums, and nothing written, when the published version already has
    these exact assets and inputs; otherwise every blob is checked to be a valid COG before anything
    is written.
    """
    url = item_url(root, collection, item_id)
    old = read_item(url, store)
    if old is not None and _same_content(old, blobs, inputs):
        return PublishOutcome(item_id, "unchanged", int(old["properties"].get("version", "0")), url)
    infos = {k: cog_info(b, f"{collection}/{item_id} asset {k!r}") for k, b in blobs.items()}
    old_version = int(old["properties"].get("version", "0")) if old else 0
    now = now or datetime.now(UTC)
    created = _parse_time(old["properties"]["created"]) if old else now
    version = old_version + 1
    folder = posixpath.dirname(url)
    for key, blob in blobs.items():
        write_bytes(f"{folder}/v{version}/{key}.tif", blob, store)
    doc = make_item(version, {k: (f"./v{version}/{k}.tif", i) for k, i in infos.items()}, created, now)
    write_bytes(f"{folder}/v{version}/lineage.json", to_json(lineage_document(doc, inputs)), store)
    doc["links"] = _item_links(collection, item_id) + [_lineage_link(f"./v{version}/lineage.json")]
    if old is not None and superseded == "keep":
        previous = _as_superseded(old, old_version)
        write_bytes(f"{folder}/v{old_version}/{item_id}.json", to_json(previous), store)
        doc["links"].append({"rel": "predecessor-version", "href": f"./v{old_version}/{item_id}.json",
                             "type": "application/geo+json", "title": f"version {old_version}"})  # fmt: skip
    write_bytes(url, to_json(doc), store)  # the commit point
    if old is not None and superseded == "delete":
        remove(f"{folder}/v{old_version}", store, recursive=True)
    log.debug("%s: published version %d", item_id, version)
    return PublishOutcome(item_id, "updated" if old else "new", version, url)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def lineage_document(item: Mapping[str, Any], inputs: Sequence[str]) -> dict[str, Any]:
    """The lineage document of an item version: its lineage sentence and every input item id."""
    ids = sorted(set(inputs))
    return {"item": item["id"], "collection": item.get("collection"), "version": item["properties"].get("version"),
            "processing:lineage": item["properties"].get("processing:lineage"),
            "lpqlc:inputs_digest": inputs_digest(ids), "lpqlc:inputs": ids}  # fmt: skip


def read_inputs(url: str, item: Mapping[str, Any], store: Store | None = None) -> list[str]:
    """The input item ids of the item (whose JSON is at ``url``): from its lineage document, or from
    ``lpqlc:inputs`` for an item published before lineage documents."""
    link = next((k for k in item.get("links", []) if k.get("rel") == LINEAGE_REL), None)
    if link is None:
        return list(item["properties"].get("lpqlc:inputs", []))
    href = link["href"]
    target = href if "://" in href or href.startswith("/") else posixpath.normpath(posixpath.join(posixpath.dirname(url), href))
    if "://" in url and "://" not in target:
        scheme, rest = url.split("://", 1)
        target = f"{scheme}://" + posixpath.normpath(posixpath.join(posixpath.dirname(rest), href))
    return list(json.loads(read_bytes(target, store))["lpqlc:inputs"])


def _lineage_link(href: str) -> dict[str, Any]:
    return {"rel": LINEAGE_REL, "href": href, "type": "application/json", "title": "input item ids (lineage)"}


def _same_content(old: Mapping[str, Any], blobs: Mapping[str, bytes], inputs: Sequence[str]) -> bool:
    """Whether the published item has exactly these assets (by checksum) and these inputs (by digest;
    items published before digests compare their ``lpqlc:inputs`` list)."""
    sums = {k: a.get("file:checksum", "") for k, a in old["assets"].items()}
    props = old["properties"]
    if "lpqlc:inputs_digest" in props:
        same_inputs = props["lpqlc:inputs_digest"] == inputs_digest(inputs)
    else:
        same_inputs = props.get("lpqlc:inputs") == sorted(set(inputs))
    return same_inputs and sums == {k: multihash(b) for k, b in blobs.items()}


def _as_superseded(old: Mapping[str, Any], version: int) -> dict[str, Any]:
    """The old item as it is kept beside its assets: hrefs relative to ``v<N>/``, marked deprecated."""
    doc = json.loads(json.dumps(old))
    for asset in doc["assets"].values():
        href = asset["href"]
        prefix = f"./v{version}/"
        if href.startswith(prefix):
            asset["href"] = "./" + href[len(prefix) :]
    doc["properties"]["deprecated"] = True
    doc["links"] = [
        {"rel": "root", "href": "../../../catalog.json", "type": "application/json"},
        {"rel": "collection", "href": "../../collection.json", "type": "application/json"},
        {"rel": "latest-version", "href": f"../{doc['id']}.json", "type": "application/geo+json"},
    ]
    if any(link.get("rel") == LINEAGE_REL for link in old.get("links", [])):
        doc["links"].append(_lineage_link("./lineage.json"))
    return doc  # type: ignore[no-any-return]


def list_items(root: str, collection: str, store: Store | None = None) -> list[dict[str, Any]]:
    """Every committed item of a collection, sorted by id (superseded versions are not listed)."""
    out = []
    for url in list_files(f"{root.rstrip('/')}/{collection}", "*/*.json", store):
        name = posixpath.basename(url)
        if posixpath.basename(posixpath.dirname(url)) + ".json" != name:
            continue
        out.append(json.loads(read_bytes(url, store)))
    return sorted(out, key=lambda d: d["id"])


def write_collection(root: str, doc: dict[str, Any], items: list[dict[str, Any]], store: Store | None = None) -> str:
    """Write ``<root>/<collection>/collection.json`` linking ``items``; returns its URL."""
    cid = doc["id"]
    links = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    links += [{"rel": "item", "href": f"./{i['id']}/{i['id']}.json", "type": "application/geo+json"} for i in items]
    url = f"{root.rstrip('/')}/{cid}/collection.json"
    write_bytes(url, to_json({**doc, "links": links}), store)
    return url
