"""``lpqlc analyse``: the paper's analyses (SCIENCE.md §4) on the published products, written as CSV,
PNG, COG maps and a markdown section, with the trend maps published as STAC items.

The inputs are the kerchunk datacubes of the published ``landcover``, ``erosion`` and
``erosion-annual`` collections at one resolution (the finest published unless given): lazy
(time, y, x) arrays whose chunks are the COG blocks. Tables are Dask reductions computed once each;
maps are computed one output tile at a time (the unit the products are published in), so memory
stays bounded by a tile's series whatever the AOI. See docs/analysis.md for the definitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from lpqlc.analysis.counts import digitize, rasterize_blocks
from lpqlc.analysis.landcover import area_per_class, net_gain, relative_change, transitions, when_maps
from lpqlc.analysis.soilloss import (
    ASPECT_SECTORS,
    aspect_sector,
    attribution,
    cumulative,
    eroded_share,
    reference_comparison,
    terrain_table,
    top_threshold,
    trend_areas,
)
from lpqlc.analysis.trend import mann_kendall
from lpqlc.config import PipelineConfig
from lpqlc.errors import ConfigError
from lpqlc.quarter import Quarter
from lpqlc.storage import exists, write_bytes

__all__ = ["ANALYSES", "AnalysisResult", "run_analyses", "TREND_KEY"]

log = logging.getLogger(__name__)

#: The analyses ``--what`` can name, in the order they run.
ANALYSES = ("areas", "transitions", "trends", "cumulative", "terrain", "attribution", "control", "reference")
#: Product key of the trend collection (template ``stac/trend.json``).
TREND_KEY = "trend"


@dataclass
class AnalysisResult:
    """What ``lpqlc analyse`` wrote and what it skipped (analysis → reason)."""

    out: str
    files: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Span:
    """The period of a trend item: whole years ``first``–``last`` (duck-types publish.items.Period)."""

    first: int
    last: int

    @property
    def label(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def start(self) -> datetime:
        return datetime(self.first, 1, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(self.last + 1, 1, 1, tzinfo=UTC) - timedelta(seconds=1)

    @property
    def middle(self) -> datetime:
        return self.start + (self.end + timedelta(seconds=1) - self.start) / 2


class _Cubes:
    """The published datacubes of one resolution, opened lazily, with their grid."""

    def __init__(self, cfg: PipelineConfig, resolution: float | None):
        from lpqlc.publish.collections import collection_id
        from lpqlc.publish.datacube import datacube_name, open_datacube

        self.cfg = cfg
        endpoint = cfg.storage.endpoint_url
        root = cfg.publish_url.rstrip("/")

        def url(key: str, res: float) -> str:
            return f"{root}/{collection_id(cfg, key)}/{datacube_name(res)}"

        if resolution is None:
            have = [
                r.resolution for r in cfg.grid.resolutions if exists(url("landcover", r.resolution), endpoint)
            ]
            if not have:
                raise ConfigError(f"no published land-cover datacube under {root}: run `lpqlc run` first")
            resolution = min(have)
        self.res = float(resolution)
        self.pixel_km2 = self.res * self.res / 1e6
        self.ds: dict[str, xr.Dataset] = {}
        for key in ("landcover", "erosion", "erosion-annual"):
            if exists(url(key, self.res), endpoint):
                self.ds[key] = open_datacube(url(key, self.res), endpoint)
        if "landcover" not in self.ds:
            raise ConfigError(f"no published land-cover datacube at {self.res:g} m under {root}")
        gt = [float(v) for v in self.ds["landcover"]["spatial_ref"].attrs["GeoTransform"].split()]
        from affine import Affine

        self.transform = Affine(gt[1], gt[2], gt[0], gt[4], gt[5], gt[3])
        self.crs_wkt = self.ds["landcover"]["spatial_ref"].attrs["crs_wkt"]

    def quarters(self, key: str) -> list[Quarter]:
        return [Quarter.of(pd.Timestamp(t).to_pydatetime()) for t in self.ds[key]["time"].values]

    def years(self) -> list[int]:
        return (
            [pd.Timestamp(t).year for t in self.ds["erosion-annual"]["time"].values]
            if "erosion-annual" in self.ds
            else []
        )

    def geobox(self) -> Any:
        from odc.geo.geobox import GeoBox

        lc = self.ds["landcover"]["landcover"]
        return GeoBox((lc.sizes["y"], lc.sizes["x"]), self.transform, self.crs_wkt)


def _regions(cfg: PipelineConfig, cubes: _Cubes) -> tuple[xr.DataArray | None, list[str]]:
    """The subregion raster (1…R) on the cubes' grid, built block by block; (None, []) without subregions."""
    from odc.geo import geom

    from lpqlc.erosion.inputs import subregion_features
    from lpqlc.errors import LpqlcError

    try:
        features = subregion_features(cfg)
    except (LpqlcError, OSError) as exc:
        log.warning("no subregions (%s): tables cover the whole AOI only", exc)
        return None, []
    if not features:
        return None, []
    shapes = [
        (geom.Geometry(g, "EPSG:4326").to_crs(cubes.crs_wkt).geom, i + 1) for i, (_, g) in enumerate(features)
    ]
    like = cubes.ds["landcover"]["landcover"].isel(time=0, drop=True)
    return rasterize_blocks(shapes, like, cubes.transform), [code for code, _ in features]


