"""`lpqlc scenario` on a sample run: valid COGs, STAC items with lineage, CSV/PNG/report; the identity
scenario reproduces the erosion job's soil loss."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from lpqlc.analysis.scenario_run import run_scenario
from lpqlc.cli import app
from lpqlc.erosion.run import run_erosion
from lpqlc.errors import ConfigError
from lpqlc.grid import OutputGrid
from lpqlc.publish.catalog import item_url, list_items, read_inputs
from lpqlc.publish.collections import collection_id
from lpqlc.publish.products import erosion_specs, publish_items
from lpqlc.publish.validate import validate_stac
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive

from .conftest import small_config, tile_mosaic

Q = Quarter(2021, 4)
IDENTITY = {  # nothing is suitable to change: no forest or grassland climate, every cropland slope allowed
    "forest_min_precip_mm": 1e6,
    "grassland_min_precip_mm": 1e6,
    "bare_to_cropland_min_precip_mm": 1e6,
    "cropland_max_slope": 1e6,
    "period": "quarter",
}


@pytest.fixture(scope="module")
def baseline(small_archive: SampleArchive, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The erosion job's run and published items for one quarter (the scenario's baseline)."""
    root = tmp_path_factory.mktemp("scenario")
    # every rainy day erosive, so that the sample's dry Q4 erodes at all
    cfg = small_config(
        small_archive.catalog,
        storage=str(root),
        analysis={"scenario": {"period": "quarter"}},
        rusle={"r": {"threshold_mm": 0.0}},
    )
    landcover = str(Path(small_archive.truth) / "landcover" / "{quarter}.tif")
    ero = root / "erosion"
    run_erosion(cfg, [Q], str(ero), landcover=landcover)
    publish_items(cfg, erosion_specs(cfg, str(ero), str(ero / "composites"), [Q], []))
    return {"cfg": cfg, "root": root, "erosion": ero, "landcover": landcover}


