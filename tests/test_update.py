"""``lpqlc update``: quarters found new or changed from the published catalog's own lineage, only the
affected window redone, untouched items byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lpqlc.sample.archive import SampleArchive
from tests.conftest import small_config
from tests.test_publish import SCIENCE, _model


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parent.parent.parent == root}  # fmt: skip


def _item(root: Path, cid: str, period: str, tile: str = "x000y000") -> dict:
    iid = f"{cid}-{period}-{tile}"
    return json.loads((root / cid / iid / f"{iid}.json").read_text())


def _withhold(catalog: Path, collection: str, prefix: str) -> list[dict]:
    """Drop the item links of ``collection`` whose item id holds ``prefix`` (imagery not landed yet)."""
    f = catalog.parent / collection / "collection.json"
    doc = json.loads(f.read_text())
    kept = [link for link in doc["links"] if link["rel"] != "item" or prefix not in link["href"]]
    removed = [link for link in doc["links"] if link not in kept]
    f.write_text(json.dumps({**doc, "links": kept}))
    return removed


def _lpqlc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpqlc.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture()
def source(small_archive: SampleArchive, tmp_path: Path) -> Path:
    """A copy of the SMALL archive whose catalog can gain items."""
    root = Path(small_archive.catalog).parent
    copy = tmp_path / "archive"
    shutil.copytree(root, copy)
    return copy / "catalog.json"


def test_update_processes_only_the_new_quarter_and_its_window(source: Path, tmp_path: Path) -> None:
    # quarter N = 2021Q4 published; 2022Q1's Sentinel-2 scenes have not landed yet
    links = _withhold(source, "sentinel-2-l2a", "_2022")
    cfg = small_config(str(source), storage=str(tmp_path / "store"), **SCIENCE)
    doc = json.loads(cfg.model_dump_json())
    doc["model"] = {"checkpoint": _model(tmp_path / "model.pt")}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    first = _lpqlc("run", "--config", str(config))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "skipped: 2022Q1 (no source imagery)" in first.stdout and "lpqlc-landcover: 4 items (4 new" in first.stdout
    stac = tmp_path / "store" / "stac"
    before = {cid: _digests(stac / cid) for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion")}
    lc_before = _item(stac, "lpqlc-landcover", "2021Q4")

    nothing = _lpqlc("update", "--config", str(config), "--dry-run")
    assert nothing.returncode == 0 and "nothing to do" in nothing.stdout and "unchanged: 1 quarter(s)" in nothing.stdout

    # quarter N+1 lands in the source catalog
    f = source.parent / "sentinel-2-l2a" / "collection.json"
    coll = json.loads(f.read_text())
    f.write_text(json.dumps({**coll, "links": coll["links"] + links}))
    plan = _lpqlc("update", "--config", str(config), "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "new: 1 quarter(s): 2022Q1" in plan.stdout and "refine + republish land cover: 2021Q4, 2022Q1" in plan.stdout
    assert not (stac / "lpqlc-landcover" / "lpqlc-landcover-2022Q1-x000y000").exists()  # a dry run writes nothing

    res = _lpqlc("update", "--config", str(config))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "composite + classify: 2022Q1" in res.stdout
    # 2022Q1 is new everywhere
    for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        assert _item(stac, cid, "2022Q1")["properties"]["version"] == "1"
    # 2021Q4's confidence depends on its own scenes only: byte-identical
    after = _digests(stac / "lpqlc-landcover-confidence")
    assert all(after[k] == v for k, v in before["lpqlc-landcover-confidence"].items())
    # 2021Q4's land cover was re-refined with 2022Q1 in its window: a new version, same created
    lc_after = _item(stac, "lpqlc-landcover", "2021Q4")
    assert lc_after["properties"]["version"] == "2" and lc_after["properties"]["lpqlc:window"] == ["2021Q4", "2022Q1"]
    assert lc_after["properties"]["created"] == lc_before["properties"]["created"]
    assert lc_after["properties"]["updated"] >= lc_before["properties"]["updated"]
    assert set(lc_after["properties"]["lpqlc:inputs"]) > set(lc_before["properties"]["lpqlc:inputs"])
    # 2021Q4's erosion changes exactly where its land-cover pixels changed
    for tile in ("x000y000", "x001y000", "x000y001", "x001y001"):
        lc_same = (_item(stac, "lpqlc-landcover", "2021Q4", tile)["assets"]["landcover"]["file:checksum"]
                   == json.loads((stac / "lpqlc-landcover" / f"lpqlc-landcover-2021Q4-{tile}" / "v1"
                                  / f"lpqlc-landcover-2021Q4-{tile}.json").read_text())["assets"]["landcover"]["file:checksum"])  # fmt: skip
        ero = _item(stac, "lpqlc-erosion", "2021Q4", tile)
        assert (ero["properties"]["version"] == "1") == lc_same, tile
    again = _lpqlc("update", "--config", str(config), "--dry-run")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_kill_9_mid_publish_then_rerun_completes_with_no_partial_item(small_archive: SampleArchive, tmp_path: Path) -> None:
    import os
    import signal
    import time

    from lpqlc.publish.validate import validate_stac

    cfg = small_config(small_archive.catalog, storage=str(tmp_path / "store"), **SCIENCE)
    doc = json.loads(cfg.model_dump_json())
    doc["model"] = {"checkpoint": _model(tmp_path / "model.pt")}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    stac = tmp_path / "store" / "stac"
    proc = subprocess.Popen([sys.executable, "-m", "lpqlc.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:  # kill the whole run (client, scheduler, workers) as soon as the first items are committed
        while proc.poll() is None and len(list(stac.glob("lpqlc-landcover*/*/*.json"))) < 3:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    for f in stac.glob("*/*/*.json"):  # whatever is visible is whole: every committed item parses, validates
        item = json.loads(f.read_text())
        validate_stac(item)
        assert all((f.parent / a["href"]).exists() for a in item["assets"].values())
    store = tmp_path / "store"
    done = {p.parent: p.parent.joinpath("red.tif").stat().st_mtime_ns for p in store.glob("composites/*/*/_unit.json")}
    done |= {p.parent: p.parent.joinpath("class.tif").stat().st_mtime_ns for p in store.glob("classify/raw/*/*/_unit.json")}
    assert done  # some units had finished before the kill
    res = _lpqlc("run", "--config", str(config))
    assert res.returncode == 0, res.stderr[-3000:]
    for folder, mtime in done.items():  # finished units were not redone
        assert folder.joinpath("red.tif" if "composites" in folder.parts else "class.tif").stat().st_mtime_ns == mtime
    for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        assert f"{cid}: 8 items" in res.stdout
        assert len(list((stac / cid).glob("*/*.json"))) == 8
    assert "failures: 0" in res.stdout


def test_a_corrupt_cog_is_reported_and_the_quarter_still_produced(source: Path, tmp_path: Path) -> None:
    from lpqlc.pipeline import run_pipeline

    item_file = sorted((source.parent / "sentinel-2-l2a").glob("S2A_*_2021*/*.json"))[0]
    item = json.loads(item_file.read_text())
    red = (item_file.parent / item["assets"]["red"]["href"]).resolve()
    red.write_bytes(red.read_bytes()[:300] + b"\0" * 2000)  # a truncated, corrupt COG
    cfg = small_config(str(source), storage=str(tmp_path / "store"), **SCIENCE)
    summary = run_pipeline(cfg, model=_model(tmp_path / "model.pt"))
    assert not summary.failures and [str(q) for q in summary.quarters] == ["2021Q4", "2022Q1"]
    assert len(summary.warnings) == 1 and item["id"] in summary.warnings[0] and "'red'" in summary.warnings[0]
    assert any(item["id"] in line for line in summary.lines())
    stac = Path(cfg.publish_url)
    for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        got = _item(stac, cid, "2021Q4")
        assert set(got["properties"]["lpqlc:unreadable_inputs"]) == {item["id"]}, cid
        assert got["properties"]["lpqlc:flags"] == ["unreadable-inputs"] and "unreadable" in got["properties"]["processing:lineage"]
        assert item["id"] not in got["properties"]["lpqlc:inputs"]
    assert "lpqlc:unreadable_inputs" not in _item(stac, "lpqlc-landcover-confidence", "2022Q1")["properties"]
    comp = json.loads((tmp_path / "store" / "composites" / "2021Q4" / "composite.json").read_text())
    assert item["id"] in comp["unreadable"] and item["id"] not in comp["items"]
    assert any(d["id"] == item["id"] and "unreadable" in d["reason"] for d in comp["search"]["dropped"])
