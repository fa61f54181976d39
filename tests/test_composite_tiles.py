"""Per-tile sources: a tile's graph holds only the items over it, an unreadable asset re-keys only the
tiles it touches, a GeoJSON AOI searches by geometry, and an empty search says so."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pystac
import pytest
from odc.geo import geom

from lpqlc.composite.build import build_composite
from lpqlc.composite.run import run_composite
from lpqlc.composite.tiles import ItemIndex, tile_sources
from lpqlc.config import config_from_dict
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive
from lpqlc.sources.search import search_quarter

from .conftest import small_config

S2_Q = Quarter(2022, 1)


def _strip(item: pystac.Item, west: float, east: float) -> None:
    """Give ``item`` a footprint that is the [west, east] share (0–1) of its own, by longitude."""
    x0, y0, x1, y1 = item.bbox
    w, e = x0 + west * (x1 - x0), x0 + east * (x1 - x0)
    shape = geom.box(w, y0, e, y1, crs="EPSG:4326")
    item.geometry, item.bbox = shape.json, [w, y0, e, y1]


def _rewrite(archive: SampleArchive, dest: Path, change: Any) -> str:
    """A copy of the archive's catalog (assets still point at the archive) with ``change(item)`` applied."""
    cat = pystac.Catalog.from_file(archive.catalog)
    cat.make_all_asset_hrefs_absolute()
    for item in cat.get_items(recursive=True):
        change(item)
    cat.normalize_hrefs(str(dest))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return str(dest / "catalog.json")


def _quarter_ids(archive: SampleArchive) -> list[str]:
    cfg = small_config(archive.catalog)
    return [it.id for it in search_quarter(cfg, S2_Q).items]


def _split(ids: list[str], broken: str | None = None) -> Any:
    """Odd items of the quarter cover only the western fifth of the world; ``broken`` loses its red band."""

    def change(item: pystac.Item) -> None:
        if item.id in ids and ids.index(item.id) % 2 == 1:
            _strip(item, 0.0, 0.2)
        if item.id == broken:
            item.assets["red"].href = item.assets["red"].get_absolute_href().replace("red.tif", "gone-red.tif")

    return change


def _uris(graph: Any) -> set[str]:
    return set(re.findall(r"RasterSource\(uri='([^']+)'", " ".join(repr(v) for v in dict(graph).values())))


def test_items_outside_a_tile_never_enter_its_graph(small_archive: SampleArchive, tmp_path: Path) -> None:
    ids = _quarter_ids(small_archive)
    # odc-stac's graph names each read's RasterSource uri: the loader whose graph is inspected here
    cfg = small_config(_rewrite(small_archive, tmp_path / "cat", _split(ids)), composite={"loader": "odc-stac"})
    res = search_quarter(cfg, S2_Q)
    grid = OutputGrid.from_config(cfg)
    tiles = list(grid.iter_tiles(S2_Q))
    index = ItemIndex(res.items, grid.crs)
    left_out = 0
    for ts in tile_sources(index, tiles):
        extent = ts.gbox.extent.to_crs("EPSG:4326")
        over = {it.id for it in res.items if geom.Geometry(it.geometry, crs="EPSG:4326").intersects(extent)}
        assert {it.id for it in ts.items} == over
        comp = build_composite(list(ts.items), res.rule, cfg.science.composite, ts.gbox, cfg.grid.chunk_size)
        read = {Path(u).parent.name for u in _uris(comp.red.data.__dask_graph__())}
        assert read == over  # every item over the tile is read, no other
        left_out += len(res.items) - len(over)
    assert left_out > 0  # some tile really was spared some item