def _tiles(cubes: _Cubes) -> list[tuple[str, Any, tuple[slice, slice]]]:
    """(tile id, tile GeoBox, (y, x) slices into the cubes) of the output tiles the cubes cover."""
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid

    grid = OutputGrid.from_config(cubes.cfg)
    h, w = cubes.ds["landcover"].sizes["y"], cubes.ds["landcover"].sizes["x"]
    out = []
    for index, gbox in grid.iter_tiles(cubes.res):
        t = gbox.transform
        ox = round((t.c - cubes.transform.c) / cubes.res)
        oy = round((cubes.transform.f - t.f) / cubes.res)
        th, tw = gbox.shape.yx
        if ox < 0 or oy < 0 or ox >= w or oy >= h:
            continue
        out.append((tile_id(index), gbox, (slice(oy, min(oy + th, h)), slice(ox, min(ox + tw, w)))))
    return out


def run_analyses(
    cfg: PipelineConfig,
    out: str,
    *,
    what: Sequence[str] = ANALYSES,
    reference: str | None = None,
    resolution: float | None = None,
    client: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AnalysisResult:
    """Run the analyses named in ``what`` on the published products of ``cfg``; write under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    unknown = set(what) - set(ANALYSES)
    if unknown:
        raise ConfigError(f"unknown analyses {sorted(unknown)}; choose from {', '.join(ANALYSES)}")
    out = out.rstrip("/")
    cubes = _Cubes(cfg, resolution)
    res = AnalysisResult(out=out)
    ctx = _Context(cfg, cubes, res, out)
    res.markdown += [f"# Analyses of {cfg.name} ({cubes.res:g} m)", ""]
    steps: dict[str, Callable[[], None]] = {
        "areas": ctx.areas,
        "transitions": ctx.transitions,
        "trends": ctx.trends,
        "cumulative": ctx.cumulative,
        "terrain": ctx.terrain,
        "attribution": ctx.attribution,
        "control": ctx.control,
        "reference": lambda: ctx.reference(reference),
    }
    chosen = [w for w in ANALYSES if w in what]
    for n, name in enumerate(chosen, start=1):
        log.info("analysis %s", name)
        why = steps[name]()
        if isinstance(why, str):
            res.skipped[name] = why
            res.markdown += [f"## {name}: skipped", "", why, ""]
            log.warning("analysis %s skipped: %s", name, why)
        if progress is not None:
            progress("analyse", n, len(chosen))
    url = f"{out}/analysis.md"
    write_bytes(url, "\n".join(res.markdown).encode("utf-8"), cfg.storage.endpoint_url)
    res.files.append(url)
    return res


class _Context:
    """The analyses, sharing the opened cubes, the subregions and the writers."""

    def __init__(self, cfg: PipelineConfig, cubes: _Cubes, res: AnalysisResult, out: str):
        self.cfg, self.cubes, self.res, self.out = cfg, cubes, res, out
        self.acfg = cfg.science.analysis
        self.codes = sorted(cfg.science.landcover.classes)
        self.names = [cfg.science.landcover.classes[c] for c in self.codes]
        self.colours = [cfg.science.landcover.colours[c] for c in self.codes]
        self.endpoint = cfg.storage.endpoint_url
        self.regions, self.region_names = _regions(cfg, cubes)
        g = cfg.science.rusle.grades
        self.eroded_from = g.breaks[g.names.index(g.eroded_from) - 1] if g.names.index(g.eroded_from) else 0.0

    # -- writers -------------------------------------------------------------------------------
    def csv(self, table: pd.DataFrame, name: str, title: str) -> None:
        url = f"{self.out}/{name}"
        write_bytes(url, table.to_csv(index=False, float_format="%.6g").encode(), self.endpoint)
        self.res.files.append(url)
        self.res.tables[name.removesuffix(".csv")] = table
        self.res.markdown.append(f"- {title}: [{name}]({name})")

    def png(self, fig: Any, name: str, title: str) -> None:
        import matplotlib.pyplot as plt

        from lpqlc.publish.preview import write_png

        self.res.files.append(write_png(fig, f"{self.out}/{name}", self.endpoint))
        plt.close(fig)
        self.res.markdown.append(f"![{title}]({name})")

    def cog(self, data: np.ndarray, gbox: Any, name: str, **kw: Any) -> bytes:
        from lpqlc.publish.cog import cog_bytes

        blob = cog_bytes(data, gbox.transform, gbox.crs.to_wkt(), **kw)
        write_bytes(f"{self.out}/{name}", blob, self.endpoint)
        self.res.files.append(f"{self.out}/{name}")
        return blob

    def lc_at(self, quarters: Sequence[Quarter]) -> xr.DataArray:
        have = self.cubes.quarters("landcover")
        return self.cubes.ds["landcover"]["landcover"].isel(time=[have.index(q) for q in quarters])

    # -- analyses ------------------------------------------------------------------------------
    def areas(self) -> str | None:
        lc = self.cubes.ds["landcover"]["landcover"]
        labels = [str(q) for q in self.cubes.quarters("landcover")]
        area = area_per_class(
            lc.assign_coords(time=labels), self.codes, self.cubes.pixel_km2, self.regions, self.region_names
        )
        area = area.compute()
        rel = relative_change(area)
        self.res.markdown += ["## Area per class", ""]
        table = (
            area.to_dataframe()
            .reset_index()
            .merge(rel.to_dataframe().reset_index(), on=["time", "region", "class"])
        )
        self.csv(
            table,
            "areas.csv",
            "area per class, quarter and region (km²; change relative to the first quarter)",
        )
        first, last = self._pair(labels)
        gain = net_gain(area, first, last).to_dataframe("net_gain_km2").reset_index()
        self.csv(gain, "net_gain.csv", f"net gain per class {first} → {last} (km²)")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.8))
        whole = area.sel(region="all")
        ax.stackplot(range(len(labels)), whole.T.values, labels=self.names, colors=self.colours)
        ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
        ax.set_ylabel("area, km²")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        self.png(fig, "areas.png", "area per class")
        self.res.markdown.append("")
        return None

    def _pair(self, labels: list[str]) -> tuple[str, str]:
        wanted = [q for q in self.acfg.transition_quarters if q in labels]
        return (wanted[0], wanted[-1]) if len(wanted) >= 2 else (labels[0], labels[-1])

    def _stages(self) -> list[Quarter] | str:
        have = self.cubes.quarters("landcover")
        stages = [Quarter.parse(q) for q in self.acfg.transition_quarters if Quarter.parse(q) in have]
        if len(stages) < 2:
            return (
                f"fewer than two of analysis.transition_quarters {list(self.acfg.transition_quarters)} are "
                f"published (published: {have[0]}–{have[-1]})"
            )
        return stages

    def _sankey(self, matrices: list[np.ndarray], stages: list[str], name: str, title: str) -> None:
        import matplotlib.pyplot as plt

        from lpqlc.report import _sankey

        fig, axes = plt.subplots(1, len(matrices), figsize=(5.5 * len(matrices), 5))
        for ax, m, a, b in zip(np.atleast_1d(axes), matrices, stages[:-1], stages[1:], strict=True):
            _sankey(ax, m, self.names, self.colours, a, b)
        fig.suptitle(title, fontsize=10)
        self.png(fig, name, title)

    def transitions(self) -> str | None:
        stages = self._stages()
        if isinstance(stages, str):
            return stages
        lc = self.lc_at(stages)
        mats = [
            transitions(
                lc.isel(time=i),
                lc.isel(time=i + 1),
                self.codes,
                self.cubes.pixel_km2,
                self.regions,
                self.region_names,
            )
            for i in range(len(stages) - 1)
        ]
        mats = list(dask.compute(*mats))
        self.res.markdown += ["## Transitions", ""]
        rows = []
        for a, b, m in zip(stages[:-1], stages[1:], mats, strict=True):
            df = m.to_dataframe().reset_index()
            rows.append(df.assign(start=str(a), end=str(b)))
        self.csv(pd.concat(rows), "transitions.csv", "transition matrices per stage and region (km²)")
        self._sankey(
            [m.sel(region="all").values for m in mats],
            [str(s) for s in stages],
            "transitions_sankey.png",
            "Land-cover transitions " + " → ".join(map(str, stages)),
        )
        # "when" maps, per output tile
        quarters = self.cubes.quarters("landcover")
        labels = [q.year * 10 + q.q for q in quarters]
        lc_all = self.cubes.ds["landcover"]["landcover"]
        for tile, gbox, (ys, xs) in _tiles(self.cubes):
            for code in self.acfg.when_classes:
                w = when_maps(lc_all.isel(y=ys, x=xs), code, labels).compute()
                for kind in ("gain", "loss"):
                    self.cog(
                        w[kind].values.astype(np.int32),
                        gbox,
                        f"when/{kind}-{code}-{tile}.tif",
                        nodata=0,
                        overview_resampling="nearest",
                    )
        self.res.markdown += [
            f"- when maps (first quarter, YYYYQ, of lasting gain/loss of classes "
            f"{list(self.acfg.when_classes)}): `when/*.tif`",
            "",
        ]
        return None

    def trends(self) -> str | None:
        years = self.cubes.years()
        need = self.acfg.trend_min_years
        if len(years) < need:
            return f"{len(years)} published years, analysis.trend_min_years is {need}"
        from lpqlc.publish.catalog import list_items, publish_item, write_collection
        from lpqlc.publish.collections import collection_doc, collection_id, item_assets
        from lpqlc.publish.items import Period, build_item, item_id
        from lpqlc.publish.products import software_versions

        tcfg = self.acfg.trend
        method = "hamed_rao" if tcfg.hamed_rao else "original"
        annual = self.cubes.ds["erosion-annual"]["erosion"].assign_coords(time=years).rename(time="year")
        annual = annual.where(np.isfinite(annual))
        cid = collection_id(self.cfg, TREND_KEY)
        root = self.cfg.publish_url.rstrip("/")
        span = Span(years[0], years[-1])
        tmpl = item_assets(self.cfg, TREND_KEY)
        software = software_versions("numpy", "scipy", "xarray", "dask")
        src = collection_id(self.cfg, "erosion-annual")
        colours = {int(c["value"]): "#" + c["color_hint"] for c in tmpl["trend"]["classification:classes"]}
        counts = None
        for tile, gbox, (ys, xs) in _tiles(self.cubes):
            ds = mann_kendall(annual.isel(y=ys, x=xs), "year", tcfg.alpha, method, need).compute()
            tested = ds["n"].values >= need
            cls = np.where(tested, ds["trend"].values.astype(np.int16) + 2, 0).astype(np.uint8)
            blobs = {
                "slope": self.cog(
                    ds["slope"].values.astype(np.float32),
                    gbox,
                    f"trend/{tile}/slope.tif",
                    nodata=float("nan"),
                ),
                "p": self.cog(
                    ds["p"].values.astype(np.float32), gbox, f"trend/{tile}/p.tif", nodata=float("nan")
                ),
                "trend": self.cog(
                    cls,
                    gbox,
                    f"trend/{tile}/trend.tif",
                    nodata=0,
                    colormap=colours,
                    overview_resampling="nearest",
                ),
            }
            inputs = [item_id(src, Period.of(y), tile) for y in years]
            lineage = (
                f"Mann–Kendall ({method}, alpha {tcfg.alpha}) and Theil–Sen slope of annual soil loss "
                f"{span.label} ({len(years)} years; at least {need} valid per pixel) from {src}"
            )

            def make(
                version: int,
                assets: Any,
                created: datetime,
                updated: datetime,
                tile: str = tile,
                gbox: Any = gbox,
                inputs: list[str] = inputs,
                lineage: str = lineage,
            ) -> dict[str, Any]:
                return build_item(
                    collection=cid,
                    period=span,
                    tile=tile,
                    gbox=gbox,
                    assets=assets,  # type: ignore[arg-type]
                    item_assets=tmpl,
                    version=version,
                    created=created,
                    updated=updated,
                    lineage=lineage,
                    inputs=inputs,
                    software=software,
                    extra={"lpqlc:trend_method": method, "lpqlc:alpha": tcfg.alpha},
                )

            outcome = publish_item(
                root,
                cid,
                item_id(cid, span, tile),
                blobs,
                make,
                inputs=inputs,  # type: ignore[arg-type]
                endpoint=self.endpoint,
                superseded=self.cfg.publish.superseded,
            )
            self.res.items.append(outcome.url)
            reg = None if self.regions is None else self.regions.isel(y=ys, x=xs).compute()
            ta = trend_areas(
                xr.DataArray(cls.astype(np.int16) - 2, dims=("y", "x")),
                self.cubes.pixel_km2,
                reg,
                self.region_names,
            )["area_km2"]
            counts = ta if counts is None else counts + ta
        items = list_items(root, cid, self.endpoint)
        write_collection(root, collection_doc(self.cfg, TREND_KEY, items), items, self.endpoint)
        assert counts is not None
        table = counts.to_dataframe().reset_index()
        table["share_pct"] = 100 * table["area_km2"] / table.groupby("region")["area_km2"].transform("sum")
        self.res.markdown += [
            "## Trends of annual erosion",
            "",
            f"Mann–Kendall ({method}, α = {tcfg.alpha}) and Theil–Sen over {span.label}; "
            f"maps published as collection `{cid}` ({len(items)} items).",
        ]
        self.csv(
            table, "trend_areas.csv", "area with a significant decrease / no trend / increase per region"
        )
        self.res.markdown.append("")
        return None

    def cumulative(self) -> str | None:
        years = self.cubes.years()
        if not years:
            return "no published annual erosion"
        annual = self.cubes.ds["erosion-annual"]["erosion"].assign_coords(time=years).rename(time="year")
        annual = annual.where(np.isfinite(annual))
        cum = cumulative(annual)
        total = 0.0
        n = 0
        for tile, gbox, (ys, xs) in _tiles(self.cubes):
            c = cum.isel(y=ys, x=xs).values.astype(np.float32)
            self.cog(c, gbox, f"cumulative/{tile}.tif", nodata=float("nan"))
            total += float(np.nansum(c))
            n += int(np.isfinite(c).sum())
        mean = total / n if n else float("nan")
        self.res.markdown += [
            "## Cumulative erosion",
            "",
            f"Mean cumulative soil loss {years[0]}–{years[-1]}: {mean:.2f} t/hm² (maps `cumulative/*.tif`).",
        ]
        table = pd.DataFrame(
            [{"first_year": years[0], "last_year": years[-1], "mean_t_hm2": mean, "pixels": n}]
        )
        self.csv(table, "cumulative.csv", "mean cumulative soil loss")
        stages = self._stages()
        if isinstance(stages, str):
            self.res.markdown += [f"Top-eroded transitions skipped: {stages}", ""]
            return None
        frac = self.acfg.top_eroded_fraction
        thr = top_threshold(cum, frac)
        lc = self.lc_at([stages[0], stages[-1]])
        m = transitions(
            lc.isel(time=0), lc.isel(time=1), self.codes, self.cubes.pixel_km2, mask=cum >= thr
        ).compute()
        df = (
            m.sel(region="all")
            .to_dataframe()
            .reset_index()
            .assign(start=str(stages[0]), end=str(stages[-1]), threshold_t_hm2=thr)
        )
        self.csv(
            df, "top_eroded_transitions.csv", f"transitions within the top {100 * frac:g} % most eroded area"
        )
        self._sankey(
            [m.sel(region="all").values],
            [str(stages[0]), str(stages[-1])],
            "top_eroded_sankey.png",
            f"Transitions in the top {100 * frac:g} % most eroded area (≥ {thr:.1f} t/hm²)",
        )
        self.res.markdown.append("")
        return None

    def terrain(self) -> str | None:
        from lpqlc.erosion.inputs import load_dem
        from lpqlc.erosion.terrain import aspect_radians, slope_degrees
        from lpqlc.errors import LpqlcError

        years = self.cubes.years()
        if not years:
            return "no published annual erosion"
        year = self.acfg.terrain_year or years[-1]
        if year not in years:
            return f"analysis.terrain_year {year} is not published ({years[0]}–{years[-1]})"
        try:
            dem = load_dem(self.cfg, self.cubes.geobox())
        except (LpqlcError, OSError) as exc:
            return f"no DEM: {exc}"
        ero = self.cubes.ds["erosion-annual"]["erosion"].isel(time=years.index(year), drop=True)
        ero = ero.where(np.isfinite(ero)).chunk(dem.chunksizes)
        ero = ero.assign_coords(y=dem.y, x=dem.x)
        slope = slope_degrees(dem)
        aspect = (np.degrees(aspect_radians(dem)) % 360).assign_coords(y=dem.y, x=dem.x)
        breaks = list(self.acfg.slope_breaks)
        s = slope if self.acfg.slope_unit == "degree" else 100 * np.tan(np.radians(slope))
        unit = "°" if self.acfg.slope_unit == "degree" else "%"
        eb = list(self.acfg.elevation_breaks_m)
        tables = dask.compute(
            terrain_table(ero, digitize(s, breaks), len(breaks) + 1, self.eroded_from, self.cubes.pixel_km2),
            terrain_table(
                ero,
                aspect_sector(aspect, slope, self.acfg.flat_slope_deg),
                9,
                self.eroded_from,
                self.cubes.pixel_km2,
            ),
            terrain_table(ero, digitize(dem, eb), len(eb) + 1, self.eroded_from, self.cubes.pixel_km2),
        )
        self.res.markdown += [f"## Erosion by terrain ({year})", ""]
        for (kind, labels), t in zip(
            (
                ("slope", _bin_labels(breaks, unit)),
                ("aspect", list(ASPECT_SECTORS)),
                ("elevation", _bin_labels(eb, " m")),
            ),
            tables,
            strict=True,
        ):
            df = t.assign_coords(bin=labels).to_dataframe().reset_index().rename(columns={"bin": kind})
            self.csv(
                df.assign(year=year), f"terrain_{kind}.csv", f"erosion and eroded share per {kind} class"
            )
        self.res.markdown.append("")
        return None

    def attribution(self) -> str | None:
        if "erosion" not in self.cubes.ds:
            return "no published quarterly erosion"
        eq = self.cubes.quarters("erosion")
        lq = set(self.cubes.quarters("landcover"))
        years = sorted(
            {
                q.year
                for q in eq
                if all(Quarter(q.year, i) in eq and Quarter(q.year, i) in lq for i in (1, 2, 3, 4))
            }
        )
        y0, y1 = self.acfg.attribution_years or ((years[0], years[-1]) if len(years) >= 2 else (None, None))
        if y0 is None or y0 not in years or y1 not in years:
            return f"needs two years with all four quarters of land cover and erosion (complete: {years})"
        ero = self.cubes.ds["erosion"]["erosion"]
        lc = self.cubes.ds["landcover"]["landcover"]
        lcq = self.cubes.quarters("landcover")
        parts = []
        for i in (1, 2, 3, 4):
            a, b = Quarter(y0, i), Quarter(y1, i)
            e0, e1 = ero.isel(time=eq.index(a), drop=True), ero.isel(time=eq.index(b), drop=True)
            parts.append(
                attribution(
                    lc.isel(time=lcq.index(a), drop=True),
                    lc.isel(time=lcq.index(b), drop=True),
                    e0.where(np.isfinite(e0)),
                    e1.where(np.isfinite(e1)),
                    self.codes,
                )
            )
        parts = list(dask.compute(*parts))
        rows = []
        for i, p in enumerate(parts, start=1):
            rows.append(p.to_dataframe().reset_index().assign(period=f"Q{i}", units="t/(hm²·q)"))
        annual = sum(p[["gain_dA", "loss_dA", "now_A"]] for p in parts)
        rows.append(annual.to_dataframe().reset_index().assign(period="annual", units="t/(hm²·a)"))
        table = pd.concat(rows)
        table.insert(0, "years", f"{y0}-{y1}")
        self.res.markdown += [f"## Attribution of erosion change to land-cover change ({y0} → {y1})", ""]
        self.csv(
            table,
            "attribution.csv",
            "mean erosion change on gain / loss pixels and mean erosion now, per class",
        )
        self.res.markdown.append("")
        return None

    def control(self) -> str:
        return (
            "the control run (erosion recomputed with one quarter's land cover for the whole year) needs a "
            "hook in lpqlc.erosion.run that is not there yet"
        )

    def reference(self, reference: str | None) -> str | None:
        years = self.cubes.years()
        if not years:
            return "no published annual erosion"
        annual = self.cubes.ds["erosion-annual"]["erosion"]
        share = eroded_share(annual.where(np.isfinite(annual)), self.eroded_from).compute()
        ours = pd.Series(share["eroded_pct"].values, index=years)
        self.res.markdown += ["## Eroded share per year", ""]
        self.csv(
            pd.DataFrame(
                {"year": years, "mean_t_hm2_a": share["mean_t_hm2_a"].values, "eroded_pct": ours.values}
            ),
            "eroded_share.csv",
            f"mean erosion and eroded share (A ≥ {self.eroded_from:g} t/(hm²·a)) per year",
        )
        if reference is None:
            self.res.markdown.append("")
            return "no --reference table given (an example: lpqlc/data/bulletin_eroded.csv)"
        import io

        from lpqlc.storage import read_bytes

        try:
            ref = pd.read_csv(io.BytesIO(read_bytes(reference, self.endpoint)))
            table, mae = reference_comparison(ours, ref)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"--reference {reference}: {exc}") from None
        self.csv(table, "reference_comparison.csv", f"eroded share against {reference}: MAE {mae:.2f} pp")
        self.res.tables["reference_mae"] = mae
        self.res.markdown.append("")
        return None


def _bin_labels(breaks: Sequence[float], unit: str) -> list[str]:
    edges = [f"{b:g}" for b in breaks]
    return (
        [f"<{edges[0]}{unit}"]
        + [f"{a}–{b}{unit}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        + [f"≥{edges[-1]}{unit}"]
    )
