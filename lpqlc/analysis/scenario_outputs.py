"""The scenario's plots, report section and STAC publication (the ``<prefix>-scenario`` collection,
items per tile with lineage to the baseline land-cover and erosion items), through lpqlc.publish."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lpqlc.composite.run import tile_id
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.publish.catalog import item_url
from lpqlc.publish.collections import collection_id
from lpqlc.publish.items import Period, item_id
from lpqlc.publish.preview import mosaic_tiles, write_png
from lpqlc.publish.products import ItemSpec, publish_items
from lpqlc.publish.refresh import publish_analysis_collection
from lpqlc.storage import Store, exists, read_bytes

if TYPE_CHECKING:
    from lpqlc.analysis.scenario_inputs import ScenarioInputs
    from lpqlc.analysis.scenario_run import ScenarioRun

__all__ = ["plots", "report_section", "publish_scenario", "SCENARIO"]

#: The scenario's product key: collection ``<publish.collection_prefix>-scenario``,
#: template stac/scenario.json.
SCENARIO = "scenario"


def _class_mosaic(
    urls: dict[tuple[int, int], str],
    shape: tuple[int, int],
    tile_size: int,
    store: Store | None,
    max_px: int = 1200,
) -> np.ndarray:
    """(y, x) uint8 mosaic of class tiles, decimated by nearest (mosaic_tiles averages, which mixes codes)."""
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile

    step = max(1, int(np.ceil(max(shape) / max_px)))
    ny, nx = (int(np.ceil(s / step)) for s in shape)
    canvas = np.zeros((ny, nx), np.uint8)
    for (iy, ix), url in urls.items():
        with MemoryFile(read_bytes(url, store)) as mem, mem.open() as src:
            h, w = int(np.ceil(src.height / step)), int(np.ceil(src.width / step))
            data = src.read(1, out_shape=(h, w), resampling=Resampling.nearest)
        y0, x0 = iy * tile_size // step, ix * tile_size // step
        canvas[y0 : y0 + h, x0 : x0 + w] = data[: ny - y0, : nx - x0]
    return canvas


def plots(run: ScenarioRun, cfg: PipelineConfig, grid: OutputGrid) -> list[str]:
    """``plots/maps.png`` (land cover and soil loss before/after) and ``plots/erosion_by_subregion.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    store = cfg.store
    q = run.quarter
    full = grid.geobox(q)
    index = [i for i, _ in grid.iter_tiles(q)]
    ts = grid.grid.tile_size

    def urls(name: str) -> dict[tuple[int, int], str]:
        return {i: f"{run.prefix}/{tile_id(i)}/{name}.tif" for i in index}

    classes, colours = cfg.science.landcover.classes, cfg.science.landcover.colours
    codes = sorted(classes)
    lut = np.zeros(256, np.int64)
    lut[codes] = np.arange(1, len(codes) + 1)
    cmap = ListedColormap(["#ffffff"] + [colours[c] for c in codes])
    a0, a1 = (
        mosaic_tiles(urls("erosion_baseline"), full, ts, store),
        mosaic_tiles(urls("erosion"), full, ts, store),
    )
    vmax = float(np.nanpercentile(a0, 98)) if np.isfinite(a0).any() else 1.0
    unit = "t/(hm²·a)" if run.period == "year" else "t/(hm²·q)"
    fig, axes = plt.subplots(2, 2, figsize=(9, 8.5))
    for ax, name, title in (
        (axes[0, 0], "baseline_landcover", f"Land cover {q}"),
        (axes[0, 1], "landcover", "Optimised land cover"),
    ):
        ax.imshow(
            lut[_class_mosaic(urls(name), full.shape.yx, ts, store)],
            cmap=cmap,
            vmin=0,
            vmax=len(codes),
            interpolation="nearest",
        )
        ax.set_title(title, fontsize=10)
    for ax, img, title in ((axes[1, 0], a0, "Soil loss, baseline"), (axes[1, 1], a1, "Soil loss, scenario")):
        im = ax.imshow(img, cmap="YlOrBr", vmin=0, vmax=max(vmax, 1e-6))
        ax.set_title(title, fontsize=10)
    for ax in axes.ravel():
        ax.axis("off")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label=unit)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in codes]
    fig.legend(
        handles, [classes[c] for c in codes], loc="upper center", ncol=len(codes), fontsize=7, frameon=False
    )
    out = [write_png(fig, f"{run.prefix}/plots/maps.png", store)]
    s = run.summary
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    x = np.arange(len(s))
    ax.bar(x - 0.2, s.mean_erosion_baseline, 0.4, label="baseline", color="#a0522d")
    ax.bar(x + 0.2, s.mean_erosion_scenario, 0.4, label="scenario", color="#1a9641")
    ax.set_xticks(x, s.subregion)
    ax.set_ylabel(f"mean soil loss, {unit}")
    ax.set_title(f"Restoration scenario {q}: mean soil loss before and after", fontsize=10)
    ax.legend(fontsize=8)
    out.append(write_png(fig, f"{run.prefix}/plots/erosion_by_subregion.png", store))
    return out


