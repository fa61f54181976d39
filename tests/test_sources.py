"""Searching a quarter: static catalog and STAC API alike, paging, retries, duplicates, the report."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests

from lpqlc.errors import ConfigError, SourceError
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive
from lpqlc.sources.modifiers import resolve_href_modifier
from lpqlc.sources.search import acquisition_key, deduplicate, search_quarter
from lpqlc.stack import StackState

from .conftest import small_config

Q4 = Quarter(2021, 4)


def sign_for_test(item: pystac.Item) -> pystac.Item:
    """An href modifier in the pystac-client contract: edits the item in place."""
    for asset in item.assets.values():
        asset.href = asset.href + "?sig=test"
    return item


def test_static_search_keeps_newest_processing_and_reports_the_rest(small_archive: SampleArchive) -> None:
    res = search_quarter(small_config(small_archive.catalog), Q4)
    ids = [it.id for it in res.items]
    reprocessed = [i for i in small_archive.items["sentinel-2-l2a"] if i.endswith("_1_L2A") and "2021" in i]
    assert reprocessed, "the SMALL archive serves some acquisitions twice"
    for newer in reprocessed:
        older = newer.replace("_1_L2A", "_0_L2A")
        assert newer in ids and older not in ids
        assert any(d.item_id == older and newer in d.reason for d in res.report.dropped)
    assert len({acquisition_key(it) for it in res.items}) == len(res.items)
    assert res.report.found == len(ids) + len(reprocessed)
    assert sum(res.report.kept.values()) == len(ids) and set(res.report.kept) == {"sentinel-2a", "sentinel-2b"}
    assert any("superseded" in line for line in res.report.lines())
    assert [it.datetime for it in res.items] == sorted(it.datetime for it in res.items)  # type: ignore[type-var]


def test_dedup_prefers_newer_baseline_then_generation_time(small_archive: SampleArchive) -> None:
    path = Path(small_archive.root) / "sentinel-2-l2a" / "S2A_49SFU_20211024_0_L2A" / "S2A_49SFU_20211024_0_L2A.json"
    base = json.loads(path.read_text())
    later = json.loads(json.dumps(base))
    later["id"], later["properties"]["s2:generation_time"] = "later", "2030-01-01T00:00:00Z"
    newer = json.loads(json.dumps(base))
    newer["id"], newer["properties"]["s2:processing_baseline"] = "newer", "05.10"
    items = [pystac.Item.from_dict(d) for d in (newer, base, later)]
    kept, dropped = deduplicate(items)
    assert [k.id for k in kept] == ["newer"] and {d.item_id for d in dropped} == {base["id"], "later"}


def test_items_missing_an_asset_are_dropped_with_the_asset_named(small_archive: SampleArchive, tmp_path: Path) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(small_archive.root, copy, ignore=shutil.ignore_patterns("*.tif"))
    victim = "LC08_L2SP_127035_20211109_02_T1"
    path = copy / "landsat-c2-l2" / victim / f"{victim}.json"
    doc = json.loads(path.read_text())
    del doc["assets"]["swir16"]
    path.write_text(json.dumps(doc))
    cfg = small_config(str(copy / "catalog.json"), landsat_only=True)
    res = search_quarter(cfg, Q4)
    assert victim not in [it.id for it in res.items]
    assert [d.reason for d in res.report.dropped if d.item_id == victim] == ["missing assets: swir16"]


def test_href_modifier_only_when_configured(small_archive: SampleArchive) -> None:
    plain = search_quarter(small_config(small_archive.catalog), Q4)
    assert not any("?sig=" in a.href for it in plain.items for a in it.assets.values())
    cfg = small_config(small_archive.catalog)
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"href_modifier": "tests.test_sources:sign_for_test"})})
    signed = search_quarter(cfg, Q4)
    assert signed.items and all(a.href.endswith("?sig=test") for it in signed.items for a in it.assets.values())
    assert resolve_href_modifier(None) is None
    with pytest.raises(ConfigError, match="href_modifier 'nope' is neither"):
        resolve_href_modifier("nope")
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_href_modifier("lpqlc.nothing:here")
    try:
        import planetary_computer  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install planetary-computer"):
            resolve_href_modifier("planetary-computer")
    else:
        assert callable(resolve_href_modifier("planetary-computer"))


# ------------------------------------------------------------------------------------ STAC API
class _FaultyProxy:
    """A real HTTP proxy in front of the STAC API that answers 503 to the first ``fail`` requests
    (and to all of them if ``fail`` < 0), and counts the search requests it forwards."""

    def __init__(self, target: str, fail: int) -> None:
        self.target, self.fail, self.seen, self.searches = target.rstrip("/"), fail, 0, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                proxy.seen += 1
                if proxy.fail < 0 or proxy.seen <= proxy.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path.startswith("/search"):
                    proxy.searches += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length",)}
                r = requests.request(self.command, proxy.target + self.path, data=body, headers=headers, timeout=30)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty(stack: StackState) -> Iterator[Any]:
    made: list[_FaultyProxy] = []

    def make(fail: int) -> _FaultyProxy:
        made.append(_FaultyProxy(stack.stac_api, fail))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.mark.stack
def test_api_search_pages_retries_and_matches_static(
    s3_archive: SampleArchive, small_archive: SampleArchive, faulty: Any
) -> None:
    static = search_quarter(small_config(small_archive.catalog), Q4)
    proxy = faulty(fail=2)
    cfg = small_config(stac_api=proxy.url)
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"page_limit": 2, "max_retries": 4})})
    api = search_quarter(cfg, Q4)
    assert [it.id for it in api.items] == [it.id for it in static.items]
    assert sorted(d.item_id for d in api.report.dropped) == sorted(d.item_id for d in static.report.dropped)
    assert api.report.found == static.report.found
    # two 503s were retried, and the results came in pages of 2
    assert proxy.seen > proxy.searches >= -(-api.report.found // 2)
    assert all(a.href.startswith("s3://") for it in api.items for a in it.assets.values())


@pytest.mark.stack
def test_api_search_gives_up_with_a_clear_error(s3_archive: SampleArchive, faulty: Any) -> None:
    proxy = faulty(fail=-1)
    cfg = small_config(stac_api=proxy.url)
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"max_retries": 1})})
    with pytest.raises(SourceError, match=f"STAC API {proxy.url}"):
        search_quarter(cfg, Q4)
