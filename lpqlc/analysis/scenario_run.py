"""Run the restoration scenario of one quarter over the AOI, tile by tile on Dask; write COGs, CSVs, PNGs
and a report section; publish the products as the ``<prefix>-scenario`` collection.

Layout under the output URL (default ``<storage.url>/scenario/<YYYYQn>``)::

    <tile>/landcover.tif            optimised land cover (class codes, 0 nodata)
    <tile>/baseline_landcover.tif   the baseline land cover on the same grid (working file)
    <tile>/erosion.tif              soil loss under the scenario, t/(hm²·a) (period year) or t/(hm²·q)
    <tile>/erosion_baseline.tif     soil loss of the baseline map with the same R, K, LS, P and FVC
    <tile>/grade.tif                SL 190-2007 grade of the scenario's annual soil loss (period year)
    summary.csv                     mean soil loss before/after per subregion and for the AOI (ALL)
    reallocation.csv                reallocation matrix, km² (rows: baseline class, columns: scenario)
    plots/{maps,erosion_by_subregion}.png
    report.md                       a report section linking them

One compute point per tile returning only its statistics; the subregion FVC medians are one more
(small) pass before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc.analysis.scenario import (
    class_fvc_medians,
    optimise_landcover,
    reallocation_counts,
    scenario_erosion,
)
from lpqlc.analysis.scenario_inputs import load_inputs
from lpqlc.cluster import compute_bounded
from lpqlc.composite.run import tile_id
from lpqlc.config import PipelineConfig
from lpqlc.erosion.rusle import erosion_grade
from lpqlc.grid import OutputGrid
from lpqlc.publish.cog import cog_bytes
from lpqlc.publish.collections import class_colours
from lpqlc.quarter import Quarter
from lpqlc.storage import Store, parse_storage_url, write_bytes

__all__ = ["ScenarioRun", "run_scenario"]

log = logging.getLogger(__name__)


@dataclass
class ScenarioRun:
    """What a scenario run wrote and its headline figures."""

    prefix: str
    quarter: Quarter
    period: str
    tiles: list[str]
    summary_csv: str
    matrix_csv: str
    report: str
    summary: Any = None
    matrix: Any = None
    plots: list[str] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    collection: str | None = None


def _write_tile(
    arrays: dict[str, np.ndarray],
    gbox: GeoBox,
    prefix: str,
    tile: str,
    store: Store | None,
    codes: list[int],
    n_regions: int,
    lc_colours: dict[int, str],
    grade_colours: dict[int, str] | None,
    grade_breaks: tuple[float, ...] | None,
    blocksize: int,
) -> dict[str, Any]:
    """Write one tile's COGs; return its sums per region and its reallocation counts."""
    crs = gbox.crs.to_wkt()
    base, scen = arrays["baseline"].astype(np.uint8), arrays["scenario"].astype(np.uint8)
    a0, a1 = arrays["erosion_baseline"], arrays["erosion"]

    def put(name: str, data: np.ndarray, **kw: Any) -> None:
        write_bytes(
            f"{prefix}/{tile}/{name}.tif",
            cog_bytes(data, gbox.transform, crs, blocksize=blocksize, **kw),
            store,
        )

    for name, lc in (("landcover", scen), ("baseline_landcover", base)):
        put(name, lc, nodata=0, overview_resampling="mode", colormap=lc_colours)
    put("erosion", a1, nodata=float("nan"))
    put("erosion_baseline", a0, nodata=float("nan"))
    if grade_breaks is not None:
        grade = erosion_grade(xr.DataArray(a1)).values
        put("grade", grade, nodata=0, overview_resampling="mode", colormap=grade_colours)
    regions = arrays["regions"].astype(np.int64)
    ok = np.isfinite(a0) & np.isfinite(a1)
    changed = (base != scen) & (base > 0)
    w = regions[ok]
    return {
        "before": np.bincount(w, weights=a0[ok].astype(np.float64), minlength=n_regions),
        "after": np.bincount(w, weights=a1[ok].astype(np.float64), minlength=n_regions),
        "n": np.bincount(w, minlength=n_regions),
        "converted": np.bincount(regions[changed], minlength=n_regions),
        "matrix": reallocation_counts(base, scen, codes),
    }