def report_section(run: ScenarioRun, cfg: PipelineConfig, inp: ScenarioInputs) -> str:
    """A Markdown section (``## Restoration scenario …``) with the tables and plots, links relative to
    the run folder."""
    s = cfg.science.analysis.scenario
    whole = run.summary[run.summary.subregion == "ALL"].iloc[0]
    unit = "t/(hm²·a)" if run.period == "year" else "t/(hm²·q)"
    span = f"the year {run.quarter.year}" if run.period == "year" else "the quarter"
    md = [
        f"## Restoration scenario {run.quarter}",
        "",
        f"Land cover of {run.quarter} reallocated by suitability (Forest > Grassland > Cropland; slopes in "
        f"{s.slope_unit}), RUSLE rerun with the same R, K, LS and P rules "
        f"({span}); converted pixels' C "
        f"from {'the median FVC of their new class in their subregion and quarter' if s.converted_fvc == 'subregion_median' else 'their own FVC'}. "  # noqa: E501
        f"Inputs: {inp.landcover_source}.",
        "",
        f"AOI mean soil loss: {whole.mean_erosion_baseline:.3g} → {whole.mean_erosion_scenario:.3g} {unit} "
        f"({whole.change_pct:+.1f} %); {whole.converted_km2:.3g} km² converted.",
        "",
        "```",
        run.summary.drop(columns=["unit", "period"]).round(4).to_string(index=False),
        "```",
        "",
        "Reallocation matrix (km², rows: baseline, columns: scenario):",
        "",
        "```",
        run.matrix.round(4).to_string(),
        "```",
        "",
        "![maps](plots/maps.png)",
        "![soil loss by subregion](plots/erosion_by_subregion.png)",
        "",
        "Tables: [summary.csv](summary.csv), [reallocation.csv](reallocation.csv)",
        "",
    ]
    return "\n".join(md)


def publish_scenario(
    run: ScenarioRun, cfg: PipelineConfig, inp: ScenarioInputs, *, client: Any = None, progress: Any = None
) -> tuple[list[Any], str]:
    """Publish one item per tile in ``<prefix>-scenario`` (assets landcover, erosion, erosion_baseline and,
    for a year, grade) with ``lpqlc:inputs`` naming the baseline land-cover and erosion items that exist;
    then write the collection and relink the root catalog. Returns the outcomes and the collection URL."""

    store = cfg.store
    root = cfg.publish_url.rstrip("/")
    s = cfg.science.analysis.scenario
    q = run.quarter
    year = run.period == "year"
    ero_key, ero_period = ("erosion-annual", Period.of(q.year)) if year else ("erosion", Period.of(q))
    ero_cid, lc_cid = collection_id(cfg, ero_key), collection_id(cfg, "landcover")
    settings = s.model_dump(mode="json")
    specs = []
    for t in run.tiles:
        lc_id, ero_id = item_id(lc_cid, Period.of(q), t), item_id(ero_cid, ero_period, t)
        inputs = tuple(
            i for i, c in ((lc_id, lc_cid), (ero_id, ero_cid)) if exists(item_url(root, c, i), store)
        )
        sources = {k: f"{run.prefix}/{t}/{k}.tif" for k in ("landcover", "erosion", "erosion_baseline")}
        lc_src = lc_id if lc_id in inputs else inp.landcover_source
        ero_src = ero_id if ero_id in inputs else "no published erosion item"
        if year:
            sources["grade"] = f"{run.prefix}/{t}/grade.tif"
        lineage = (
            f"Land cover of {q} ({lc_src}) reallocated by suitability "
            f"(SCIENCE.md §4, paper §5.2; rules in docs/scenario.md), then RUSLE A = R·K·LS·C·P over "
            f"{'the year ' + str(q.year) if year else str(q)} with the baseline's R, K, LS and P; baseline "
            f"soil loss recomputed the same way ({ero_src})"
        )
        extra = {"lpqlc:scenario": {"quarter": str(q), "period": run.period, "settings": settings}}
        specs.append(ItemSpec(SCENARIO, str(q), t, sources, lineage=lineage, inputs=inputs, extra=extra))
    outcomes = publish_items(cfg, specs, client=client, progress=progress, stage="publish scenario")
    url = publish_analysis_collection(cfg, SCENARIO)
    return outcomes, url