def test_cli_scenario_writes_valid_cogs_and_stac_items(baseline: dict[str, Any], tmp_path: Path) -> None:
    cfg, ero = baseline["cfg"], baseline["erosion"]
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "scen"
    res = CliRunner().invoke(
        app,
        [
            "scenario",
            "--config",
            str(path),
            "--quarter",
            str(Q),
            "--out",
            str(out),
            "--landcover",
            baseline["landcover"],
            "--composites",
            str(ero / "composites"),
            "--erosion",
            str(ero),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mean soil loss" in res.output and "published:" in res.output
    tiles = sorted(p for p in out.iterdir() if p.name.startswith("x"))
    assert len(tiles) == 4
    for t in tiles:
        for name in ("landcover", "erosion", "erosion_baseline"):
            valid, errors, _ = cog_validate(str(t / f"{name}.tif"), quiet=True)
            assert valid, (t.name, name, errors)
    summary = pd.read_csv(out / "summary.csv")
    assert {"ALL", "HG", "TG", "RV", "RM", "IA", "SL"} <= set(summary.subregion)
    whole = summary[summary.subregion == "ALL"].iloc[0]
    # the sample's land cover has pixels to reallocate, and reallocation lowers the mean soil loss
    assert whole.converted_km2 > 0 and whole.mean_erosion_scenario < whole.mean_erosion_baseline
    matrix = pd.read_csv(out / "reallocation.csv", index_col=0)
    lc, lc0 = tile_mosaic(out, "landcover"), tile_mosaic(out, "baseline_landcover")
    px_km2 = OutputGrid.from_config(cfg).grid.resolution_for(Q) ** 2 / 1e6
    assert matrix.values.sum() == pytest.approx(np.count_nonzero(lc0) * px_km2, rel=1e-4)
    off = matrix.values.sum() - np.trace(matrix.values)
    assert (
        off
        == pytest.approx(whole.converted_km2, rel=1e-4)
        == pytest.approx((lc != lc0).sum() * px_km2, rel=1e-4)
    )
    assert matrix.loc["Forest"].sum() == pytest.approx(matrix.loc["Forest", "Forest"])  # forest is never lost
    assert set(np.unique(lc[lc != lc0])) <= {10, 30, 40}
    for p in ("plots/maps.png", "plots/erosion_by_subregion.png"):
        assert (out / p).read_bytes()[:4] == b"\x89PNG"
    assert (out / "report.md").read_text().startswith(f"## Restoration scenario {Q}")
    # the scenario collection: one valid item per tile with lineage to the baseline erosion items
    root = cfg.publish_url
    cid = collection_id(cfg, "scenario")
    items = list_items(root, cid)
    assert len(items) == 4
    ero_ids = {i["id"] for i in list_items(root, collection_id(cfg, "erosion"))}
    for it in items:
        assert any("item-spec" in s for s in validate_stac(it))  # raises when invalid
        assert set(it["assets"]) == {"landcover", "erosion", "erosion_baseline"}
        inputs = read_inputs(item_url(root, cid, it["id"]), it)  # the lineage document beside the item
        assert set(inputs) <= ero_ids and inputs and it["properties"]["lpqlc:inputs_count"] == len(inputs)
        assert it["properties"]["lpqlc:scenario"]["period"] == "quarter"
        assert it["assets"]["landcover"]["classification:classes"]
    coll = json.loads((Path(root) / cid / "collection.json").read_text())
    assert any("collection-spec" in s for s in validate_stac(coll))
    cat = json.loads((Path(root) / "catalog.json").read_text())
    assert any(link["href"] == f"./{cid}/collection.json" for link in cat["links"])


def test_identity_scenario_reproduces_the_baseline_erosion(baseline: dict[str, Any], tmp_path: Path) -> None:
    cfg, ero = baseline["cfg"], baseline["erosion"]
    cfg = cfg.model_copy(
        update={
            "science": cfg.science.model_copy(
                update={
                    "analysis": cfg.science.analysis.model_copy(
                        update={"scenario": cfg.science.analysis.scenario.model_copy(update=IDENTITY)}
                    )
                }
            )
        }
    )
    run = run_scenario(
        cfg,
        Q,
        str(tmp_path / "id"),
        landcover=baseline["landcover"],
        composites=str(ero / "composites"),
        erosion=str(ero),
        publish=False,
    )
    out = Path(run.prefix)
    np.testing.assert_array_equal(tile_mosaic(out, "landcover"), tile_mosaic(out, "baseline_landcover"))
    a, a0 = tile_mosaic(out, "erosion"), tile_mosaic(out, "erosion_baseline")
    np.testing.assert_array_equal(a, a0)  # identity scenario: exactly the baseline
    job = tile_mosaic(ero / str(Q), "erosion")  # the erosion job's own soil loss of the same quarter
    assert np.array_equal(np.isfinite(job), np.isfinite(a)) and np.isfinite(a).mean() > 0.5
    np.testing.assert_allclose(
        a[np.isfinite(a)], job[np.isfinite(job)], rtol=1e-6
    )  # R·K·LS·C·P in another order
    assert run.summary.converted_km2.sum() == 0


def test_missing_baseline_land_cover_is_named(baseline: dict[str, Any], tmp_path: Path) -> None:
    cfg = baseline["cfg"]
    with pytest.raises(ConfigError, match="no land cover of 2021Q4"):
        run_scenario(cfg, Q, str(tmp_path / "x"), erosion=str(baseline["erosion"]), publish=False)
    with pytest.raises(ConfigError, match="must hold"):
        run_scenario(cfg, Q, str(tmp_path / "x"), landcover="/no/template.tif", publish=False)


def test_building_the_scenario_graph_computes_nothing(baseline: dict[str, Any]) -> None:
    from lpqlc.analysis.scenario import optimise_landcover, scenario_erosion
    from lpqlc.analysis.scenario_inputs import load_inputs

    from .test_composite import CountingScheduler

    cfg, ero = baseline["cfg"], baseline["erosion"]
    scfg = cfg.science.analysis.scenario
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):  # composites and static layers exist: no work
        inp = load_inputs(
            cfg, Q, landcover=baseline["landcover"], composites=str(ero / "composites"), erosion=str(ero)
        )
        opt = optimise_landcover(inp.landcover, inp.precip, inp.elevation, inp.slope_deg, inp.silt, scfg)
        ds = scenario_erosion(
            inp.landcover,
            opt,
            inp.fvc,
            inp.r,
            inp.k,
            inp.ls,
            inp.slope_deg,
            inp.regions,
            None,
            cfg.science.rusle,
            scfg,
        )
    assert counter.calls == 0
    assert max(max(c) for c in ds["erosion"].chunks) <= cfg.grid.chunk_size


def test_baseline_defaults_to_the_published_land_cover_items(baseline: dict[str, Any]) -> None:
    """Without --landcover the scenario reads the published <prefix>-landcover items of the quarter
    (run last: it publishes land-cover items into the module's catalog)."""
    from lpqlc.analysis.scenario_inputs import baseline_landcover
    from lpqlc.composite.run import tile_id
    from lpqlc.publish.cog import cog_bytes
    from lpqlc.publish.products import ItemSpec
    from lpqlc.sources.rasters import load_files
    from lpqlc.storage import write_bytes

    cfg, root = baseline["cfg"], baseline["root"]
    truth = baseline["landcover"].format(quarter=Q)
    specs, written = [], {}
    for index, gbox in OutputGrid.from_config(cfg).iter_tiles(Q):
        t = tile_id(index)
        data = load_files([truth], gbox, name="landcover", resampling="nearest").values.astype(np.uint8)
        url = str(root / "lc-tiles" / t / "class.tif")
        blob = cog_bytes(data, gbox.transform, gbox.crs.to_wkt(), nodata=0, overview_resampling="mode")
        write_bytes(url, blob)
        written[t] = data
        specs.append(ItemSpec("landcover", str(Q), t, {"landcover": url}, lineage="test tiles", inputs=()))
    publish_items(cfg, specs)
    urls, ids, source = baseline_landcover(cfg, Q)
    lc_cid = collection_id(cfg, "landcover")
    assert len(urls) == len(ids) == 4 and all(i.startswith(lc_cid) for i in ids) and lc_cid in source
    for url, iid in zip(urls, ids, strict=True):
        assert url.startswith(cfg.publish_url) and "/v1/" in url  # the published asset, not the source file
        with rasterio.open(url) as src:
            assert np.array_equal(src.read(1), written[iid.rsplit("-", 1)[-1]])


@pytest.mark.stack
def test_scenario_on_workers_from_s3_into_the_stac_api(s3_archive: SampleArchive, stack: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Inputs from the STAC API and the bucket, outputs to the bucket, worker processes without GDAL S3
    settings in their environment; the scenario collection lands in the STAC API."""
    from dask.distributed import Client, LocalCluster
    from pystac_client import Client as StacClient

    from lpqlc.storage import exists, read_bytes

    for var in ("AWS_S3_ENDPOINT", "AWS_VIRTUAL_HOSTING", "AWS_HTTPS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    cfg = small_config(
        stac_api=stack.stac_api,
        storage=f"s3://{stack.bucket}/scen",
        endpoint_url=stack.s3_endpoint,
        analysis={"scenario": {"period": "quarter"}},
        rusle={"r": {"threshold_mm": 0.0}},
    )
    publish = cfg.publish.model_copy(update={"stac_api": stack.stac_api, "collection_prefix": "scen"})
    cfg = cfg.model_copy(update={"publish": publish})
    q = Quarter(2022, 1)
    landcover = f"{s3_archive.truth}/landcover/{{quarter}}.tif"
    ero = f"s3://{stack.bucket}/scen/erosion"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        run_erosion(cfg, [q], ero, landcover=landcover, client=client)
        run = run_scenario(cfg, q, landcover=landcover, client=client)
    assert run.prefix == f"s3://{stack.bucket}/scen/scenario/{q}" and len(run.tiles) == 4
    for t in run.tiles:
        assert exists(f"{run.prefix}/{t}/erosion.tif", stack.s3_endpoint)
    table = pd.read_csv(io.BytesIO(read_bytes(run.summary_csv, stack.s3_endpoint)))
    whole = table[table.subregion == "ALL"].iloc[0]
    assert whole.area_km2 > 1 and np.isfinite(whole.mean_erosion_scenario)
    found = list(StacClient.open(stack.stac_api).search(collections=["scen-scenario"], max_items=20).items())
    assert len(found) == 4 and all(i.properties["lpqlc:scenario"]["period"] == "quarter" for i in found)
