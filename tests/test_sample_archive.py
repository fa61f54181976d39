"""The offline sample archive: shape of the items, offline validity, determinism, physics vs masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from lpqlc.publish.validate import validate_stac
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate
from lpqlc.sample.realpixels import XRSPATIAL_ITEM_ID, xrspatial_dataset_dir
from lpqlc.sample.scenes import QA

from .conftest import SMALL


def _docs(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json")) if "truth" not in p.parts]


def _item(archive: SampleArchive, collection: str, item_id: str) -> pystac.Item:
    return pystac.Item.from_file(f"{archive.root}/{collection}/{item_id}/{item_id}.json")


def test_every_document_validates_offline(small_archive: SampleArchive, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    docs = _docs(Path(small_archive.root))
    kinds = {d["type"] for d in docs}
    assert kinds == {"Catalog", "Collection", "Feature"}
    checked = set()
    for d in docs:
        checked.update(validate_stac(d))
    assert any("projection/v1.2.0" in s for s in checked)
    assert any("raster/v1.1.0" in s for s in checked)
    assert any("classification/v1.1.0" in s for s in checked)
    assert any("eo/v1.1.0" in s for s in checked)


def test_catalog_layout_and_counts(small_archive: SampleArchive) -> None:
    cat = pystac.Catalog.from_file(small_archive.catalog)
    ids = {c.id for c in cat.get_children()}
    assert ids == {"sentinel-2-l2a", "landsat-c2-l2", "cop-dem-glo-30", "chirps-daily", "openlandmap-soil",
                   "esa-worldcover", "lpqlc-subregions"}  # fmt: skip
    items = list(cat.get_items(recursive=True))
    assert len(items) == sum(small_archive.summary().values())
    platforms = {it.properties["platform"] for it in items if "platform" in it.properties}
    assert {"landsat-7", "landsat-8", "landsat-9", "sentinel-2a", "sentinel-2b"} <= platforms
    # truth lies beside the archive and the catalog never links it
    truth = Path(small_archive.truth)
    assert sorted(p.stem for p in (truth / "landcover").glob("*.tif")) == [str(q) for q in SMALL.quarters]
    assert not any("truth" in str(link.href) for it in items for link in it.links)
    assert not any("truth" in a.href for it in items for a in it.assets.values())


def test_items_are_shaped_like_earth_search(small_archive: SampleArchive) -> None:
    s2 = [i for i in small_archive.items["sentinel-2-l2a"] if i != XRSPATIAL_ITEM_ID]
    item = _item(small_archive, "sentinel-2-l2a", s2[0])
    assert set(item.assets) == {"blue", "green", "red", "nir", "swir16", "scl"}
    # raw JSON: pystac migrates projection 1.x to 2.0 on read and drops proj:epsg, which stackstac needs
    raw = json.loads(Path(item.get_self_href()).read_text())
    p = raw["properties"]
    assert p["proj:epsg"] == 32649 and p["proj:code"] == "EPSG:32649"
    for key in ("eo:cloud_cover", "s2:processing_baseline", "mgrs:utm_zone", "s2:product_uri", "created", "updated"):
        assert key in p
    assert item.assets["swir16"].extra_fields["gsd"] == 20 and item.assets["blue"].extra_fields["gsd"] == 10
    ls = _item(small_archive, "landsat-c2-l2", small_archive.items["landsat-c2-l2"][0])
    assert set(ls.assets) == {"blue", "green", "red", "nir08", "swir16", "qa_pixel"}
    rb = ls.assets["red"].extra_fields["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"]) == (2.75e-05, -0.2, 0)
    assert ls.id.startswith(("LE07_L2SP_127035_", "LC08_L2SP_127035_", "LC09_L2SP_127035_"))
    # every asset is a valid COG whose grid is the one the item declares
    for it in (item, ls):
        for key, asset in it.assets.items():
            path = asset.get_absolute_href()
            assert cog_validate(path)[0], (it.id, key)
            with rasterio.open(path) as src:
                assert list(src.shape) == asset.extra_fields["proj:shape"]
                assert list(src.transform)[:6] == asset.extra_fields["proj:transform"]


def test_baseline_offset_from_2022_01_25(small_archive: SampleArchive) -> None:
    seen = set()
    for item_id in small_archive.items["sentinel-2-l2a"]:
        if item_id == XRSPATIAL_ITEM_ID:
            continue
        item = _item(small_archive, "sentinel-2-l2a", item_id)
        baseline = item.properties["s2:processing_baseline"]
        offset = item.assets["red"].extra_fields["raster:bands"][0]["offset"]
        late = item.datetime.date().isoformat() >= "2022-01-25"
        assert (baseline >= "04.00") == (late or item.properties["s2:sequence"] == "1")
        assert offset == (-0.1 if baseline >= "04.00" else 0.0)
        with rasterio.open(item.assets["red"].get_absolute_href()) as src:
            dn = src.read(1)
        clear_scl = rasterio.open(item.assets["scl"].get_absolute_href()).read(1)
        valid = dn[::2, ::2][np.isin(clear_scl, (4, 5))]
        if valid.size:
            refl = valid * 0.0001 + offset
            assert 0.0 < np.median(refl) < 0.35, item.id  # same surface either side of the change
        seen.add(offset)
    assert seen == {0.0, -0.1}


def test_masks_agree_with_pixels(small_archive: SampleArchive) -> None:
    bright_cloud, checked = 0, 0
    for item_id in small_archive.items["landsat-c2-l2"]:
        item = _item(small_archive, "landsat-c2-l2", item_id)
        qa = rasterio.open(item.assets["qa_pixel"].get_absolute_href()).read(1)
        blue = rasterio.open(item.assets["blue"].get_absolute_href()).read(1) * 2.75e-5 - 0.2
        fill = qa == QA.FILL
        assert np.all((blue <= -0.2 + 1e-6) == fill) or not fill.any() or np.all(blue[fill] < -0.19)
        cloud = (qa & QA.CLOUD) > 0
        clear = (qa & QA.CLEAR) > 0
        assert not np.any(cloud & clear)
        if cloud.sum() > 50 and clear.sum() > 50:
            checked += 1
            bright_cloud += np.median(blue[cloud]) > np.median(blue[clear]) + 0.15
        if item.properties["platform"] == "landsat-7":
            assert fill.mean() > 0.05, "SLC-off stripes"
    assert checked and bright_cloud == checked
    for item_id in small_archive.items["sentinel-2-l2a"]:
        if item_id == XRSPATIAL_ITEM_ID:  # its SCL is derived over the 10 m extent, not on the SWIR grid
            continue
        item = _item(small_archive, "sentinel-2-l2a", item_id)
        scl = rasterio.open(item.assets["scl"].get_absolute_href()).read(1)
        swir = rasterio.open(item.assets["swir16"].get_absolute_href()).read(1)
        assert np.array_equal(scl == 0, swir == 0), item.id  # nodata agrees on the 20 m grid


def test_same_seed_gives_byte_identical_items(tmp_path: Path, small_archive: SampleArchive) -> None:
    again = generate(str(tmp_path / "again"), SMALL, import_xrspatial=True)
    first = {p.relative_to(small_archive.root): p.read_bytes() for p in Path(small_archive.root).rglob("*.json")}
    second = {p.relative_to(again.root): p.read_bytes() for p in Path(again.root).rglob("*.json")}
    assert first.keys() == second.keys() and first == second
    other = generate(str(tmp_path / "other"), SampleSpec(seed=8, size=192, start=Quarter(2021, 4), end=Quarter(2021, 4)))
    ids_other = set(other.items["landsat-c2-l2"])
    assert ids_other <= set(small_archive.items["landsat-c2-l2"])  # schedule is the same…
    same_id = sorted(ids_other)[0]
    a = (Path(small_archive.root) / "landsat-c2-l2" / same_id / f"{same_id}.json").read_bytes()
    b = (Path(other.root) / "landsat-c2-l2" / same_id / f"{same_id}.json").read_bytes()
    assert a != b  # …but another seed draws other clouds


def test_truth_follows_the_dynamics(small_archive: SampleArchive) -> None:
    manifest = json.loads((Path(small_archive.truth) / "manifest.json").read_text())
    assert [t["rule"] for t in manifest["transitions"]]
    first = rasterio.open(Path(small_archive.truth) / "landcover" / f"{SMALL.start}.tif").read(1)
    last = rasterio.open(Path(small_archive.truth) / "landcover" / f"{SMALL.end}.tif").read(1)
    assert set(np.unique(first)) <= {10, 20, 30, 40, 50, 60, 80, 90}
    from lpqlc.sample.world import World, WorldSpec

    world = World(WorldSpec(seed=SMALL.seed, size=SMALL.size))
    early, late = world.truth(Quarter(2000, 1)), world.truth(Quarter(2024, 4))
    assert (late == 10).sum() > (early == 10).sum()  # forest gain
    assert (late == 60).sum() < (early == 60).sum()  # bare → grassland
    assert (late == 50).sum() > (early == 50).sum()  # urban growth
    assert np.array_equal(first, world.truth(SMALL.start)) and np.array_equal(last, world.truth(SMALL.end))


def test_ancillary_layers_are_plausible(small_archive: SampleArchive) -> None:
    root = Path(small_archive.root)
    with rasterio.open(root / "chirps-daily" / "chirps-daily-2022" / "data.tif") as src:
        rain = src.read()
        assert src.crs.to_epsg() == 4326 and abs(src.res[0] - 0.05) < 1e-12 and src.count == 365
        assert src.descriptions[0] == "2022-01-01"
    annual = rain.sum(axis=0)
    assert 250 < annual.mean() < 800  # mm/yr on the central plateau (interannual range ~300–600)
    summer = rain[151:243].sum(axis=0).mean()
    assert summer > 0.45 * annual.mean()  # the monsoon
    soil = {k: rasterio.open(root / "openlandmap-soil" / "openlandmap-soil-b0" / f"{k}.tif").read(1)
            for k in ("sand", "silt", "clay", "organic_carbon")}  # fmt: skip
    total = soil["sand"].astype(int) + soil["silt"] + soil["clay"]
    assert np.all(np.abs(total - 100) <= 2)
    assert soil["silt"].mean() > 50  # loess
    wc = rasterio.open(root / "esa-worldcover" / "ESA_WorldCover_10m_2021_v200_N36E108" / "map.tif")
    assert wc.colormap(1)[10][:3] == (0, 100, 0)
    codes = set(np.unique(wc.read(1)))
    assert codes <= {10, 20, 30, 40, 50, 60, 80, 90, 100} and 100 in codes
    dem = rasterio.open(root / "cop-dem-glo-30" / "Copernicus_DSM_COG_10_N36_00_E109_00_DEM" / "data.tif").read(1)
    assert 700 < dem.min() < dem.max() < 1600
    regions = json.loads((root / "lpqlc-subregions" / "subregions" / "subregions.geojson").read_text())
    assert [f["properties"]["code"] for f in regions["features"]] == ["IA", "SL", "HG", "TG", "RV", "RM"]


def test_real_pixels_from_xarray_spatial(small_archive: SampleArchive) -> None:
    import xarray as xr

    item = _item(small_archive, "sentinel-2-l2a", XRSPATIAL_ITEM_ID)
    assert item.properties["proj:code"] == "EPSG:32719" and item.properties["lpqlc:scl_derived"] is True
    with xr.open_dataset(xrspatial_dataset_dir() / "red_band.nc", engine="scipy") as ds:
        expected = np.rint(ds[next(iter(ds.data_vars))].values.squeeze()).astype(np.uint16)
    with rasterio.open(item.assets["red"].get_absolute_href()) as src:
        assert src.crs.to_epsg() == 32719
        assert np.array_equal(src.read(1), expected)
    assert item.assets["swir16"].extra_fields["proj:shape"] == [200, 300]
