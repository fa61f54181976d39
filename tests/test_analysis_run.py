"""``lpqlc analyse`` on a multi-year published series.

A full multi-year pipeline run is too slow for CI, so the fixture builds the "published" inputs the
way the pipeline publishes them: small land-cover, quarterly and annual erosion COGs (seeded, made
here) published as items with the project's own publishing functions (``publish_items``) and indexed
by ``refresh_catalog`` (kerchunk datacubes). Four years (2001–2004, the 30 m era, one output tile)
with ``analysis.trend_min_years`` lowered to 4 are the smallest series that exercises every analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lpqlc.analysis.run import ANALYSES, run_analyses
from lpqlc.composite.run import tile_id
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import write_cog
from lpqlc.publish.products import ItemSpec, publish_items, refresh_catalog
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive
from tests.conftest import small_config

YEARS = [2001, 2002, 2003, 2004]
CODES = [10, 20, 30, 40, 50, 60, 80, 90]


def _publish_series(cfg: PipelineConfig, work: Path) -> None:
    """Seeded land cover (a drifting class map) and erosion over YEARS, published like the pipeline does."""
    rng = np.random.default_rng(18)
    grid = OutputGrid.from_config(cfg)
    colours = cfg.science.landcover.colours
    specs: list[ItemSpec] = []
    for index, gbox in grid.iter_tiles(Quarter(YEARS[0], 1)):
        t = tile_id(index)
        h, w = gbox.shape.yx
        crs = gbox.crs.to_wkt()
        lc = rng.choice(CODES, (h, w), p=[0.2, 0.1, 0.3, 0.25, 0.03, 0.08, 0.02, 0.02]).astype(np.uint8)
        base = rng.gamma(2.0, 3.0, (h, w))
        trend = rng.normal(0, 1.5, (h, w)) * (rng.random((h, w)) < 0.5)
        for k, y in enumerate(YEARS):
            annual = np.zeros((h, w))
            for q in (1, 2, 3, 4):
                quarter = Quarter(y, q)
                flip = rng.random((h, w)) < 0.04
                lc = np.where(flip, rng.choice(CODES, (h, w)), lc).astype(np.uint8)
                lc[0, 0] = 0  # a nodata pixel
                a = np.clip(
                    (base + trend * k) * (0.5 if q in (1, 4) else 1.5) * (1 + 0.1 * rng.random((h, w))),
                    0,
                    None,
                )
                a = a.astype(np.float32)
                a[1, 1] = np.nan
                annual += a
                lc_url, ero_url = f"{work}/lc/{quarter}/{t}.tif", f"{work}/ero/{quarter}/{t}.tif"
                write_cog(
                    lc_url, lc, gbox.transform, crs, nodata=0, colormap=colours, overview_resampling="mode"
                )
                write_cog(ero_url, a, gbox.transform, crs, nodata=float("nan"))
                q_url = f"{work}/ero/{quarter}/{t}-quality.tif"  # 1 observed, 4 missing (docs/erosion.md)
                write_cog(q_url, np.where(np.isfinite(a), 1, 4).astype(np.uint8), gbox.transform, crs, nodata=0)
                specs.append(
                    ItemSpec("landcover", str(quarter), t, {"landcover": lc_url}, "synthetic test series", ())
                )
                specs.append(
                    ItemSpec("erosion", str(quarter), t, {"erosion": ero_url, "quality": q_url}, "synthetic test series", ())
                )
            grade = (np.digitize(annual, cfg.science.rusle.grades.breaks) + 1).astype(np.uint8)
            grade[~np.isfinite(annual)] = 0
            urls = {
                "erosion": f"{work}/annual/{y}/{t}/erosion.tif",
                "grade": f"{work}/annual/{y}/{t}/grade.tif",
                "quality": f"{work}/annual/{y}/{t}/quality.tif",
            }
            write_cog(urls["erosion"], annual.astype(np.float32), gbox.transform, crs, nodata=float("nan"))
            write_cog(urls["grade"], grade, gbox.transform, crs, nodata=0, overview_resampling="mode")
            quality = np.where(np.isfinite(annual), 1, 4).astype(np.uint8)
            write_cog(urls["quality"], quality, gbox.transform, crs, nodata=0, overview_resampling="mode")
            specs.append(ItemSpec("erosion-annual", str(y), t, urls, "synthetic test series", ()))
    publish_items(cfg, specs)
    refresh_catalog(cfg, ("landcover", "erosion", "erosion-annual"))


@pytest.fixture(scope="module")
def published(small_archive: SampleArchive, tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    root = tmp_path_factory.mktemp("analyse")
    cfg = small_config(
        small_archive.catalog,
        storage=str(root / "store"),
        analysis={
            "trend_min_years": 4,
            "transition_quarters": ["2001Q3", "2003Q3", "2004Q3"],
            "trend": {"alpha": 0.1},
        },
    )
    # (with 4 years the smallest Mann–Kendall p is 0.089: alpha 0.1 lets both directions show)
    _publish_series(cfg, root / "work")
    return cfg


def test_analyse_writes_every_output(published: PipelineConfig, tmp_path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    from lpqlc.publish.validate import validate_stac

    reference = tmp_path / "reference.csv"
    reference.write_text("year,eroded_pct\n2002,50.0\n2003,60.5\n2030,1.0\n")
    out = tmp_path / "analysis"
    res = run_analyses(published, str(out), reference=str(reference))
    assert set(res.skipped) <= {"control", "reference"}, res.skipped
    for name in (
        "areas",
        "net_gain",
        "transitions",
        "trend_areas",
        "cumulative",
        "top_eroded_transitions",
        "terrain_slope",
        "terrain_aspect",
        "terrain_elevation",
        "attribution",
        "eroded_share",
    ):
        assert (out / f"{name}.csv").exists(), name
    for name in ("areas.png", "transitions_sankey.png", "top_eroded_sankey.png", "analysis.md"):
        assert (out / name).exists(), name
    assert list((out / "when").glob("gain-10-*.tif")) and list((out / "cumulative").glob("*.tif"))
    # trend maps: valid COGs, published as valid STAC items of the trend collection
    assert len(res.items) == 1
    item = json.loads(Path(res.items[0]).read_text())
    assert "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json" in validate_stac(item)
    assert item["properties"]["lpqlc:period"] == "2001-2004" and set(item["assets"]) == {
        "slope",
        "p",
        "trend",
    }
    for asset in item["assets"].values():
        path = Path(res.items[0]).parent / asset["href"]
        assert cog_validate(str(path), quiet=True)[0], path
    coll = json.loads((Path(res.items[0]).parent.parent / "collection.json").read_text())
    validate_stac(coll)  # raises when invalid
    root_doc = json.loads((Path(published.publish_url) / "catalog.json").read_text())  # found from the root
    assert {"rel": "child", "href": f"./{coll['id']}/collection.json", "type": "application/json"} in root_doc["links"]
    # the tables hold what they claim
    areas = res.tables["areas"]
    first = areas[(areas.time == "2001Q1") & (areas.region == "all")]
    tiles = list(OutputGrid.from_config(published).iter_tiles(Quarter(YEARS[0], 1)))
    pixels = sum(g.shape.yx[0] * g.shape.yx[1] - 1 for _, g in tiles)  # one nodata pixel per tile
    assert first["area_km2"].sum() == pytest.approx(pixels * 0.0009, rel=1e-6)  # 30 m pixels
    trend = res.tables["trend_areas"].set_index(["region", "trend"])["area_km2"]
    assert trend["all", "decrease"] > 0 and trend["all", "increase"] > 0
    share = res.tables["eroded_share"].set_index("year")["eroded_pct"]
    cmp = res.tables["reference_comparison"].set_index("year")
    assert list(cmp.index) == [2002, 2003]
    assert cmp.loc[2003, "error_pp"] == pytest.approx(share[2003] - 60.5)
    assert res.tables["reference_mae"] == pytest.approx(cmp["error_pp"].abs().mean())
    att = res.tables["attribution"]
    assert set(att["period"]) == {"Q1", "Q2", "Q3", "Q4", "annual"}
    # nothing analysed is left out without saying so
    md = (out / "analysis.md").read_text()
    assert "control: skipped" in md
    from lpqlc.analysis.report import report_section

    section = "\n".join(report_section(published, str(out)))
    assert "- Trends of annual erosion" in section and "- skipped control: no composites of 2004Q1" in section
    assert report_section(published, str(tmp_path / "none")) == []
    assert set(ANALYSES) - set(res.skipped) - {"control"}


def test_analyse_skips_what_the_period_does_not_allow(published: PipelineConfig, tmp_path: Path) -> None:
    cfg = published.model_copy(
        update={
            "science": published.science.model_copy(
                update={
                    "analysis": published.science.analysis.model_copy(
                        update={"trend_min_years": 8, "transition_quarters": ("2000Q3", "2024Q3")}
                    )
                }
            )
        }
    )
    res = run_analyses(cfg, str(tmp_path / "a"), what=["trends", "transitions"])
    assert "trend_min_years is 8" in res.skipped["trends"]
    assert "transition_quarters" in res.skipped["transitions"]
    with pytest.raises(Exception, match="unknown analyses"):
        run_analyses(cfg, str(tmp_path / "b"), what=["nope"])


def test_report_includes_the_analyses(published: PipelineConfig, tmp_path: Path) -> None:
    """The demo's order: analyses to their default place, then the report, which links them."""
    from lpqlc.analysis.report import default_out
    from lpqlc.report import make_report

    res = run_analyses(published, default_out(published), what=["areas", "trends"])
    assert res.out == default_out(published) and not res.skipped
    rep = make_report(published, str(tmp_path / "report"))
    md = Path(rep.markdown).read_text()
    assert "## Analyses (`lpqlc analyse`)" in md and "- Trends of annual erosion" in md