def run_scenario(
    cfg: PipelineConfig,
    quarter: Quarter,
    out: str | None = None,
    *,
    landcover: str | None = None,
    composites: str | None = None,
    erosion: str | None = None,
    publish: bool = True,
    client: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScenarioRun:
    """The restoration scenario of ``quarter`` (see the module doc); ``landcover`` overrides the baseline
    land cover (a template with ``{quarter}``), ``composites``/``erosion`` the working folders
    (default ``<storage.url>/composites`` and ``<storage.url>/erosion``, whose static layers are reused)."""
    import pandas as pd

    scfg = cfg.science.analysis.scenario
    store = cfg.store
    root = parse_storage_url(cfg.storage.url, what="storage.url")
    prefix = (
        parse_storage_url(out, what="--out").url.rstrip("/") if out else root.join("scenario", str(quarter))
    )
    inp = load_inputs(
        cfg,
        quarter,
        landcover=landcover,
        composites=composites or root.join("composites"),
        erosion=erosion or root.join("erosion"),
        client=client,
    )
    log.info("scenario %s (%s): baseline %s; output %s", quarter, scfg.period, inp.landcover_source, prefix)
    tick = progress or (lambda stage, done, total: None)
    n_regions = len(inp.region_names) + 1
    optimised = optimise_landcover(inp.landcover, inp.precip, inp.elevation, inp.slope_deg, inp.silt, scfg)
    medians = None
    if scfg.converted_fvc == "subregion_median":
        medians = np.stack(
            [
                class_fvc_medians(inp.landcover, inp.fvc.sel(quarter=str(q)), inp.regions, n_regions, scfg)
                for q in inp.quarters
            ]
        )
    tick("FVC medians", 1, 1)
    ds = scenario_erosion(
        inp.landcover,
        optimised,
        inp.fvc,
        inp.r,
        inp.k,
        inp.ls,
        inp.slope_deg,
        inp.regions,
        medians,
        cfg.science.rusle,
        scfg,
    )
    layers = {
        "baseline": inp.landcover,
        "scenario": optimised,
        "erosion": ds["erosion"],
        "erosion_baseline": ds["erosion_baseline"],
        "regions": inp.regions,
    }
    grid = OutputGrid.from_config(cfg)
    tiles = grid.tiles(quarter)
    codes = sorted(cfg.science.landcover.classes)
    lc_colours = class_colours(cfg, "landcover", "landcover")
    year = scfg.period == "year"
    grade_colours = class_colours(cfg, "erosion-annual", "grade") if year else None
    tasks, names = [], []
    for index, tile_gbox in grid.iter_tiles(quarter):
        ys, xs = tiles.roi[index]
        arrays = {k: v.isel(y=ys, x=xs).data for k, v in layers.items()}
        tasks.append(
            dask.delayed(_write_tile, pure=True)(
                arrays,
                tile_gbox,
                prefix,
                tile_id(index),
                store,
                codes,
                n_regions,
                lc_colours,
                grade_colours,
                cfg.science.rusle.grades.breaks if year else None,
                cfg.grid.cog_blocksize,
            )
        )
        names.append(tile_id(index))
    log.info("scenario %s: %d tile(s) to write", quarter, len(tasks))
    results = compute_bounded(tasks, client, "scenario", progress)
    total = {
        k: np.sum([r[k] for r in results], axis=0) for k in ("before", "after", "n", "converted", "matrix")
    }
    px_km2 = grid.grid.resolution_for(quarter) ** 2 / 1e6
    unit = "t/(hm2·a)" if year else "t/(hm2·q)"
    rows = []
    for i, name in enumerate(["ALL", *inp.region_names]):
        sel = slice(None) if i == 0 else slice(i, i + 1)
        n = int(total["n"][sel].sum())
        before = float(total["before"][sel].sum()) / n if n else float("nan")
        after = float(total["after"][sel].sum()) / n if n else float("nan")
        rows.append(
            {
                "subregion": name,
                "period": str(quarter.year) if year else str(quarter),
                "unit": unit,
                "area_km2": n * px_km2,
                "mean_erosion_baseline": before,
                "mean_erosion_scenario": after,
                "change_pct": 100.0 * (after - before) / before if before else float("nan"),
                "converted_km2": float(total["converted"][sel].sum()) * px_km2,
            }
        )
    summary = pd.DataFrame(rows)
    class_names = [cfg.science.landcover.classes[c] for c in codes]
    matrix = pd.DataFrame(
        total["matrix"] * px_km2, index=pd.Index(class_names, name="baseline"), columns=class_names
    )
    run = ScenarioRun(
        prefix=prefix,
        quarter=quarter,
        period=scfg.period,
        tiles=names,
        summary_csv=f"{prefix}/summary.csv",
        matrix_csv=f"{prefix}/reallocation.csv",
        report=f"{prefix}/report.md",
        summary=summary,
        matrix=matrix,
    )
    write_bytes(run.summary_csv, summary.to_csv(index=False, float_format="%.6g").encode(), store)
    write_bytes(run.matrix_csv, matrix.to_csv(float_format="%.6g").encode(), store)
    from lpqlc.analysis.scenario_outputs import plots, publish_scenario, report_section

    run.plots = plots(run, cfg, grid)
    write_bytes(run.report, report_section(run, cfg, inp).encode("utf-8"), store)
    if publish:
        run.items, run.collection = publish_scenario(run, cfg, inp, client=client, progress=progress)
    return run

