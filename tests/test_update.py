"""Incremental updates and fault tolerance, end to end on the sample archive against the local
SeaweedFS (S3) and STAC API servers: ``lpqlc update`` finds new or changed quarters from the published
catalog's own lineage and redoes only the affected window; a corrupt COG is reported and its quarter
still produced; kill -9 of the whole run, then a rerun, leaves complete outputs and no partial item."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from lpqlc.publish.catalog import asset_url, item_url, list_items, read_inputs, read_item
from lpqlc.publish.stacapi import ingest
from lpqlc.publish.validate import validate_stac
from lpqlc.sample.archive import SampleArchive
from lpqlc.stack import StackState
from lpqlc.storage import list_files, parse_storage_url, read_bytes, write_bytes
from tests.conftest import small_config
from tests.test_publish import SCIENCE, _model

pytestmark = pytest.mark.stack


def _lpqlc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpqlc.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture()
def s2_collection(stack: StackState, s3_archive: SampleArchive) -> Callable[..., tuple[str, Callable[[list[dict[str, Any]]], None]]]:
    """Make a fresh Sentinel-2 collection in the STAC API from the sample archive's items; returns its id
    and a function that upserts more items into it (imagery landing later)."""
    api = stack.stac_api
    base = requests.get(f"{api}/collections/sentinel-2-l2a", timeout=30).json()
    items = requests.get(f"{api}/collections/sentinel-2-l2a/items", params={"limit": 1000}, timeout=30).json()["features"]
    root = parse_storage_url(f"s3://{stack.bucket}/sample")

    def make(keep: Callable[[dict[str, Any]], bool] = lambda it: True,
             change: Callable[[dict[str, Any]], dict[str, Any]] = lambda it: it) -> tuple[str, Callable[[list[dict[str, Any]]], None]]:  # fmt: skip
        cid = f"s2-{uuid.uuid4().hex[:8]}"
        docs = [{**change(json.loads(json.dumps(it))), "collection": cid, "links": []} for it in items]
        coll = {**base, "id": cid, "links": []}
        ingest(api, {cid: coll}, {cid: [d for d in docs if keep(d)]}, root)

        def add(more: list[dict[str, Any]]) -> None:
            ingest(api, {cid: coll}, {cid: more}, root)

        return cid, add

    make.items = items  # type: ignore[attr-defined]
    return make


def _config(stack: StackState, tmp_path: Path, name: str, sentinel2: str) -> tuple[Path, Any]:
    cfg = small_config(stac_api=stack.stac_api, storage=f"s3://{stack.bucket}/{name}", endpoint_url=stack.s3_endpoint,
                       **SCIENCE)  # fmt: skip
    doc = json.loads(cfg.model_dump_json())
    doc["sources"]["collections"]["sentinel2"] = sentinel2
    doc["model"] = {"checkpoint": _model(tmp_path / "model.pt")}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    from lpqlc.config import load_config

    return config, load_config(config)


def _item(cfg: Any, cid: str, period: str, tile: str = "x000y000", version: int | None = None) -> dict[str, Any]:
    iid = f"{cid}-{period}-{tile}"
    url = item_url(cfg.publish_url, cid, iid)
    if version is not None:
        url = url.rsplit("/", 1)[0] + f"/v{version}/{iid}.json"
    doc = read_item(url, cfg.storage.endpoint_url)
    assert doc is not None, url
    return doc


def _raw(cfg: Any, cid: str) -> dict[str, bytes]:
    """Every committed item file of a collection, as bytes (to compare byte for byte)."""
    return {u: read_bytes(u, cfg.storage.endpoint_url) for u in list_files(f"{cfg.publish_url}/{cid}", "*/*.json", cfg.storage.endpoint_url)}


def test_update_processes_only_the_new_quarter_and_its_window(s2_collection: Any, stack: StackState, tmp_path: Path) -> None:
    # quarter N = 2021Q4 is published; 2022Q1's Sentinel-2 scenes have not landed in the STAC API yet
    cid, add = s2_collection(keep=lambda it: not it["properties"]["datetime"].startswith("2022"))
    config, cfg = _config(stack, tmp_path, f"update-{cid}", cid)
    first = _lpqlc("run", "--config", str(config))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "skipped: 2022Q1 (no source imagery)" in first.stdout and "lpqlc-landcover: 4 items (4 new" in first.stdout
    confidence_before = _raw(cfg, "lpqlc-landcover-confidence")
    lc_before = _item(cfg, "lpqlc-landcover", "2021Q4")

    # `lpqlc run` left the update record: the first update asks for what changed since, not a full search
    state = read_item(f"{cfg.publish_url}/_update.json", cfg.storage.endpoint_url)
    assert state is not None and state["quarters"] == {"2021Q4": "published", "2022Q1": "no imagery"}, state
    nothing = _lpqlc("update", "--config", str(config), "--dry-run")
    assert nothing.returncode == 0 and "nothing to do" in nothing.stdout and "unchanged: 1 quarter(s)" in nothing.stdout
    assert "full search" not in nothing.stdout and f"since {state['searched_at']}" in nothing.stdout, nothing.stdout

    # quarter N+1 lands in the source STAC API
    add([{**it, "collection": cid, "links": []} for it in s2_collection.items if it["properties"]["datetime"].startswith("2022")])
    plan = _lpqlc("update", "--config", str(config), "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "new: 1 quarter(s): 2022Q1" in plan.stdout and "refine + republish land cover: 2021Q4, 2022Q1" in plan.stdout
    assert read_item(item_url(cfg.publish_url, "lpqlc-landcover", "lpqlc-landcover-2022Q1-x000y000"),
                     cfg.storage.endpoint_url) is None  # a dry run writes nothing

    stamps = _stamps(cfg)
    # two updates at once (a CronJob overlapping a manual run): one runs, the other is refused by the lock
    cmd = [sys.executable, "-m", "lpqlc.cli", "update", "--config", str(config)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    ran = [i for i, p in enumerate(procs) if p.returncode == 0]
    assert len(ran) == 1, [o[1][-2000:] for o in outs]
    res = subprocess.CompletedProcess(cmd, 0, *outs[ran[0]])
    refused = " ".join(outs[1 - ran[0]])
    assert procs[1 - ran[0]].returncode != 0 and "another run holds the lock" in refused and "ago" in refused
    assert "composite + classify: 2022Q1" in res.stdout
    _check_catalog(cfg)  # valid and complete after the race

    # what the update wrote: the new quarter's items, the refined window's changed items, the year's
    # changed erosion items, and the partitions (year sub-catalog, stac-geoparquet, references) of those
    written = sorted(k for k, t in _stamps(cfg).items() if stamps.get(k) != t)
    assert [k for k in written if "/" not in k] == ["_update.json"]  # the root catalog was not rewritten; the lock is gone
    written = [k for k in written if "/" in k]
    changed_items = {k.split("/")[1] for k in written if k.split("/")[1].startswith("lpqlc-")}
    for iid in changed_items:
        c, period = iid.rsplit("-", 2)[0], iid.rsplit("-", 2)[1]
        assert period == "2022Q1" or (period == "2021Q4" and c != "lpqlc-landcover-confidence"), iid
    touched = {(k.split("/")[0], y) for k in written for y in ("2021", "2022") if f"/{y}/" in k or f"{y}-" in k.split("/")[-1]
               or f"year={y}" in k}  # fmt: skip
    assert ("lpqlc-landcover-confidence", "2021") not in touched  # no 2021 confidence item changed: its partitions untouched
    assert {("lpqlc-landcover", "2021"), ("lpqlc-landcover", "2022"), ("lpqlc-landcover-confidence", "2022")} <= touched
    others = [k for k in written if not k.split("/")[1].startswith("lpqlc-") and k.count("/") >= 1
              and not any(p in k for p in ("/2021/", "/2022/", "year=2021", "year=2022", "/datacube/2021-", "/datacube/2022-"))
              and k.split("/")[-1] not in ("collection.json", "datacube-10m.json")]  # fmt: skip
    assert others == [], others
    n_items = len(changed_items)
    assert len(written) <= 5 * n_items + 3 * 11, (len(written), n_items)  # per item: JSON, COGs, lineage; per collection: 11 documents
    for c in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):  # 2022Q1 is new everywhere
        assert _item(cfg, c, "2022Q1")["properties"]["version"] == "1"
    # 2021Q4's confidence depends on its own scenes only: byte-identical
    after = _raw(cfg, "lpqlc-landcover-confidence")
    assert all(after[k] == v for k, v in confidence_before.items())
    # 2021Q4's land cover was re-refined with 2022Q1 in its window: a new version, same created
    lc_after = _item(cfg, "lpqlc-landcover", "2021Q4")
    assert lc_after["properties"]["version"] == "2" and lc_after["properties"]["lpqlc:window"] == ["2021Q4", "2022Q1"]
    assert lc_after["properties"]["created"] == lc_before["properties"]["created"]
    assert lc_after["properties"]["updated"] >= lc_before["properties"]["updated"]
    lc_url = item_url(cfg.publish_url, "lpqlc-landcover", "lpqlc-landcover-2021Q4-x000y000")
    # (the v1 document links ./v1/lineage.json, relative to the item's folder where it was read)
    assert set(read_inputs(lc_url, lc_after, cfg.storage.endpoint_url)) > set(read_inputs(lc_url, lc_before, cfg.storage.endpoint_url))
    # 2021Q4's erosion changes where its land-cover pixels changed; elsewhere only where a land-cover gap
    # is now filled from the new 2022Q1 map (science.rusle.landcover_gapfill: quality 5, docs/erosion.md)
    for tile in ("x000y000", "x001y000", "x000y001", "x001y001"):
        old = _item(cfg, "lpqlc-landcover", "2021Q4", tile, version=1)["assets"]["landcover"]["file:checksum"]
        new = _item(cfg, "lpqlc-landcover", "2021Q4", tile)["assets"]["landcover"]["file:checksum"]
        ero = _item(cfg, "lpqlc-erosion", "2021Q4", tile)
        if old != new:
            assert ero["properties"]["version"] == "2", tile
        elif ero["properties"]["version"] != "1":
            ero_v1 = _item(cfg, "lpqlc-erosion", "2021Q4", tile, version=1)
            a_old, a_new = _cog(cfg, ero_v1, "erosion", version=1), _cog(cfg, ero, "erosion")
            differ = ~((a_old == a_new) | (np.isnan(a_old) & np.isnan(a_new)))
            assert differ.any() and (_cog(cfg, ero, "quality")[differ] == 5).all(), tile
    again = _lpqlc("update", "--config", str(config), "--dry-run")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def _cog(cfg: Any, item: dict[str, Any], key: str, version: int | None = None) -> Any:
    """Band 1 of asset ``key`` of a published ``item`` (of its superseded ``version``, whose document
    sits in the ``v<N>`` folder its hrefs are relative to), as a numpy array."""
    from rasterio.io import MemoryFile

    url = asset_url(cfg.publish_url, item, key)
    if version is not None and "://" not in item["assets"][key]["href"]:
        folder = item_url(cfg.publish_url, item["collection"], item["id"]).rsplit("/", 1)[0]
        url = f"{folder}/v{version}/{item['assets'][key]['href'].removeprefix('./')}"
    with MemoryFile(read_bytes(url, cfg.store)) as mem, mem.open() as src:
        return src.read(1)


def _stamps(cfg: Any) -> dict[str, Any]:
    """Every object under the publish root (key relative to it) → its LastModified (S3 second resolution)."""
    from lpqlc.storage import open_filesystem

    fs = open_filesystem(cfg.publish_url, cfg.storage.endpoint_url)
    fs.invalidate_cache()
    base = cfg.publish_url.removeprefix("s3://").rstrip("/")
    return {k[len(base) + 1 :]: v["LastModified"] for k, v in fs.find(base, detail=True).items()}


def _check_catalog(cfg: Any) -> None:
    """Every collection, year sub-catalog and item validates; the year sub-catalogs list every item once."""
    ep = cfg.storage.endpoint_url
    root = cfg.publish_url.rstrip("/")
    cat = json.loads(read_bytes(f"{root}/catalog.json", ep))
    validate_stac(cat)
    for link in (lk for lk in cat["links"] if lk["rel"] == "child"):
        c = link["href"].split("/")[1]
        coll = json.loads(read_bytes(f"{root}/{c}/collection.json", ep))
        validate_stac(coll)
        linked: list[str] = []
        for child in (lk for lk in coll["links"] if lk["rel"] == "child"):
            sub = json.loads(read_bytes(f"{root}/{c}/{child['href'].removeprefix('./')}", ep))
            validate_stac(sub)
            linked += [lk["href"].split("/")[1] for lk in sub["links"] if lk["rel"] == "item"]
        items = list_items(root, c, ep)
        assert sorted(linked) == [i["id"] for i in items], c
        for it in items:
            validate_stac(it)


def _mtime(url: str, endpoint: str) -> Any:
    from lpqlc.storage import open_filesystem

    fs = open_filesystem(url, endpoint)
    fs.invalidate_cache()
    return fs.info(url.removeprefix("s3://"))["LastModified"]


def test_kill_9_mid_publish_then_rerun_completes_with_no_partial_item(s2_collection: Any, stack: StackState, tmp_path: Path) -> None:
    cid, _ = s2_collection()
    config, cfg = _config(stack, tmp_path, f"kill-{cid}", cid)
    ep = cfg.storage.endpoint_url
    stac = cfg.publish_url
    proc = subprocess.Popen([sys.executable, "-m", "lpqlc.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:  # kill the whole run (client, scheduler, workers) as soon as the first items are committed
        while proc.poll() is None and len(list_files(stac, "lpqlc-landcover*/*/*.json", ep)) < 3:
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    visible = list_files(stac, "*/*/*.json", ep)
    assert visible
    for url in visible:  # whatever is visible is whole: every committed item parses and validates, its assets exist
        item = json.loads(read_bytes(url, ep))
        validate_stac(item)
        folder = url.rsplit("/", 1)[0]
        assert all(list_files(folder, a["href"].removeprefix("./"), ep) for a in item["assets"].values())
    store = cfg.storage.url
    done = {m.rsplit("/", 1)[0] + "/red.tif": None for m in list_files(store, "composites/*/*/_unit.json", ep)}
    done |= {m.rsplit("/", 1)[0] + "/class.tif": None for m in list_files(store, "classify/*/*/*/_unit.json", ep)}
    done |= {m.rsplit("/", 1)[0] + "/erosion.tif": None for m in list_files(store, "erosion/*/*/_unit.json", ep)}
    assert done  # some units had finished before the kill
    done = {u: _mtime(u, ep) for u in done}
    res = _lpqlc("run", "--config", str(config))
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(_mtime(u, ep) == t for u, t in done.items())  # finished units were not redone
    for c in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        assert f"{c}: 8 items" in res.stdout and len(list_items(stac, c, ep)) == 8
    assert "failures: 0" in res.stdout


def test_a_corrupt_cog_is_reported_and_the_quarter_still_produced(s2_collection: Any, stack: StackState, tmp_path: Path) -> None:
    from lpqlc.config import load_config
    from lpqlc.pipeline import run_pipeline

    victim = sorted(i["id"] for i in s2_collection.items if i["properties"]["datetime"].startswith("2021"))[0]
    bad_href = f"s3://{stack.bucket}/corrupt-{uuid.uuid4().hex[:8]}/red.tif"

    def corrupt(item: dict[str, Any]) -> dict[str, Any]:
        if item["id"] == victim:
            blob = read_bytes(item["assets"]["red"]["href"], stack.s3_endpoint)
            write_bytes(bad_href, blob[:300] + b"\0" * 2000, stack.s3_endpoint)  # a truncated, corrupt COG
            item["assets"]["red"]["href"] = bad_href
        return item

    cid, _ = s2_collection(change=corrupt)
    config, _ = _config(stack, tmp_path, f"corrupt-{cid}", cid)
    cfg = load_config(config)
    summary = run_pipeline(cfg)
    assert not summary.failures and [str(q) for q in summary.quarters] == ["2021Q4", "2022Q1"]
    assert len(summary.warnings) == 1 and victim in summary.warnings[0] and "'red'" in summary.warnings[0]
    assert any(victim in line for line in summary.lines())
    for c in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        got = _item(cfg, c, "2021Q4")["properties"]
        assert set(got["lpqlc:unreadable_inputs"]) == {victim}, c
        assert got["lpqlc:flags"] == ["unreadable-inputs"] and "unreadable" in got["processing:lineage"]
        url = item_url(cfg.publish_url, c, f"{c}-2021Q4-x000y000")
        assert victim not in read_inputs(url, _item(cfg, c, "2021Q4"), cfg.storage.endpoint_url)
    assert "lpqlc:unreadable_inputs" not in _item(cfg, "lpqlc-landcover-confidence", "2022Q1")["properties"]
    comp = json.loads(read_bytes(f"{cfg.storage.url}/composites/2021Q4/composite.json", cfg.storage.endpoint_url))
    assert victim in comp["unreadable"] and victim not in comp["items"]
    assert any(d["id"] == victim and "unreadable" in d["reason"] for d in comp["search"]["dropped"])


def test_the_plan_searches_only_quarters_with_changed_items_and_its_look_back(s2_collection: Any, stack: StackState,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    from datetime import UTC, datetime, timedelta

    from lpqlc.publish.catalog import to_json
    from lpqlc.quarter import Quarter
    from lpqlc.update import changed_since, plan_update, state_url

    cid, add = s2_collection()
    _, cfg = _config(stack, tmp_path, f"plan-{cid}", cid)
    cfg = cfg.model_copy(update={"publish": cfg.publish.model_copy(update={"lookback_quarters": 1})})
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_bytes(state_url(cfg), to_json({"searched_at": since, "quarters": {"2021Q4": "published", "2022Q1": "published"}}),
                cfg.storage.endpoint_url)  # fmt: skip
    quiet = plan_update(cfg)
    assert quiet.searched == [Quarter(2022, 1)] and "since" in quiet.how  # the look-back only: nothing changed
    assert [s.status for s in quiet.states if s.quarter == Quarter(2021, 4)] == ["not searched"]
    # a 2021Q4 scene is reprocessed: pgstac's CQL2 filter on `updated` finds it; the plan searches 2021Q4 again
    old = next(i for i in s2_collection.items if i["properties"]["datetime"].startswith("2021"))
    later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    add([{**old, "collection": cid, "links": [], "properties": {**old["properties"], "updated": later}}])
    assert changed_since(cfg, since, [Quarter(2021, 4), Quarter(2022, 1)]) == {Quarter(2021, 4)}
    assert plan_update(cfg).searched == [Quarter(2021, 4), Quarter(2022, 1)]
    assert plan_update(cfg, rescan=True).how == "rescan"
