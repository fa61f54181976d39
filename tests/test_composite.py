"""Quarterly composites: masks, scaling, the sensor switch, laziness, and the median against numpy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from lpqlc.composite import build_composite, lazy_fvc, ndvi_endmembers, ndvi_histogram
from lpqlc.composite.build import load_stack
from lpqlc.composite.masking import median_block, qa_clear, scl_clear
from lpqlc.composite.vegetation import percentile_from_histogram
from lpqlc.config.science import CompositeConfig, FVCConfig
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, generate
from lpqlc.sample.scenes import QA
from lpqlc.sources.rules import item_scaling, rule_for
from lpqlc.sources.search import search_quarter

from .conftest import SMALL, small_config

S2_Q = Quarter(2022, 1)  # crosses the 2022-01-25 baseline change
L_Q = Quarter(2021, 4)  # Landsat 7 SLC-off, 8 and 9


class CountingScheduler:
    """A Dask scheduler that counts how often it is asked to compute (xarray's raise_if_dask_computes)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _landsat_cfg(catalog: str, **kw: Any) -> Any:
    return small_config(catalog, landsat_only=True, **kw)


def _composite(cfg: Any, quarter: Quarter) -> Any:
    res = search_quarter(cfg, quarter)
    gbox = OutputGrid.from_config(cfg).geobox(quarter)
    return build_composite(res.items, res.rule, cfg.science.composite, gbox, cfg.grid.chunk_size), res, gbox


# ------------------------------------------------------------------------------------ masks, by hand
def _scene(t: int = 4, h: int = 6, w: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    dn = rng.integers(500, 3000, size=(t, 5, h, w)).astype(np.uint16)
    scl = np.full((t, h, w), 4, np.uint8)
    return dn, scl


def _block(dn: np.ndarray, quality: np.ndarray, kind: str = "scl", **kw: Any) -> np.ndarray:
    t = dn.shape[0]
    args: dict[str, Any] = dict(
        mask_kind=kind, keep=(4, 5, 6, 7), mask_bits=(0, 1, 2, 3, 4, 5), mask_nodata=0 if kind == "scl" else 1,
        scale=np.full((t, 5), 1e-4), offset=np.zeros((t, 5)), nodata=np.zeros(5, int),
        valid_range=(-0.05, 1.6), red=2, nir=3,
    )  # fmt: skip
    args.update(kw)
    return median_block(dn, quality, **args)


def test_scl_clouds_shadows_snow_are_masked_by_hand() -> None:
    dn, scl = _scene()
    scl[0, :2, :] = 9  # high-probability cloud over the top rows of the first scene
    scl[1, :, 0] = 3  # shadow down the first column of the second
    scl[2, 5, 4] = 11  # snow in one pixel
    scl[3, 5, 4] = 0  # and no data in the same pixel of the last
    out = _block(dn, scl)
    count = out[5]
    expect = np.full((6, 5), 4)
    expect[:2, :] -= 1
    expect[:, 0] -= 1
    expect[5, 4] -= 2
    assert np.array_equal(count, expect)
    # the median of each pixel uses exactly its clear scenes
    clear = scl_clear(scl, (4, 5, 6, 7))
    for y, x in [(0, 0), (0, 3), (3, 0), (5, 4), (4, 2)]:
        vals = dn[clear[:, y, x], 1, y, x] * 1e-4
        assert out[1, y, x] == pytest.approx(np.median(vals), rel=1e-6)


def test_landsat_qa_bits_and_slc_off_stripes_become_nodata() -> None:
    dn, _ = _scene(t=3)
    dn += 9000  # Landsat C2 DNs: ρ = DN·2.75e-5 − 0.2
    qa = np.full((3, 6, 5), QA.CLEAR, np.uint16)
    qa[0, 1, :] = QA.CLOUD | QA.DILATED
    qa[1, :, 2] = QA.FILL  # an SLC-off stripe: fill, and DN 0 in the bands
    dn[1, :, :, 2] = 0
    qa[2, 4, 4] = QA.SHADOW
    qa[2, 3, 3] = QA.WATER | QA.CLEAR  # water is clear
    assert not qa_clear(qa, (0, 1, 2, 3, 4, 5))[1, :, 2].any()
    out = _block(dn, qa, "qa_bits", scale=np.full((3, 5), 2.75e-5), offset=np.full((3, 5), -0.2))
    assert out[5, 1, 0] == 2 and out[5, 0, 2] == 2 and out[5, 4, 4] == 2 and out[5, 3, 3] == 3
    # with only the fill bit masked, clouds count again, stripes never do
    out = _block(dn, qa, "qa_bits", mask_bits=(0,), scale=np.full((3, 5), 2.75e-5), offset=np.full((3, 5), -0.2))
    assert out[5, 1, 0] == 3 and out[5, 0, 2] == 2


def test_all_clouded_pixel_is_nan_with_count_zero() -> None:
    dn, scl = _scene()
    scl[:, 2, 2] = 8
    out = _block(dn, scl)
    assert out[5, 2, 2] == 0 and np.isnan(out[:5, 2, 2]).all() and np.isnan(out[6, 2, 2])
    assert np.isfinite(out[:5]).sum() == 5 * (6 * 5 - 1)


def test_even_count_median_is_mean_of_middle_pair_and_reflectance_range_is_enforced() -> None:
    dn = np.zeros((4, 5, 1, 1), np.uint16)
    dn[:, :, 0, 0] = np.array([1000, 3000, 2000, 40000])[:, None]  # the last is ρ = 4.0: invalid
    scl = np.full((4, 1, 1), 4, np.uint8)
    out = _block(dn, scl)
    assert out[5, 0, 0] == 3 and out[0, 0, 0] == pytest.approx(0.2)
    dn[3] = 4000
    out = _block(dn, scl)
    assert out[5, 0, 0] == 4 and out[0, 0, 0] == pytest.approx(0.25)


# ------------------------------------------------------------------------------ scale/offset rules
def _item(archive: SampleArchive, collection: str, item_id: str) -> pystac.Item:
    path = Path(archive.root) / collection / item_id / f"{item_id}.json"
    return pystac.Item.from_file(str(path))


def test_scale_offset_and_processing_baseline(small_archive: SampleArchive, small_archive_pc: SampleArchive) -> None:
    cfg = CompositeConfig()
    es = rule_for("earth-search", "sentinel2")
    pc = rule_for("planetary-computer", "sentinel2")
    old = _item(small_archive, "sentinel-2-l2a", "S2A_49SFU_20220123_0_L2A")
    new = _item(small_archive, "sentinel-2-l2a", "S2B_49SFU_20220128_0_L2A")
    assert old.properties["s2:processing_baseline"] < "04.00" <= new.properties["s2:processing_baseline"]
    assert item_scaling(old, "red", es, cfg) == (1e-4, 0.0, 0)
    assert item_scaling(new, "red", es, cfg) == (1e-4, -0.1, 0)  # declared in raster:bands
    pc_new = _item(small_archive_pc, "sentinel-2-l2a", "S2B_MSIL2A_20220128T032005_R061_T49SFU_20220130T103205")
    assert "raster:bands" not in pc_new.assets["B04"].extra_fields
    scale, offset, _ = item_scaling(pc_new, "B04", pc, cfg)  # derived from s2:processing_baseline
    assert scale == 1e-4 and offset == pytest.approx(-0.1)
    pc_new.properties["earthsearch:boa_offset_applied"] = True
    assert item_scaling(pc_new, "B04", pc, cfg)[1] == 0.0
    # no baseline property: the acquisition date decides
    del pc_new.properties["s2:processing_baseline"], pc_new.properties["s2:product_uri"]
    del pc_new.properties["earthsearch:boa_offset_applied"]
    assert item_scaling(pc_new, "B04", pc, cfg)[1] == pytest.approx(-0.1)
    landsat = _item(small_archive, "landsat-c2-l2", "LE07_L2SP_127035_20211101_02_T1")
    assert item_scaling(landsat, "nir08", rule_for("earth-search", "landsat"), cfg) == (2.75e-5, -0.2, 0)


def test_baseline_offset_makes_reflectance_continuous(small_archive: SampleArchive) -> None:
    """Composites of scenes either side of 2022-01-25 agree once the −1000 DN offset is applied."""
    cfg = small_config(small_archive.catalog)
    res = search_quarter(cfg, S2_Q)
    gbox = OutputGrid.from_config(cfg).geobox(S2_Q)
    ccfg = cfg.science.composite
    by = {it.id: it for it in res.items}
    before = build_composite([by["S2A_49SFU_20220123_0_L2A"]], res.rule, ccfg, gbox, 64).compute()
    after = build_composite([by["S2B_49SFU_20220128_0_L2A"]], res.rule, ccfg, gbox, 64).compute()
    both = np.isfinite(before.red) & np.isfinite(after.red)
    assert int(both.sum()) > 1000
    diff = float(np.median((after.red - before.red).values[both.values]))
    assert abs(diff) < 0.02  # without the offset the later scene would read 0.1 brighter


# ---------------------------------------------------------------------------------- sensor switch
@pytest.fixture(scope="module")
def switch_archive(tmp_path_factory: pytest.TempPathFactory) -> SampleArchive:
    from dataclasses import replace

    spec = replace(SMALL, start=Quarter(2015, 4), end=Quarter(2016, 1))
    return generate(str(tmp_path_factory.mktemp("switch")), spec)


def test_sensor_switch_at_2016(switch_archive: SampleArchive) -> None:
    cfg = small_config(switch_archive.catalog)
    last_landsat, first_s2 = Quarter(2015, 4), Quarter(2016, 1)
    a, ra, ga = _composite(cfg, last_landsat)
    b, rb, gb = _composite(cfg, first_s2)
    assert (ra.rule.sensor, ra.report.collection) == ("landsat", "landsat-c2-l2")
    assert (rb.rule.sensor, rb.report.collection) == ("sentinel2", "sentinel-2-l2a")
    assert ga.resolution.x == 30 and gb.resolution.x == 10
    assert all(it.collection_id == "landsat-c2-l2" for it in ra.items) and ra.items
    assert all(it.collection_id == "sentinel-2-l2a" for it in rb.items) and rb.items
    # the two grids nest: same outer edges, 3×3 fine pixels per coarse one
    assert ga.boundingbox == gb.boundingbox and gb.shape.x == 3 * ga.shape.x
    ca, cb = a.compute(), b.compute()
    assert a.attrs["sensor"] == "landsat" and int(ca["count"].max()) > 0 and int(cb["count"].max()) > 0
    # the same landscape: the coarse median of the fine red agrees with the Landsat red
    fine = cb.red.values.reshape(ga.shape.y, 3, ga.shape.x, 3)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        coarse = np.nanmean(fine, axis=(1, 3))
    ok = np.isfinite(coarse) & np.isfinite(ca.red.values)
    assert np.corrcoef(coarse[ok], ca.red.values[ok])[0, 1] > 0.8


# ------------------------------------------------------------------------------- no clear, no items
def test_no_clear_observation_gives_nodata_and_zero_count(small_archive: SampleArchive) -> None:
    cfg = small_config(small_archive.catalog, composite={"s2_keep_scl": []})
    comp, res, _ = _composite(cfg, S2_Q)
    assert res.items
    c = comp.compute()
    assert int(c["count"].max()) == 0 and bool(c.red.isnull().all()) and bool(c.ndvi.isnull().all())


def test_quarter_without_items_gives_nodata_and_zero_count(small_archive: SampleArchive) -> None:
    cfg = small_config(small_archive.catalog)
    comp, res, gbox = _composite(cfg, Quarter(2023, 3))
    assert not res.items and res.report.found == 0
    c = comp.compute()
    assert c.red.shape == gbox.shape.yx and int(c["count"].max()) == 0 and bool(c.nir.isnull().all())


# ------------------------------------------------------------------------------------ ES vs PC
def test_planetary_computer_and_earth_search_items_give_the_same_composite(
    small_archive: SampleArchive, small_archive_pc: SampleArchive
) -> None:
    for quarter, landsat in ((S2_Q, False), (L_Q, True)):
        make = _landsat_cfg if landsat else small_config
        es, res_es, _ = _composite(make(small_archive.catalog), quarter)
        pc, res_pc, _ = _composite(make(small_archive_pc.catalog, flavour="planetary-computer"), quarter)
        assert res_pc.rule.bands != res_es.rule.bands or landsat  # PC's S2 asset keys differ
        assert len(res_es.items) == len(res_pc.items) > 0
        a, b = es.compute(), pc.compute()
        for v in a.data_vars:
            assert np.array_equal(a[v].values, b[v].values, equal_nan=True), (quarter, v)


# ------------------------------------------------------------------------------------- laziness
def test_building_the_composite_computes_nothing(small_archive: SampleArchive) -> None:
    cfg = small_config(small_archive.catalog)
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        comp, _, _ = _composite(cfg, S2_Q)
        fvc = lazy_fvc(comp.ndvi, cfg.science.fvc, cfg.science.composite.ndvi_histogram_bins)
        hist = ndvi_histogram(comp.ndvi, 100)
    assert counter.calls == 0
    assert comp.red.chunks == ((64, 64, 64), (64, 64, 60)) or max(max(c) for c in comp.red.chunks) <= 64
    with dask.config.set(scheduler=counter):
        fvc.compute()
    assert counter.calls == 1 and hist.shape == (100,)


# --------------------------------------------------------------------------- numpy reference median
def _reference(items: list[pystac.Item], rule: Any, cfg: CompositeConfig, gbox: Any) -> dict[str, np.ndarray]:
    resampling = Resampling[cfg.resampling]
    """Plain numpy: warp each asset with rasterio, mask, scale from raster:bands, np.nanmedian."""
    stacks: dict[str, list[np.ndarray]] = {b: [] for b in rule.bands}
    for it in items:
        def warp(key: str, resampling: Resampling, nodata: int, dtype: Any, it: pystac.Item = it) -> np.ndarray:
            dst = np.full(gbox.shape.yx, nodata, dtype)
            with rasterio.open(it.assets[key].get_absolute_href()) as src:
                reproject(rasterio.band(src, 1), dst, src_nodata=nodata, dst_nodata=nodata,
                          dst_transform=gbox.transform, dst_crs=gbox.crs.to_wkt(), resampling=resampling)  # fmt: skip
            return dst

        q = warp(rule.mask_asset, Resampling.nearest, rule.mask_nodata, np.uint16)
        if rule.mask_kind == "scl":
            clear = np.isin(q, cfg.s2_keep_scl)
        else:
            clear = (q & sum(1 << b for b in cfg.landsat_mask_bits)) == 0
            clear &= q != 1
        refl = {}
        for band, key in rule.bands.items():
            rb = it.assets[key].extra_fields["raster:bands"][0]
            dn = warp(key, resampling, 0, np.uint16)
            clear &= dn != 0
            refl[band] = dn * rb["scale"] + rb["offset"]
            clear &= (refl[band] >= -0.05) & (refl[band] <= 1.6)
        for band in rule.bands:
            stacks[band].append(np.where(clear, refl[band], np.nan))
    out = {}
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        for band, s in stacks.items():
            out[band] = np.nanmedian(np.stack(s), axis=0)
    out["count"] = np.isfinite(np.stack(stacks["red"])).sum(0)
    return out


@pytest.mark.parametrize("landsat", [False, True], ids=["sentinel2", "landsat"])
def test_median_matches_numpy_reference(small_archive: SampleArchive, landsat: bool) -> None:
    """Two references. (1) Independent: whole-image rasterio warps, masks and raster:bands scaling, then
    np.nanmedian; odc-stac warps chunk by chunk and GDAL's approximate transformer may pick the other
    nearest pixel at a tie, so ≥ 99.9 % of pixels must agree exactly. (2) Same pixels: np.nanmedian
    over odc-stac's own loaded digital numbers must agree everywhere."""
    make = _landsat_cfg if landsat else small_config
    cfg = make(small_archive.catalog, composite={"resampling": "nearest"})
    quarter = L_Q if landsat else S2_Q
    comp, res, gbox = _composite(cfg, quarter)
    ccfg = cfg.science.composite
    c = comp.compute()
    count = c["count"].values
    assert count.max() >= 2 and len(res.items) >= 4
    # (1) independent warps
    ref = _reference(res.items, res.rule, ccfg, gbox)
    assert (count == ref["count"]).mean() > 0.999
    for band in res.rule.bands:
        a, b = c[band].values, ref[band]
        same = (np.abs(a - b) < 1e-6) | (np.isnan(a) & np.isnan(b))
        assert same.mean() > 0.999, band
    # (2) the same loaded digital numbers through plain numpy
    ds, slices = load_stack(res.items, res.rule, ccfg, gbox, cfg.grid.chunk_size)
    ds = ds.compute()
    q = ds[res.rule.mask_asset].values
    if res.rule.mask_kind == "scl":
        clear = np.isin(q, ccfg.s2_keep_scl)
    else:
        clear = ((q & sum(1 << b for b in ccfg.landsat_mask_bits)) == 0) & (q != 1)
    refl = {}
    for j, (band, key) in enumerate(res.rule.bands.items()):
        dn = ds[key].values
        scale = np.array([s.scale[j] for s in slices])[:, None, None]
        offset = np.array([s.offset[j] for s in slices])[:, None, None]
        refl[band] = dn * scale + offset
        clear &= (dn != 0) & (refl[band] >= -0.05) & (refl[band] <= 1.6)
    assert np.array_equal(count, clear.sum(0))
    for band in res.rule.bands:
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
            med = np.nanmedian(np.where(clear, refl[band], np.nan), axis=0)
        a = c[band].values
        assert np.array_equal(np.isnan(a), np.isnan(med)), band
        ok = np.isfinite(a)
        assert np.abs(a[ok] - med[ok]).max() < 1e-6, band


# ------------------------------------------------------------------------------------------ FVC
def test_fvc_percentiles_from_histogram_match_numpy() -> None:
    rng = np.random.default_rng(3)
    ndvi = np.clip(rng.normal(0.4, 0.2, (300, 300)), -1, 1).astype(np.float32)
    ndvi[:10] = np.nan
    counts = ndvi_histogram(ndvi, 4000)
    for q in (5, 50, 95):
        assert percentile_from_histogram(counts, q) == pytest.approx(np.nanpercentile(ndvi, q), abs=2 / 4000)
    soil, veg = ndvi_endmembers(FVCConfig(), counts)
    assert soil < veg
    assert ndvi_endmembers(FVCConfig(method="fixed")) == (0.05, 0.85)


# ------------------------------------------------------------------------------------------- CLI
def test_cli_composite_writes_cogs_quicklook_and_stats(small_archive: SampleArchive, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lpqlc.cli import app

    cfg = small_config(small_archive.catalog, storage=str(tmp_path / "out"))
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "composites"
    result = CliRunner().invoke(app, ["composite", "--config", str(path), "--quarter", "2021Q4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    q = out / "2021Q4"
    tiles = sorted(p.name for p in q.iterdir() if p.is_dir())
    assert len(tiles) == 4  # 2×2 tiles of 128 px over the ~1.8 km AOI
    for layer in ("blue", "green", "red", "nir", "swir1", "count", "ndvi", "fvc"):
        with rasterio.open(q / tiles[0] / f"{layer}.tif") as src:
            assert src.crs is not None and src.res == (10.0, 10.0) and src.block_shapes[0] == (128, 128) and src.overviews(1) == []
    summary = json.loads((q / "composite.json").read_text())
    assert summary["sensor"] == "sentinel2" and summary["fvc_method"] == "percentile"
    assert summary["fvc_endmembers"]["ndvi_soil"] < summary["fvc_endmembers"]["ndvi_veg"]
    assert summary["search"]["dropped"], "the reprocessed duplicates are reported"
    stats = json.loads((q / "norm_stats.json").read_text())
    assert set(stats["mean"]) == {"blue", "green", "red", "nir", "swir1"} and all(v > 0 for v in stats["std"].values())
    assert (q / "quicklook.png").read_bytes()[:4] == b"\x89PNG"
    with rasterio.open(q / tiles[0] / "fvc.tif") as src:
        fvc = src.read(1)
    assert np.nanmin(fvc) >= 0 and np.nanmax(fvc) <= 1


# ------------------------------------------------------------------- S3 + STAC API + Dask workers
@pytest.mark.stack
def test_composite_on_workers_from_stac_api_and_s3(s3_archive: SampleArchive, small_archive: SampleArchive,
                                                   stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Worker processes get no GDAL S3 settings from their environment: the odc-stac loads only work
    because the rasterio environment travels inside the tasks; outputs go to the bucket."""
    from dask.distributed import Client, LocalCluster

    from lpqlc.composite.run import run_composite
    from lpqlc.storage import read_bytes

    for var in ("AWS_S3_ENDPOINT", "AWS_VIRTUAL_HOSTING", "AWS_HTTPS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    cfg = small_config(stac_api=stack.stac_api, storage=f"s3://{stack.bucket}/out", endpoint_url=stack.s3_endpoint)
    out = f"s3://{stack.bucket}/composites"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        run = run_composite(cfg, S2_Q, out, client=client)
    assert len(run.tiles) == 4 and run.quicklook and run.endmembers
    from rasterio.io import MemoryFile

    from lpqlc.composite.run import tile_graph, tile_id
    from lpqlc.composite.tiles import ItemIndex, tile_sources

    # each tile of the S3 run equals the same tile built from the local catalog (tile by tile: a warp's
    # nearest ties depend on the output span, see docs/configuration.md "Loaders")
    local = small_config(small_archive.catalog)
    res = search_quarter(local, S2_Q)
    grid = OutputGrid.from_config(local)
    checked = 0
    for ts in tile_sources(ItemIndex(res.items, grid.crs), list(grid.iter_tiles(S2_Q))):
        expect = tile_graph(ts, res.rule, local, ["red"])[0].compute()[0]
        with MemoryFile(read_bytes(run.layer_url(tile_id(ts.index), "red"), stack.s3_endpoint)) as mem, \
                mem.open() as src:  # fmt: skip
            got = src.read(1)
        assert np.array_equal(got, expect, equal_nan=True), tile_id(ts.index)
        checked += int(np.isfinite(expect).sum())
    assert checked > 0
