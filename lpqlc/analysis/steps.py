"""The analyses of ``lpqlc analyse``, one method each, sharing the opened cubes, subregions and writers
(definitions: docs/analysis.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from lpqlc.analysis.counts import digitize
from lpqlc.analysis.inputs import TREND_KEY, AnalysisResult, Cubes, Span, regions_raster, tiles
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

__all__ = ["Analyses"]

log = logging.getLogger(__name__)


class Analyses:
    """The analyses, sharing the opened cubes, the subregions and the writers."""

    def __init__(self, cfg: PipelineConfig, cubes: Cubes, res: AnalysisResult, out: str, client: Any = None):
        self.cfg, self.cubes, self.res, self.out = cfg, cubes, res, out
        self.client = client  # the Dask client the control run's erosion units go to (None: in process)
        self.acfg = cfg.science.analysis
        self.codes = sorted(cfg.science.landcover.classes)
        self.names = [cfg.science.landcover.classes[c] for c in self.codes]
        self.colours = [cfg.science.landcover.colours[c] for c in self.codes]
        self.store = cfg.store
        self.regions, self.region_names = regions_raster(cfg, cubes)
        g = cfg.science.rusle.grades
        self.eroded_from = g.breaks[g.names.index(g.eroded_from) - 1] if g.names.index(g.eroded_from) else 0.0

    # -- writers -------------------------------------------------------------------------------
    def csv(self, table: pd.DataFrame, name: str, title: str) -> None:
        url = f"{self.out}/{name}"
        write_bytes(url, table.to_csv(index=False, float_format="%.6g").encode(), self.store)
        self.res.files.append(url)
        self.res.tables[name.removesuffix(".csv")] = table
        self.res.markdown.append(f"- {title}: [{name}]({name})")

    def png(self, fig: Any, name: str, title: str) -> None:
        import matplotlib.pyplot as plt

        from lpqlc.publish.preview import write_png

        self.res.files.append(write_png(fig, f"{self.out}/{name}", self.store))
        plt.close(fig)
        self.res.markdown.append(f"![{title}]({name})")

    def cog(self, data: np.ndarray, gbox: Any, name: str, **kw: Any) -> bytes:
        from lpqlc.publish.cog import cog_bytes

        blob = cog_bytes(data, gbox.transform, gbox.crs.to_wkt(), **kw)
        write_bytes(f"{self.out}/{name}", blob, self.store)
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
        for tile, gbox, (ys, xs) in tiles(self.cubes):
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
        from lpqlc.publish.catalog import publish_item
        from lpqlc.publish.collections import collection_id, item_assets
        from lpqlc.publish.items import Period, build_item, item_id
        from lpqlc.publish.products import software_versions
        from lpqlc.publish.refresh import publish_analysis_collection

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
        for tile, gbox, (ys, xs) in tiles(self.cubes):
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
                store=self.store,
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
        publish_analysis_collection(self.cfg, TREND_KEY)  # linked from the root, upserted into the API
        assert counts is not None
        table = counts.to_dataframe().reset_index()
        table["share_pct"] = 100 * table["area_km2"] / table.groupby("region")["area_km2"].transform("sum")
        self.res.markdown += [
            "## Trends of annual erosion",
            "",
            f"Mann–Kendall ({method}, α = {tcfg.alpha}) and Theil–Sen over {span.label}; "
            f"maps published as collection `{cid}` ({len(self.res.items)} items).",
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
        for tile, gbox, (ys, xs) in tiles(self.cubes):
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

    def control(self) -> str | None:
        """Erosion of the last complete year recomputed with quarter ``analysis.control_quarter``'s land
        cover for all four quarters (``lpqlc.erosion.run.run_erosion`` on copies of that quarter's
        published land-cover COGs, the pipeline's own composites for FVC and its slope/LS/K tiles), beside
        the published result; definitions in docs/analysis.md "Control run"."""
        from lpqlc.erosion.run import run_erosion
        from lpqlc.grid import OutputGrid
        from lpqlc.pipeline import work_dirs
        from lpqlc.publish.catalog import asset_url, item_url, read_item
        from lpqlc.publish.collections import collection_id
        from lpqlc.publish.items import Period, item_id
        from lpqlc.storage import read_bytes

        lq = set(self.cubes.quarters("landcover"))
        years = [y for y in self.cubes.years() if all(Quarter(y, i) in lq for i in (1, 2, 3, 4))]
        if not years:
            return "needs a year with all four quarters of land cover and its annual erosion published"
        year = years[-1]
        quarters = [Quarter(year, i) for i in (1, 2, 3, 4)]
        if OutputGrid.from_config(self.cfg).grid.resolution_for(quarters[0]) != self.cubes.res:
            return f"{year} is not on the {self.cubes.res:g} m grid analysed"
        comp_dir = work_dirs(self.cfg)["composites"]
        missing = [str(q) for q in quarters if not exists(f"{comp_dir}/{q}/composite.json", self.store)]
        if missing:
            return (
                f"no composites of {', '.join(missing)} under {comp_dir} (the control run reuses their FVC)"
            )
        cq = Quarter(year, self.acfg.control_quarter)
        root = self.cfg.publish_url.rstrip("/")
        cid = collection_id(self.cfg, "landcover")
        work = f"{self.out}/control"
        for tile, _, _ in tiles(self.cubes):
            item = read_item(item_url(root, cid, item_id(cid, Period.of(cq), tile)), self.store)
            if item is None:
                return f"land cover of {cq} tile {tile} is not published"
            blob = read_bytes(asset_url(root, item, "landcover"), self.store)
            for q in quarters:  # rewritten only when changed: a rerun reuses the control's erosion units
                url = f"{work}/landcover/{q}/{tile}.tif"
                if not exists(url, self.store) or read_bytes(url, self.store) != blob:
                    write_bytes(url, blob, self.store)
        run = run_erosion(
            self.cfg,
            quarters,
            f"{work}/erosion",
            landcover=f"{work}/landcover/{{quarter}}/{{tile}}.tif",
            composites=comp_dir,
            factors=True,  # R, K, LS, C, P beside A: what was held fixed and what changed can be checked
            client=self.client,
            static=work_dirs(self.cfg)["erosion"],  # the pipeline's slope, LS, K tiles: reused as they are
        )
        control = pd.read_csv(run.summary_csv)
        control = control[(control.year == year) & (control.period == "annual")]
        annual = self.cubes.ds["erosion-annual"]["erosion"].isel(
            time=self.cubes.years().index(year), drop=True
        )
        share = eroded_share(annual.where(np.isfinite(annual)), self.eroded_from).compute()
        whole = control[control.subregion == "ALL"]
        table = pd.DataFrame(
            [
                {
                    "year": year,
                    "control_quarter": str(cq),
                    "quarterly_mean_t_hm2_a": float(share["mean_t_hm2_a"]),
                    "control_mean_t_hm2_a": float(whole["mean_erosion"].iloc[0]) if len(whole) else np.nan,
                    "quarterly_eroded_pct": float(share["eroded_pct"]),
                    "control_eroded_pct": float(whole["eroded_area_pct"].iloc[0]) if len(whole) else np.nan,
                }
            ]
        )
        table["difference_pct"] = 100 * (table.control_mean_t_hm2_a / table.quarterly_mean_t_hm2_a - 1)
        self.res.markdown += [f"## Control run: {year} with {cq}'s land cover for every quarter", ""]
        self.csv(table, "control.csv", "annual erosion with quarterly vs one quarter's land cover")
        self.res.markdown.append("")
        return None

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
            ref = pd.read_csv(io.BytesIO(read_bytes(reference, self.store)))
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
