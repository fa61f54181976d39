"""Bounded items: an item records a digest and a count of its inputs and links a lineage document that
lists them, so its JSON stays under 20 kB with a 5-quarter window of 15,000 source items; a change of
one source among them is still detected (a new version; a changed quarter in the update plan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lpqlc.grid import OutputGrid
from lpqlc.publish.catalog import publish_item, read_inputs
from lpqlc.publish.cog import cog_bytes
from lpqlc.publish.collections import item_assets
from lpqlc.publish.items import Period, build_item, inputs_digest, item_id
from lpqlc.publish.products import source_digest
from lpqlc.quarter import Quarter
from tests.conftest import small_config

WINDOW = [Quarter(2021, 2) + i for i in range(5)]


def _sources(n: int, changed: int | None = None) -> dict[str, str]:
    """``n`` Sentinel-2-like source ids with their ``updated`` stamps; ``changed`` one reprocessed."""
    out = {}
    for i in range(n):
        iid = f"S2B_MSIL2A_2021{1 + i % 12:02d}{1 + i % 28:02d}T031529_N0500_R118_T49SBU_{i:08d}"
        out[iid] = "2023-05-01T00:00:00Z" if i != changed else "2025-01-09T12:00:00Z"
    return out


def _maker(ids: list[str]) -> tuple[str, dict[str, bytes], Any]:
    cfg = small_config("/nonexistent/catalog.json")  # only the grid and the class tables are used
    q = WINDOW[2]
    (index, gbox), *_ = OutputGrid.from_config(cfg).iter_tiles(q)
    tile = f"x{index[1]:03d}y{index[0]:03d}"
    data = (np.arange(gbox.shape[0] * gbox.shape[1]).reshape(gbox.shape) % 8 * 10 + 10).astype("uint8")
    blob = cog_bytes(data, gbox.affine, gbox.crs.to_wkt(), nodata=0, overview_resampling="mode", blocksize=64)
    cid = "lpqlc-landcover"
    model = {"checkpoint": "s3://models/ccts.pt", "checksum": "1220" + "ab" * 32}

    def make(version: int, assets: Any, created: Any, updated: Any) -> dict[str, Any]:
        return build_item(collection=cid, period=Period.of(q), tile=tile, gbox=gbox, assets=assets,
                          item_assets=item_assets(cfg, "landcover"), version=version, created=created, updated=updated,
                          lineage=f"Temporal mode over {WINDOW[0]}–{WINDOW[-1]} on composites of {len(ids)} source items",
                          inputs=ids, software={"lpqlc": "test", "gdal": "3.10"},
                          extra={"lpqlc:model": model, "lpqlc:window": [str(w) for w in WINDOW]})  # fmt: skip

    return item_id(cid, Period.of(q), tile), {"landcover": blob}, make


def test_an_item_with_a_window_of_15000_sources_stays_under_20_kb(tmp_path: Path) -> None:
    ids = sorted(_sources(15_000))
    iid, blobs, make = _maker(ids)
    out = publish_item(str(tmp_path), "lpqlc-landcover", iid, blobs, make, inputs=ids)
    size = Path(out.url).stat().st_size
    doc = json.loads(Path(out.url).read_text())
    assert size < 20_000, size
    assert doc["properties"]["lpqlc:inputs_count"] == 15_000
    assert doc["properties"]["lpqlc:inputs_digest"] == inputs_digest(ids)
    assert read_inputs(out.url, doc) == ids  # every id, from the lineage document beside the item
    lineage = next(link for link in doc["links"] if link["rel"] == "lineage")
    assert (Path(out.url).parent / lineage["href"]).exists() and lineage["href"] == "./v1/lineage.json"


def test_one_changed_source_among_15000_is_still_detected(tmp_path: Path) -> None:
    ids = sorted(_sources(15_000))
    iid, blobs, make = _maker(ids)
    root = str(tmp_path)
    assert publish_item(root, "lpqlc-landcover", iid, blobs, make, inputs=ids).status == "new"
    assert publish_item(root, "lpqlc-landcover", iid, blobs, make, inputs=ids).status == "unchanged"
    swapped = [*ids[:-1], ids[-1] + "_1"]  # one source replaced by its reprocessed successor
    out = publish_item(root, "lpqlc-landcover", iid, blobs, make, inputs=swapped)
    assert (out.status, out.version) == ("updated", 2)
    doc = json.loads(Path(out.url).read_text())
    assert read_inputs(out.url, doc) == sorted(swapped)
    old = json.loads((Path(out.url).parent / "v1" / f"{iid}.json").read_text())  # the kept predecessor
    assert read_inputs(str(Path(out.url).parent / "v1" / f"{iid}.json"), old) == ids
    # the update plan compares each quarter's source digest (ids and when each last changed):
    # a reprocessed source (same id, newer `updated`) among 15,000 changes it
    assert source_digest(_sources(15_000)) == source_digest(dict(reversed(_sources(15_000).items())))
    assert source_digest(_sources(15_000, changed=7_321)) != source_digest(_sources(15_000))


def test_a_published_catalog_is_searched_through_its_year_sub_catalogs(tmp_path: Path) -> None:
    from lpqlc.publish.refresh import refresh_catalog
    from lpqlc.publish.search import search_items

    cfg = small_config("/nonexistent/catalog.json", storage=str(tmp_path / "store"))
    ids = sorted(_sources(3))
    iid, blobs, make = _maker(ids)
    out = publish_item(cfg.publish_url, "lpqlc-landcover", iid, blobs, make, inputs=ids)
    index = refresh_catalog(cfg, ("landcover",), outcomes=[out])
    coll = json.loads(Path(index.collections["lpqlc-landcover"]).read_text())
    assert [link["href"] for link in coll["links"] if link["rel"] == "child"] == ["./2021/catalog.json"]
    catalog = f"{cfg.publish_url}/catalog.json"
    assert [i.id for i in search_items(catalog, collections=["lpqlc-landcover"], datetime="2021-10-01/2021-12-31")] == [iid]
    assert search_items(catalog, datetime="2022-01-01/2022-03-31") == []