def test_unreadable_asset_rekeys_only_the_tiles_it_intersects(small_archive: SampleArchive, tmp_path: Path) -> None:
    ids = _quarter_ids(small_archive)
    victim = ids[1]  # odd: covers the western fifth only
    keys = {}
    for name, broken in (("good", None), ("bad", victim)):
        cfg = small_config(_rewrite(small_archive, tmp_path / name, _split(ids, broken)))
        run = run_composite(cfg, S2_Q, str(tmp_path / f"out-{name}"))
        folder = Path(run.prefix)
        keys[name] = {t: json.loads((folder / t / "_unit.json").read_text())["key"] for t in run.tiles}
        summary = json.loads((folder / "composite.json").read_text())
    assert victim in summary["unreadable"] and victim not in summary["items"]
    strip = geom.Geometry(pystac.Item.from_file(
        str(tmp_path / "bad" / "sentinel-2-l2a" / victim / f"{victim}.json")).geometry, crs="EPSG:4326")  # fmt: skip
    grid_crs = OutputGrid.from_config(cfg).crs
    touched = {t for t, b in summary["tiles"].items() if geom.box(*b, crs=grid_crs).intersects(strip.to_crs(grid_crs))}
    changed = {t for t in keys["good"] if keys["good"][t] != keys["bad"][t]}
    assert changed == touched and 0 < len(touched) < len(keys["good"])


def test_empty_search_warns_naming_quarter_collection_and_aoi(small_archive: SampleArchive, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    cfg = small_config(small_archive.catalog)
    empty = Quarter(2023, 3)
    with caplog.at_level(logging.WARNING, logger="lpqlc.composite.run"):
        run = run_composite(cfg, empty, str(tmp_path / "out"))
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "2023Q3" in text and "sentinel-2-l2a" in text and "found no usable item" in text and cfg.aoi.name in text
    assert run.report.found == 0


# ------------------------------------------------------------------------------ GeoJSON AOI, real STAC API
def _box_items(collection: str, quarter: Quarter, west: float, south: float, n: int, step: float) -> list[dict[str, Any]]:
    """n×n metadata-only items on a lon/lat lattice of ``step``-degree boxes, Earth Search shaped."""
    out = []
    for i in range(n):
        for j in range(n):
            x0, y0 = west + i * step, south + j * step
            shape = geom.box(x0, y0, x0 + step, y0 + step, crs="EPSG:4326")
            out.append({
                "type": "Feature", "stac_version": "1.0.0", "id": f"box-{i}-{j}", "collection": collection,
                "geometry": shape.json, "bbox": [x0, y0, x0 + step, y0 + step],
                "properties": {"datetime": f"{quarter.start.date()}T03:00:00Z", "platform": "sentinel-2a",
                               "eo:cloud_cover": 5.0, "s2:mgrs_tile": f"49S{i:02d}{j:02d}"},
                "assets": {a: {"href": f"s3://nowhere/box-{i}-{j}/{a}.tif", "type": "image/tiff"}
                           for a in ("blue", "green", "red", "nir", "swir16", "scl")},
                "links": [],
            })  # fmt: skip
    return out


@pytest.mark.stack
def test_geojson_aoi_searches_the_stac_api_by_geometry(stack: Any, tmp_path: Path) -> None:
    from lpqlc.publish.stacapi import ingest
    from lpqlc.storage import parse_storage_url

    cid = "geojson-aoi-boxes"
    items = _box_items(cid, S2_Q, 108.0, 35.0, 6, 0.1)
    coll = {"type": "Collection", "stac_version": "1.0.0", "id": cid, "description": "boxes", "license": "CC0-1.0",
            "extent": {"spatial": {"bbox": [[108.0, 35.0, 108.6, 35.6]]},
                       "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]}}}  # fmt: skip
    ingest(stack.stac_api, {cid: coll}, {cid: items}, parse_storage_url(str(tmp_path)))
    # a thin diagonal triangle: its bbox covers all 36 boxes, its shape far fewer
    tri = {"type": "Polygon", "coordinates": [[[108.01, 35.01], [108.59, 35.55], [108.55, 35.59], [108.01, 35.01]]]}
    (tmp_path / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": tri}]}))  # fmt: skip
    cfg = config_from_dict({
        "name": "tri", "aoi": {"name": "triangle", "geojson": str(tmp_path / "aoi.geojson")},
        "sources": {"stac_api": stack.stac_api, "collections": {"sentinel2": cid}, "max_cloud_cover": 100},
        "storage": {"url": str(tmp_path / "out")},
    })  # fmt: skip
    got = {it.id for it in search_quarter(cfg, S2_Q).items}
    shape = geom.Geometry(tri, crs="EPSG:4326")
    expect = {d["id"] for d in items if geom.Geometry(d["geometry"], crs="EPSG:4326").intersects(shape)}
    assert got == expect and 0 < len(expect) < len(items) // 2
