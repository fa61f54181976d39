"""REGv1 and the land-cover product: V(t) from published FVC composites; the ``lpqlc regen`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lpqlc.sample.archive import SampleArchive

from .conftest import SMALL, small_config

QUARTERS = [SMALL.start, SMALL.end]  # 2021Q4, 2022Q1: two years


@pytest.fixture(scope="module")
def composites(small_archive: SampleArchive, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    from lpqlc.composite.run import run_composite

    out = str(tmp_path_factory.mktemp("regen-composites"))
    cfg = small_config(small_archive.catalog, storage=out)
    for q in QUARTERS:
        run_composite(cfg, q, out)
    return cfg, out


def test_observations_from_products_average_fvc_per_subregion_and_year(composites: tuple[Any, str],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    import dask

    from lpqlc.composite.run import composite_layer
    from lpqlc.erosion.inputs import subregion_features
    from lpqlc.erosion.run import _subregion_raster
    from lpqlc.grid import OutputGrid
    from lpqlc.regen.observations import COLUMNS, observations_from_products, read_observations

    cfg, comp = composites
    csv = tmp_path / "fvc.csv"
    with dask.config.set(scheduler="sync"):
        table = observations_from_products(cfg, comp, QUARTERS, out=str(csv))
    assert list(table.columns) == list(COLUMNS)
    assert sorted(set(table["year"])) == [q.year for q in QUARTERS]
    features = subregion_features(cfg)
    assert len(features) == 6
    # independent reference: the full mosaic and the subregion raster on the client (fine at this size)
    for q in QUARTERS:
        fvc = np.asarray(composite_layer(cfg, comp, q, "fvc").values, float)
        regions = _subregion_raster(features, OutputGrid.from_config(cfg).geobox(q))
        rows = table[table["year"] == q.year].set_index("location")["veg_cover_%"]
        assert rows[cfg.aoi.name] == pytest.approx(100 * np.nanmean(fvc), rel=1e-6)
        for i, (code, _) in enumerate(features):
            sel = (regions == i + 1) & np.isfinite(fvc)
            if sel.any():
                assert rows[code] == pytest.approx(100 * fvc[sel].mean(), rel=1e-6)
            else:
                assert code not in rows.index
        assert ((rows >= 0) & (rows <= 100)).all()
    # SOM, runoff, ... are missing, not zero, and the CSV reads back in the seed's schema
    assert table["SOM_%"].isna().all() and table["runoff_mm"].isna().all()
    back = read_observations(str(csv))
    assert len(back) == len(table) and back["SOM_%"].isna().all()


def test_regen_cli_writes_reports_and_plots(tmp_path: Path) -> None:
    from lpqlc.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["regen", "equilibria", "--region", "ChihuahuanDesert", "--points", "5",
                              "--out", str(tmp_path / "eq")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "eq" / "equilibria.json").read_text())
    assert doc["region"] == "ChihuahuanDesert" and doc["rainfall_mm"] == 270.0
    assert all(e["residual"] <= 1e-8 for e in doc["equilibria"])
    assert (tmp_path / "eq" / "bifurcation.png").read_bytes()[:4] == b"\x89PNG"

    # the seed's Jornada rows: 3 years of V and SOM cannot identify seven parameters, and the report says so
    res = runner.invoke(app, ["regen", "calibrate", "--region", "ChihuahuanDesert", "--bootstrap", "2",
                              "--out", str(tmp_path / "cal")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert doc["location"] == "Jornada-plot" and doc["holdout_years"] == []
    assert "cannot identify" in doc["statement"]
    assert not any(p["identifiable"] for p in doc["parameters"].values())
    assert next(s for s in doc["stages"] if s["stage"] == "c")["skipped"].startswith("no observations")
    assert {Path(f).name for f in doc["files"]} == {"trajectories.png", "bootstrap.png"}

    res = runner.invoke(
        app, ["regen", "calibrate", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]
    )
    assert res.exit_code != 0 and "missing.csv" in str(res.exception)
