"""The erosion job end to end on a full sample year: COGs, sums, CSV, plots, caching, laziness."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import rasterio

from lpqlc.cli import app
from lpqlc.composite.run import tile_id
from lpqlc.erosion.run import _fvc_urls, _quarter_layers, run_erosion, static_layers
from lpqlc.errors import ConfigError
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import write_cog
from lpqlc.quarter import Quarter, quarter_range
from lpqlc.sample.archive import SampleArchive, generate

from .conftest import SMALL, small_config
from .test_composite import CountingScheduler

YEAR = 2021
QUARTERS = quarter_range(f"{YEAR}Q1", f"{YEAR}Q4")


@pytest.fixture(scope="module")
def year_archive(tmp_path_factory: pytest.TempPathFactory) -> SampleArchive:
    return generate(str(tmp_path_factory.mktemp("year")), replace(SMALL, start=QUARTERS[0], end=QUARTERS[-1]))


@pytest.fixture(scope="module")
def year_run(year_archive: SampleArchive, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("erosion")
    cfg = small_config(year_archive.catalog, storage=str(out))
    landcover = str(Path(year_archive.truth) / "landcover" / "{quarter}.tif")
    run = run_erosion(cfg, QUARTERS, str(out), landcover=landcover, factors=True)
    return cfg, run, out, landcover


def _mosaic(out: Path, period: str, layer: str) -> np.ndarray:
    tiles = sorted((out / period).iterdir())
    rows = {}
    for t in tiles:
        with rasterio.open(t / f"{layer}.tif") as src:
            rows[(int(t.name[5:8]), int(t.name[1:4]))] = src.read(1)
    ny, nx = max(k[0] for k in rows) + 1, max(k[1] for k in rows) + 1
    return np.block([[rows[(iy, ix)] for ix in range(nx)] for iy in range(ny)])


def test_quarterly_cogs_sum_to_the_annual_cog_and_grades_follow(year_run: Any) -> None:
    cfg, run, out, _ = year_run
    assert run.years == [YEAR] and len(run.tiles) == 4
    quarters = [_mosaic(out, str(q), "erosion") for q in QUARTERS]
    annual = _mosaic(out, str(YEAR), "erosion")
    ok = np.isfinite(annual)
    assert ok.mean() > 0.5
    assert np.allclose(np.sum(quarters, axis=0)[ok], annual[ok], rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.isfinite(np.sum(quarters, axis=0)), ok)
    grade = _mosaic(out, str(YEAR), "grade")
    breaks = np.asarray(cfg.science.rusle.grades.breaks)
    assert np.array_equal(grade[ok], np.digitize(annual[ok], breaks) + 1) and (grade[~ok] == 0).all()
    # A = R·K·LS·C·P from the written factor layers
    q = str(QUARTERS[2])
    prod = np.prod([_mosaic(out, q, f) for f in ("r", "k", "ls", "c", "p")], axis=0)
    a = _mosaic(out, q, "erosion")
    fin = np.isfinite(a)
    assert np.allclose(prod[fin], a[fin], rtol=1e-4) and float(np.nanmax(a)) > 0


def test_quality_layer_and_no_holes_where_a_fill_applies(year_run: Any) -> None:
    from lpqlc.erosion.gapfill import MISSING, NO_DATA, OBSERVED

    _, _, out, _ = year_run
    annual, quality = _mosaic(out, str(YEAR), "erosion"), _mosaic(out, str(YEAR), "quality")
    assert quality.dtype == np.uint8 and set(np.unique(quality).tolist()) <= {0, 1, 2, 3, 4}
    land = (quality != NO_DATA) & (quality != MISSING)
    assert land.mean() > 0.5 and np.isfinite(annual[land]).all()  # observed or filled: annual erosion exists
    quarterly = [_mosaic(out, str(q), "quality") for q in QUARTERS]
    assert np.array_equal(quality, np.maximum.reduce(quarterly))
    for q, qa in zip(QUARTERS, quarterly, strict=True):
        a = _mosaic(out, str(q), "erosion")
        ok = (qa != NO_DATA) & (qa != MISSING)
        assert np.isfinite(a[ok]).all() and (qa == OBSERVED).any()
    table = pd.read_csv(out / "summary.csv")
    whole = table[(table.subregion == "ALL")]
    shares = whole[["fvc_observed_pct", "fvc_filled_same_quarter_pct", "fvc_filled_adjacent_pct",
                    "fvc_missing_pct", "fvc_landcover_filled_pct"]]  # fmt: skip
    assert np.allclose(shares.sum(axis=1), 100.0)


def test_landcover_gaps_are_filled_from_other_quarters_and_flagged(year_run: Any, tmp_path: Path) -> None:
    """A quarter whose land cover has a hole (no clear observation): erosion takes the pixel's class from
    the nearest quarter, flags it in the quality layer, and the annual erosion has no hole there."""
    from lpqlc.erosion.gapfill import FILLED_LANDCOVER, MISSING, NO_DATA

    cfg, _, out, landcover = year_run
    maps = tmp_path / "lc"
    maps.mkdir()
    for q in QUARTERS:
        with rasterio.open(landcover.format(quarter=q)) as src:
            arr, profile = src.read(1), src.profile
        hole = np.zeros(arr.shape, bool)
        if q == QUARTERS[1]:
            hole[arr.shape[0] // 4 : arr.shape[0] // 2, arr.shape[1] // 4 : arr.shape[1] // 2] = True
            assert (arr[hole] != 0).all()
        with rasterio.open(maps / f"{q}.tif", "w", **profile) as dst:
            dst.write(np.where(hole, 0, arr), 1)
    template = str(maps / "{quarter}.tif")
    res = tmp_path / "e"
    comps = str(out / "composites")
    run_erosion(cfg, QUARTERS, str(res), landcover=template, composites=comps, static=str(out))
    q2, annual = _mosaic(res, str(QUARTERS[1]), "quality"), _mosaic(res, str(YEAR), "erosion")
    filled = q2 == FILLED_LANDCOVER
    assert filled.sum() > 100 and (_mosaic(res, str(YEAR), "quality")[filled] == FILLED_LANDCOVER).all()
    ref_q, ref = _mosaic(out, str(YEAR), "quality"), _mosaic(out, str(YEAR), "erosion")
    land = (ref_q != NO_DATA) & (ref_q != MISSING)
    assert np.isfinite(annual[filled & land]).all()  # no hole where a rule applied
    assert np.array_equal(annual[~filled], ref[~filled], equal_nan=True)  # elsewhere unchanged
    # without the rule the hole is NaN (the pre-fill behaviour): the test above can fail
    from lpqlc.config.science import LandCoverGapFillConfig

    lc_off = cfg.science.rusle.model_copy(update={"landcover_gapfill": LandCoverGapFillConfig(rules=())})
    cfg_off = cfg.model_copy(update={"science": cfg.science.model_copy(update={"rusle": lc_off})})
    res_off = tmp_path / "off"
    run_erosion(cfg_off, [QUARTERS[1]], str(res_off), landcover=template, composites=comps, static=str(out))
    a_off = _mosaic(res_off, str(QUARTERS[1]), "erosion")
    q_off = _mosaic(res_off, str(QUARTERS[1]), "quality")
    assert np.isnan(a_off[filled]).all() and (q_off[filled] == NO_DATA).all()


def test_factor_layers_are_in_range(year_run: Any) -> None:
    _, _, out, _ = year_run
    q = str(QUARTERS[2])
    c, p, ls, k = (_mosaic(out, q, f) for f in ("c", "p", "ls", "k"))
    for arr, lo, hi in ((c, 0, 1), (p, 0, 1), (ls, 0, 500), (k, 0.005, 0.08)):
        fin = arr[np.isfinite(arr)]
        assert fin.size and fin.min() >= lo and fin.max() <= hi
    lc = _mosaic(out, q, "c")  # water (C = 0) pixels exist in the sample river
    assert (lc == 0).any()


def test_summary_csv_and_plots(year_run: Any) -> None:
    cfg, run, out, _ = year_run
    table = pd.read_csv(out / "summary.csv")
    assert set(table.period) == {"Q1", "Q2", "Q3", "Q4", "annual"}
    assert {"ALL", "HG", "TG", "RV", "RM", "IA", "SL"} <= set(table.subregion)
    annual = table[table.period == "annual"]
    names = cfg.science.rusle.grades.names
    grade_area = annual[[f"area_km2_{n}" for n in names]].sum(axis=1)
    assert np.allclose(grade_area, annual.area_km2, rtol=1e-4)
    eroded = annual[[f"area_km2_{n}" for n in names[1:]]].sum(axis=1) / annual.area_km2 * 100
    assert np.allclose(eroded, annual.eroded_area_pct, rtol=1e-4)  # the CSV keeps 6 significant digits
    whole = annual[annual.subregion == "ALL"].iloc[0]
    assert 0 < whole.mean_erosion < 1e3 and 0 <= whole.eroded_area_pct <= 100
    # subregion areas add up to the whole
    assert annual[annual.subregion != "ALL"].area_km2.sum() == pytest.approx(whole.area_km2, rel=1e-4)
    q3 = table[(table.period == "Q3") & (table.subregion == "ALL")].iloc[0]
    assert q3.share_of_annual_pct > 30  # the monsoon quarter carries most of the erosion
    for p in run.plots:
        assert Path(p).read_bytes()[:4] == b"\x89PNG"
    assert {Path(p).name for p in run.plots} == {"annual_mean.png", "quarterly_shares.png", f"map_{YEAR}.png"}


def test_static_layers_are_cached_and_external_ls_is_accepted(year_run: Any, tmp_path: Path) -> None:
    cfg, run, out, _ = year_run
    grid = OutputGrid.from_config(cfg)
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        static = static_layers(cfg, str(out), grid)  # cached per tile: no task runs
    assert counter.calls == 0
    n30 = len(list(grid.iter_tiles(30.0)))
    assert {k: len(v) for k, v in static.items()} == {"slope": n30, "ls": n30, "k": n30}  # a COG per 30 m tile
    before = {u: Path(u).stat().st_mtime_ns for v in static.values() for u in v}
    static_layers(cfg, str(out), grid)
    assert {u: Path(u).stat().st_mtime_ns for v in static.values() for u in v} == before
    with rasterio.open(static["ls"][0]) as src:  # the cache encoding: tiled, ZSTD, full resolution only
        assert src.profile["tiled"] and src.compression.name == "zstd" and src.overviews(1) == []
        ls0 = src.read(1)
    assert np.isfinite(ls0).mean() > 0.5 and float(np.nanmax(ls0)) > 1
    # a user's LS raster replaces the DEM-derived one
    g30 = grid.geobox(30.0)
    ext = tmp_path / "ls_external.tif"
    write_cog(str(ext), np.full(g30.shape.yx, 3.5, np.float32), g30.transform, g30.crs.to_wkt(), nodata=float("nan"))
    rusle = cfg.science.rusle.model_copy(update={"ls": cfg.science.rusle.ls.model_copy(update={"external": str(ext)})})
    cfg2 = cfg.model_copy(update={"science": cfg.science.model_copy(update={"rusle": rusle})})
    static2 = static_layers(cfg2, str(tmp_path / "ext"), grid)
    for url in static2["ls"]:
        with rasterio.open(url) as src:
            assert np.allclose(src.read(1), 3.5)


def test_a_static_tile_is_redone_when_a_dem_or_soil_item_meeting_it_changes(year_run: Any) -> None:
    """The static cache's unit key holds the versions of the items meeting the tile (ids, ``updated``,
    asset hrefs): a re-published or replaced DEM or soil item changes the key of the tiles it meets."""
    from lpqlc.erosion.static import _Items
    from lpqlc.sources.search import search_collection

    cfg = year_run[0]
    for collection in (cfg.sources.collections.dem, cfg.sources.collections.soil):
        items = _Items(search_collection(cfg, collection))
        before = _Items.versions(items.dicts)
        assert before == _Items.versions(list(reversed(items.dicts)))  # the order the search gives is not a change
        first = json.loads(json.dumps(items.dicts[0]))
        first["properties"]["updated"] = "2031-01-01T00:00:00Z"  # re-published
        assert _Items.versions([first, *items.dicts[1:]]) != before
        moved = json.loads(json.dumps(items.dicts[0]))
        key = next(iter(moved["assets"]))
        moved["assets"][key]["href"] = moved["assets"][key]["href"] + ".v2"  # replaced file
        assert _Items.versions([moved, *items.dicts[1:]]) != before


def test_static_tiles_equal_the_whole_area_layers(year_run: Any, tmp_path: Path) -> None:
    """Each static tile task reads the DEM over its tile plus the LS halo: on 64 px tiles of the 30 m
    grid, the mosaic of slope and K equals the whole-area layers, and LS meets the tiled-LS criterion of
    docs/erosion.md (≤ 0.5 % of the pixels differ by more than 1e-5, relative)."""
    from lpqlc.erosion.inputs import k_layer, load_dem
    from lpqlc.erosion.terrain import slope_ls_block, cell_size_m

    cfg, _, _, _ = year_run
    small = cfg.model_copy(update={"grid": cfg.grid.model_copy(update={"tile_size": 64, "chunk_size": 64})})
    grid = OutputGrid.from_config(small)
    static = static_layers(small, str(tmp_path), grid)
    tiles = grid.tiles(30.0)
    assert len(static["ls"]) >= 3  # the tiles meeting the AOI

    g30 = grid.geobox(30.0)
    present = np.zeros(g30.shape.yx, bool)

    def mosaic(name: str) -> np.ndarray:
        out = np.full(g30.shape.yx, np.nan, np.float32)
        for url in static[name]:
            t = Path(url).parent.name
            with rasterio.open(url) as src:
                out[tiles.roi[(int(t[5:8]), int(t[1:4]))]] = src.read(1)
                present[tiles.roi[(int(t[5:8]), int(t[1:4]))]] = True
        return out

    dem = load_dem(small, g30, lazy=False)
    dx, dy = cell_size_m(dem)
    slope, ls = slope_ls_block(dem.values, dx, dy, small.science.rusle.ls)
    tiled_slope, tiled, tiled_k = mosaic("slope"), mosaic("ls"), mosaic("k")
    assert present.mean() > 0.7
    assert np.array_equal(tiled_slope[present], slope[present], equal_nan=True)
    assert np.array_equal(np.isnan(tiled[present]), np.isnan(ls[present]))
    ok = present & np.isfinite(ls)
    assert ok.mean() > 0.7
    rel = np.abs(tiled[ok] - ls[ok]) / np.maximum(ls[ok], 1e-6)
    assert float((rel > 1e-5).mean()) <= 5e-3
    k_whole = k_layer(small, g30).compute(scheduler="sync").values
    assert np.allclose(tiled_k[present], k_whole[present], rtol=1e-6, equal_nan=True)
    assert np.isfinite(k_whole[present]).mean() > 0.9


def test_building_the_erosion_graph_computes_nothing(year_run: Any) -> None:
    from lpqlc.erosion.inputs import r_quarters

    cfg, _, out, landcover = year_run
    grid = OutputGrid.from_config(cfg)
    static = static_layers(cfg, str(out), grid)  # cached: no work
    q = QUARTERS[2]
    fvc = _fvc_urls(cfg, str(out / "composites"), q, None)  # the composites exist: no work
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        layers = _quarter_layers(cfg, q, grid.geobox(q), static, r_quarters(cfg, [q.year]), landcover, fvc)
    assert counter.calls == 0
    assert all(v.chunks is not None for v in layers.values())
    assert max(max(c) for c in layers["erosion"].chunks) <= cfg.grid.chunk_size


def test_a_tiles_graph_reads_only_its_files_and_equals_the_aoi_graph_there(year_run: Any) -> None:
    """run_erosion builds each tile's layers on the tile's GeoBox from the files meeting it: nothing is
    computed while building, the graph is smaller than the AOI's, and the pixels equal the AOI's there."""
    from lpqlc.erosion.inputs import r_quarters
    from lpqlc.erosion.run import Footprints

    cfg, _, out, landcover = year_run
    grid = OutputGrid.from_config(cfg)
    static = static_layers(cfg, str(out), grid)
    q = QUARTERS[2]
    fvc = _fvc_urls(cfg, str(out / "composites"), q, None)
    r_all = r_quarters(cfg, [q.year])
    (iy, ix), tile_gbox = list(grid.iter_tiles(q))[-1]
    footprints = Footprints(cfg.store)
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        tile = _quarter_layers(cfg, q, tile_gbox, static, r_all, landcover, fvc, footprints=footprints)
    assert counter.calls == 0
    assert fvc and footprints.overlapping(fvc, tile_gbox)
    assert static["ls"] == footprints.overlapping(static["ls"], tile_gbox)  # one 30 m tile covers the sample
    far = tile_gbox.translate_pix(10_000, 10_000)
    assert footprints.overlapping(fvc + static["ls"], far) == []
    whole = _quarter_layers(cfg, q, grid.geobox(q), static, r_all, landcover, fvc)
    assert len(tile["erosion"].data.dask) < len(whole["erosion"].data.dask)
    ys, xs = grid.tiles(q).roi[(iy, ix)]
    for name in ("erosion", "quality", "ls", "r"):
        a, b = tile[name].values, whole[name].isel(y=ys, x=xs).values
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
    assert np.isfinite(tile["erosion"].values).any()


def test_a_tile_task_is_planned_without_computing_and_writes_the_runs_pixels(year_run: Any, tmp_path: Path) -> None:
    """The client plans a tile as a spec of the files meeting it (no compute, no load; its footprints
    hold only those files), and the worker task built from it writes the same bytes run_erosion wrote."""
    from lpqlc.erosion.inputs import r_quarters
    from lpqlc.erosion.run import Footprints, fvc_neighbours, landcover_neighbours, landcover_urls
    from lpqlc.erosion.tile_task import erosion_tile, tile_spec

    cfg, _, out, landcover = year_run
    grid = OutputGrid.from_config(cfg)
    static = static_layers(cfg, str(out), grid)
    comp = str(out / "composites")
    own = {q: _fvc_urls(cfg, comp, q, None) for q in QUARTERS}
    nbs = {q: fvc_neighbours(cfg, comp, q, own) for q in QUARTERS}
    fillers = {q: landcover_neighbours(landcover, q, cfg) for q in QUARTERS}
    lc = {q: landcover_urls(landcover, q, cfg) for q in QUARTERS}
    footprints = Footprints(cfg.store)
    (iy, ix), tile_gbox = list(grid.iter_tiles(QUARTERS[0]))[-1]
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        spec = tile_spec(footprints, tile_gbox, QUARTERS, static, lc, fillers, own, nbs)
        inner = tile_spec(footprints, tile_gbox[8:-8, 8:-8], QUARTERS, static, lc, fillers, own, nbs)
    assert counter.calls == 0 and not footprints.loads
    assert set(spec.footprints._boxes) == set(spec.urls) and not spec.footprints.loads
    fvc_files = [q for q in QUARTERS if len(own[q]) > 1]
    assert fvc_files and all(len(inner.fvc[q]) == 1 and inner.fvc[q][0] in own[q] for q in fvc_files)
    r_year = r_quarters(cfg, [YEAR]).compute()
    t = tile_id((iy, ix))
    stats = erosion_tile(cfg, spec, r_year, landcover, ("erosion", "quality"), YEAR, str(tmp_path), t, False, [],
                         cfg.science.rusle.grades.breaks, None, None)  # fmt: skip
    assert stats[f"{YEAR}|ALL"]["n"] > 0
    for period in [*map(str, QUARTERS), str(YEAR)]:
        assert (tmp_path / period / t / "erosion.tif").read_bytes() == (out / period / t / "erosion.tif").read_bytes()


def test_erosion_items_list_their_land_cover_gap_fillers(year_run: Any) -> None:
    from lpqlc.erosion.gapfill import landcover_candidates
    from lpqlc.publish.collections import collection_id
    from lpqlc.publish.items import Period, item_id
    from lpqlc.publish.products import erosion_specs

    cfg, _, out, _ = year_run
    specs = erosion_specs(cfg, str(out), str(out / "composites"), QUARTERS, [YEAR])
    lc = collection_id(cfg, "landcover")
    q = QUARTERS[1]
    spec = next(s for s in specs if s.product == "erosion" and s.period == str(q))
    fillers = [c for c in landcover_candidates(q, cfg.science.rusle.landcover_gapfill) if c in cfg.quarters or c in QUARTERS]
    assert QUARTERS[0] in fillers and QUARTERS[2] in fillers and q not in fillers
    ids = [item_id(lc, Period.of(c), spec.tile) for c in [q, *fillers]]
    assert list(spec.inputs[: len(ids)]) == ids and ids[1] in spec.lineage


def test_rain_is_read_by_windows_and_windows_agree(year_run: Any) -> None:
    from lpqlc.erosion.inputs import r_quarters

    cfg, _, _, _ = year_run

    def with_window(px: int) -> Any:
        r = cfg.science.rusle.r.model_copy(update={"window_px": px})
        rusle = cfg.science.rusle.model_copy(update={"r": r})
        return r_quarters(cfg.model_copy(update={"science": cfg.science.model_copy(update={"rusle": rusle})}), [YEAR])

    small, whole = with_window(1), with_window(4096)
    assert small.data.npartitions == small.shape[1] * small.shape[2] > 1 and whole.data.npartitions == 1
    assert small.isel(latitude=slice(0, 1), longitude=slice(0, 1)).data.npartitions == 1  # one window, one pixel
    assert np.allclose(small.values, whole.values, equal_nan=True) and np.isfinite(whole.values).all()


def test_cli_erosion_and_its_errors(year_run: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    cfg, _, out, landcover = year_run
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json", exclude_none=True)))
    res = CliRunner().invoke(app, ["erosion", "--config", str(path), "--quarters", f"{YEAR}Q3", "--out", str(tmp_path / "e"),
                                   "--landcover", landcover, "--composites", str(out / "composites")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "e" / f"{YEAR}Q3").is_dir() and not (tmp_path / "e" / str(YEAR)).exists()
    assert "0 full year(s)" in res.output and (tmp_path / "e" / "plots" / f"map_{YEAR}Q3.png").exists()
    with pytest.raises(ConfigError, match="must hold"):
        run_erosion(cfg, [Quarter(YEAR, 3)], str(tmp_path / "x"), landcover="/no/template.tif")


@pytest.mark.stack
def test_erosion_on_workers_from_stac_api_and_s3(s3_archive: SampleArchive, stack: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Inputs from the STAC API and the bucket, outputs to the bucket, worker processes without GDAL S3
    settings in their environment."""
    from dask.distributed import Client, LocalCluster

    from lpqlc.storage import exists, read_bytes

    for var in ("AWS_S3_ENDPOINT", "AWS_VIRTUAL_HOSTING", "AWS_HTTPS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    cfg = small_config(stac_api=stack.stac_api, storage=f"s3://{stack.bucket}/out", endpoint_url=stack.s3_endpoint)
    out = f"s3://{stack.bucket}/erosion"
    landcover = f"{s3_archive.truth}/landcover/{{quarter}}.tif"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        run = run_erosion(cfg, [Quarter(2022, 1)], out, landcover=landcover, client=client)
    assert run.years == [] and len(run.tiles) == 4
    for t in run.tiles:
        assert exists(f"{out}/2022Q1/{t}/erosion.tif", stack.s3_endpoint)
    assert exists(f"{out}/static/{tile_id((0, 0))}/ls.tif", stack.s3_endpoint)
    table = pd.read_csv(io.BytesIO(read_bytes(run.summary_csv, stack.s3_endpoint)))
    whole = table[(table.subregion == "ALL") & (table.period == "Q1")].iloc[0]
    assert whole.area_km2 > 1 and np.isfinite(whole.mean_erosion)
