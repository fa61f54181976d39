"""Writing collections and items into a STAC API through its Transactions extensions.

Collections are created (or replaced when they exist); items are upserted in batches through the
bulk-items endpoint (``POST /collections/{id}/bulk_items`` with ``method: upsert``), so reruns are
idempotent. Relative asset hrefs are made absolute against the storage root first.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from lpqlc.errors import SourceError
from lpqlc.storage import StorageURL

__all__ = ["api_session", "ingest", "absolute_item"]


def api_session(retries: int = 5, backoff: float = 0.5) -> requests.Session:
    """A session that retries connection errors, timeouts and 5xx with exponential backoff."""
    s = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST", "PUT", "DELETE"}),
        raise_on_status=False,
    )
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    return s


def absolute_item(item: Mapping[str, Any], root: StorageURL) -> dict[str, Any]:
    """A copy of a static-catalog item with absolute asset hrefs and no catalog links."""
    out = copy.deepcopy(dict(item))
    base = posixpath.join(out["collection"], out["id"])
    for asset in out["assets"].values():
        href = asset["href"]
        if "://" not in href and not href.startswith("/"):
            asset["href"] = root.join(posixpath.normpath(posixpath.join(base, href)))
    # catalog links mean nothing in an API; the lineage document (input ids) stays reachable
    out["links"] = [{**link, "href": root.join(posixpath.normpath(posixpath.join(base, link["href"])))}
                    for link in item.get("links", []) if link.get("rel") == "lineage"]  # fmt: skip
    return out


def _check(resp: requests.Response, what: str) -> None:
    if not resp.ok:
        body = resp.text[:500].replace("\n", " ")
        raise SourceError(f"STAC API refused {what}: HTTP {resp.status_code} at {resp.url}: {body}")


def ingest(
    api_url: str,
    collections: Mapping[str, Mapping[str, Any]],
    items: Mapping[str, Sequence[Mapping[str, Any]]],
    root: StorageURL,
    *,
    batch: int = 200,
    timeout: float = 60.0,
) -> dict[str, int]:
    """Upsert collections and their items into the STAC API at ``api_url``; returns items per collection."""
    base = api_url.rstrip("/")
    session = api_session()
    try:
        landing = session.get(base + "/", timeout=timeout)
    except requests.RequestException as exc:
        raise SourceError(f"cannot reach the STAC API at {api_url}: {exc}") from None
    _check(landing, "the landing page request")
    counts: dict[str, int] = {}
    for cid, coll in collections.items():
        doc = {**coll, "links": []}
        resp = session.post(f"{base}/collections", json=doc, timeout=timeout)
        if resp.status_code == 409:
            resp = session.put(f"{base}/collections/{cid}", json=doc, timeout=timeout)
        _check(resp, f"collection {cid}")
        docs = [absolute_item(it, root) for it in items.get(cid, [])]
        for i in range(0, len(docs), batch):
            chunk = {d["id"]: d for d in docs[i : i + batch]}
            resp = session.post(
                f"{base}/collections/{cid}/bulk_items",
                json={"items": chunk, "method": "upsert"},
                timeout=timeout,
            )
            _check(resp, f"items {next(iter(chunk))}… of collection {cid}")
        counts[cid] = len(docs)
    return counts
