"""``lpqlc analyse --what control`` on a real small pipeline output (issue 18 item 7, the paper's
Table 6 control group): composites, land cover and erosion of a full sample year, published.

The land cover is the sample's truth cut to the output tiles and published as the pipeline publishes
``lpqlc classify``'s maps (per-tile COGs, ``publish_items``); the erosion is ``run_erosion`` on those
maps and the pipeline's own composites folder, published with ``erosion_specs``; the catalog is
refreshed (kerchunk datacubes) so the analysis reads what the pipeline would publish.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
from distributed import Client

from lpqlc.analysis.run import run_analyses
from lpqlc.composite.run import tile_id
from lpqlc.erosion.run import run_erosion
from lpqlc.grid import OutputGrid
from lpqlc.pipeline import work_dirs
from lpqlc.publish.cog import write_cog
from lpqlc.publish.products import ItemSpec, erosion_specs, publish_items, refresh_catalog
from lpqlc.quarter import Quarter, quarter_range
from lpqlc.sample.archive import SampleArchive, generate
from lpqlc.sources.rasters import load_files

from .conftest import SMALL, small_config, tile_mosaic

YEAR = 2021
QUARTERS = quarter_range(f"{YEAR}Q1", f"{YEAR}Q4")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    archive: SampleArchive = generate(
        str(tmp_path_factory.mktemp("control-archive")), replace(SMALL, start=QUARTERS[0], end=QUARTERS[-1])
    )
    root = tmp_path_factory.mktemp("control")
    # every rainy day erosive, so that the sample's dry quarters erode at all
    cfg = small_config(archive.catalog, storage=str(root / "store"), rusle={"r": {"threshold_mm": 0.0}})
    dirs = work_dirs(cfg)
    grid = OutputGrid.from_config(cfg)
    truth = str(Path(archive.truth) / "landcover" / "{quarter}.tif")
    lc_dir = root / "landcover"
    specs = []
    for q in QUARTERS:
        for index, gbox in grid.iter_tiles(q):
            t = tile_id(index)
            lc = load_files([truth.format(quarter=q)], gbox, name="landcover", resampling="mode").values
            url = f"{lc_dir}/{q}/{t}.tif"
            write_cog(url, lc.astype(np.uint8), gbox.transform, gbox.crs.to_wkt(), nodata=0,
                      colormap=cfg.science.landcover.colours, overview_resampling="mode",
                      blocksize=cfg.grid.cog_blocksize)  # fmt: skip
            specs.append(ItemSpec("landcover", str(q), t, {"landcover": url}, "sample truth", ()))
    run_erosion(
        cfg, QUARTERS, dirs["erosion"], landcover=f"{lc_dir}/{{quarter}}/{{tile}}.tif",
        composites=dirs["composites"], factors=True,
    )  # fmt: skip
    specs += erosion_specs(cfg, dirs["erosion"], dirs["composites"], QUARTERS, [YEAR])
    publish_items(cfg, specs)
    refresh_catalog(cfg, ("landcover", "erosion", "erosion-annual"))
    out = root / "analysis"
    # the control's erosion units go to the analysis' client, as under ``lpqlc analyse`` (in-process here)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        res = run_analyses(cfg, str(out), what=["control"], client=client)
    return {"cfg": cfg, "res": res, "out": out, "erosion": Path(dirs["erosion"]), "lc": lc_dir}


def _lc_mosaic(folder: Path) -> np.ndarray:
    rows = {}
    for f in sorted(folder.glob("x*.tif")):
        with rasterio.open(f) as src:
            rows[(int(f.stem[5:8]), int(f.stem[1:4]))] = src.read(1)
    ny, nx = max(k[0] for k in rows) + 1, max(k[1] for k in rows) + 1
    return np.block([[rows[(iy, ix)] for ix in range(nx)] for iy in range(ny)])


def test_control_run_holds_one_quarters_land_cover_and_nothing_else(published: dict[str, Any]) -> None:
    cfg, res, out, ero = published["cfg"], published["res"], published["out"], published["erosion"]
    assert res.skipped == {}, res.skipped
    cq = Quarter(YEAR, cfg.science.analysis.control_quarter)
    ctl = out / "control" / "erosion"
    assert not (ctl / "static").exists()  # slope, LS and K are the pipeline's tiles, reused
    lc_cq = _lc_mosaic(published["lc"] / str(cq))
    changed_somewhere = False
    for q in QUARTERS:
        # the control run's land cover for every quarter is the control quarter's published map
        assert np.array_equal(_lc_mosaic(out / "control" / "landcover" / str(q)), lc_cq), q
        f = {n: tile_mosaic(ctl / str(q), n) for n in ("r", "k", "ls", "c", "p")}
        a = tile_mosaic(ctl / str(q), "erosion")
        fin = np.isfinite(a)
        assert fin.mean() > 0.5 and float(a[fin].max()) > 0, q
        # A = R·K·LS·C·P by hand from the control run's factor layers
        hand = f["r"] * f["k"] * f["ls"] * f["c"] * f["p"]
        assert np.allclose(a[fin], hand[fin], rtol=1e-4, atol=1e-7), q
        # R, K and LS are held as the quarterly run's (same rain, soil, terrain)
        for n in ("r", "k", "ls"):
            assert np.allclose(f[n], tile_mosaic(ero / str(q), n), rtol=1e-6, equal_nan=True), (q, n)
        # where the land cover did not change, the control erosion is the quarterly erosion
        lc_q = _lc_mosaic(published["lc"] / str(q))
        a_q = tile_mosaic(ero / str(q), "erosion")
        same = (lc_q == lc_cq) & (lc_q != 0)
        assert same.mean() > 0.5, q
        assert np.allclose(a[same], a_q[same], rtol=1e-5, atol=1e-7, equal_nan=True), q
        # P follows land cover and slope only: every quarter's is the control quarter's quarterly P;
        # C follows land cover and that quarter's FVC: the quarterly C where the class is the same
        assert np.allclose(f["p"], tile_mosaic(ero / str(cq), "p"), equal_nan=True), q
        assert np.allclose(f["c"][same], tile_mosaic(ero / str(q), "c")[same], rtol=1e-6, equal_nan=True), q
        if q == cq:
            assert same.sum() == (lc_q != 0).sum()
        changed_somewhere |= bool(((lc_q != lc_cq) & (lc_q != 0) & np.isfinite(a) & (a != a_q)).any())
    assert changed_somewhere  # the sample's land cover changes between quarters, and that shows in A
    # the CSV holds what it claims: means and eroded shares of both annual maps
    table = pd.read_csv(out / "control.csv")
    assert len(table) == 1
    row = table.iloc[0]
    assert row.year == YEAR and row.control_quarter == str(cq)
    g = cfg.science.rusle.grades
    eroded_from = g.breaks[g.names.index(g.eroded_from) - 1] if g.names.index(g.eroded_from) else 0.0
    means = {}
    for name, folder in (("control", ctl), ("quarterly", ero)):
        annual = tile_mosaic(folder / str(YEAR), "erosion")
        ok = np.isfinite(annual)
        means[name] = float(annual[ok].mean())
        assert row[f"{name}_mean_t_hm2_a"] == pytest.approx(means[name], rel=1e-4), name
        pct = 100 * float((annual[ok] >= eroded_from).mean())
        assert row[f"{name}_eroded_pct"] == pytest.approx(pct, abs=1e-3), name
    assert means["control"] != means["quarterly"]
    # (the CSV's means are rounded to 6 digits: the difference to ~1e-4 percentage points)
    assert row.difference_pct == pytest.approx(100 * (means["control"] / means["quarterly"] - 1), abs=1e-3)
    assert "Control run" in (out / "analysis.md").read_text()


def test_control_rerun_reuses_its_erosion_units(published: dict[str, Any]) -> None:
    cfg, out = published["cfg"], published["out"]
    written = sorted((out / "control").rglob("*.tif"))
    before = {p: p.stat().st_mtime_ns for p in written}
    table = (out / "control.csv").read_text()
    res = run_analyses(cfg, str(out), what=["control"])
    assert res.skipped == {}
    assert {p: p.stat().st_mtime_ns for p in written} == before  # land cover copies and erosion untouched
    assert (out / "control.csv").read_text() == table
