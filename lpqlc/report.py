"""A small report on published products, read back through their kerchunk datacubes: land-cover area
per class over time, mean erosion and eroded area per year, a land-cover transition Sankey, and maps.

Writes under ``out``: ``landcover_area.csv``, ``erosion_annual.csv``, ``transitions.csv``, PNGs
(``landcover_area.png``, ``erosion_annual.png``, ``transitions.png``, ``maps.png``) and ``report.md``
linking them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np

from lpqlc.config import PipelineConfig
from lpqlc.erosion.reductions import class_counts, display_image, finite_sum_count, pair_counts
from lpqlc.publish.collections import class_colours, collection_id
from lpqlc.publish.datacube import datacube_name, open_datacube
from lpqlc.publish.preview import write_png
from lpqlc.quarter import Quarter
from lpqlc.storage import exists, write_bytes

__all__ = ["Report", "make_report", "transition_matrix"]

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What the report wrote (URLs) and its headline numbers."""

    markdown: str
    files: list[str] = field(default_factory=list)
    area_km2: Any = None
    erosion: Any = None
    transitions: Any = None


def transition_matrix(first: np.ndarray, last: np.ndarray, codes: list[int]) -> np.ndarray:
    """Pixel counts (from class i at ``first`` to class j at ``last``); nodata (0) pixels are left out."""
    lut = np.full(256, -1, np.int64)
    lut[np.asarray(codes)] = np.arange(len(codes))
    a, b = lut[first.ravel()], lut[last.ravel()]
    ok = (a >= 0) & (b >= 0)
    n = len(codes)
    return np.bincount(a[ok] * n + b[ok], minlength=n * n).reshape(n, n)


def _sankey(ax: Any, matrix: np.ndarray, names: list[str], colours: list[str], left: str, right: str) -> None:
    """A two-column alluvial (Sankey) diagram of a transition matrix, drawn with matplotlib patches."""
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path

    total = matrix.sum() or 1
    gap = 0.02
    def stacks(values: np.ndarray) -> np.ndarray:
        tops = np.zeros(len(values))
        y = 1.0
        for i, v in enumerate(values):
            tops[i] = y
            y -= v / total + (gap if v else 0)
        return tops

    ltop, rtop = stacks(matrix.sum(1)), stacks(matrix.sum(0))
    lcur, rcur = ltop.copy(), rtop.copy()
    for i in range(len(names)):
        for j in range(len(names)):
            h = matrix[i, j] / total
            if not h:
                continue
            y0, y1 = lcur[i], rcur[j]
            verts = [(0.1, y0), (0.5, y0), (0.5, y1), (0.9, y1), (0.9, y1 - h), (0.5, y1 - h), (0.5, y0 - h),
                     (0.1, y0 - h), (0.1, y0)]  # fmt: skip
            codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO, Path.CURVE4, Path.CURVE4,
                     Path.CURVE4, Path.CLOSEPOLY]  # fmt: skip
            ax.add_patch(PathPatch(Path(verts, codes), facecolor=colours[i], alpha=0.45, lw=0))
            lcur[i] -= h
            rcur[j] -= h
    for tops, sums, x, align in ((ltop, matrix.sum(1), 0.1, "right"), (rtop, matrix.sum(0), 0.9, "left")):
        for i, (top, v) in enumerate(zip(tops, sums, strict=True)):
            if not v:
                continue
            h = v / total
            ax.add_patch(Rectangle((x - 0.02 if align == "right" else x, top - h), 0.02, h, color=colours[i]))
            ax.text(x - 0.03 if align == "right" else x + 0.03, top - h / 2, f"{names[i]} {100 * v / total:.1f}%",
                    ha=align, va="center", fontsize=7)  # fmt: skip
    ax.text(0.1, 1.04, left, ha="center", fontsize=9, weight="bold")
    ax.text(0.9, 1.04, right, ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(min(ltop.min(), rtop.min()) - 0.3, 1.08)
    ax.axis("off")


def make_report(cfg: PipelineConfig, out: str, *, resolution: float | None = None) -> Report:
    """Build the report from the published land-cover and erosion datacubes of ``cfg`` (one resolution:
    the finest published unless given); write it under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.colors import ListedColormap

    store = cfg.store
    root = cfg.publish_url.rstrip("/")
    res = resolution or min(r.resolution for r in cfg.grid.resolutions
                            if exists(f"{root}/{collection_id(cfg, 'landcover')}/{datacube_name(r.resolution)}", store))  # fmt: skip
    lc_ds = open_datacube(f"{root}/{collection_id(cfg, 'landcover')}/{datacube_name(res)}", store)
    lc = lc_ds["landcover"]
    classes = cfg.science.landcover.classes
    colours = cfg.science.landcover.colours
    codes = sorted(classes)
    px_km2 = res * res / 1e6
    rep = Report(markdown=f"{out}/report.md")

    def save_png(fig: Any, name: str) -> str:
        rep.files.append(write_png(fig, f"{out}/{name}", store))
        return name

    def save_csv(table: Any, name: str) -> str:
        url = f"{out}/{name}"
        write_bytes(url, table.to_csv(float_format="%.6g").encode(), store)
        rep.files.append(url)
        return name

    # every number and map of the report in one pass of Dask reductions over the datacubes' chunks
    # (lpqlc.erosion.reductions): per-chunk partial counts and sums reach the client, no AOI-sized array
    labels = [str(Quarter.of(pd.Timestamp(t).to_pydatetime())) for t in lc["time"].values]
    lazy: dict[str, Any] = {
        "counts": class_counts(lc), "matrix": pair_counts(lc.isel(time=0), lc.isel(time=-1), codes),
        "first": display_image(lc.isel(time=0)).data, "last": display_image(lc.isel(time=-1)).data,
    }  # fmt: skip
    ero_url = f"{root}/{collection_id(cfg, 'erosion-annual')}/{datacube_name(res)}"
    ds = open_datacube(ero_url, store) if exists(ero_url, store) else None
    g = cfg.science.rusle.grades
    if ds is not None:
        lazy["sum"], lazy["n"] = finite_sum_count(ds["erosion"])
        lazy["grades"] = class_counts(ds["grade"], len(g.names) + 1)
        lazy["grade_img"] = display_image(ds["grade"].isel(time=-1)).data
    got = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
    counts = np.asarray(got["counts"])[:, codes]
    area = pd.DataFrame(counts * px_km2, index=pd.Index(labels, name="time"), columns=[classes[c] for c in codes])
    rep.area_km2 = area
    md = [f"# {cfg.name}: land cover and soil erosion", "", f"Published catalog: `{root}/catalog.json`", "",
          f"## Land-cover area per class ({res:g} m, km²)", "", "```", area.round(3).to_string(), "```", ""]  # fmt: skip
    md.append(f"![land-cover area]({save_png(_area_plot(plt, area, [colours[c] for c in codes]), 'landcover_area.png')})")
    md.append(f"Table: [{save_csv(area, 'landcover_area.csv')}]({'landcover_area.csv'})")

    # transitions from the first to the last quarter
    first, last, matrix = np.asarray(got["first"]), np.asarray(got["last"]), np.asarray(got["matrix"])
    names = [classes[c] for c in codes]
    rep.transitions = pd.DataFrame(matrix * px_km2, index=pd.Index(names, name="from"), columns=names)
    fig, ax = plt.subplots(figsize=(7, 5))
    _sankey(ax, matrix, names, [colours[c] for c in codes], labels[0], labels[-1])
    ax.set_title(f"Land-cover transitions {labels[0]} → {labels[-1]}", fontsize=10)
    md += ["", f"## Transitions {labels[0]} → {labels[-1]} (km²)", "",
           f"![transitions]({save_png(fig, 'transitions.png')})", f"Matrix: [{save_csv(rep.transitions, 'transitions.csv')}](transitions.csv)"]  # fmt: skip

    # erosion per year, from the annual datacube when there is one
    grade_img = None
    if ds is not None:
        eroded_from = g.names.index(g.eroded_from) + 1
        rows = []
        for i, t in enumerate(ds["time"].values):
            total, n, gc = float(got["sum"][i]), int(got["n"][i]), np.asarray(got["grades"][i])
            eroded = int(gc[eroded_from:].sum())
            rows.append({"year": str(t)[:4], "mean_erosion_t_hm2_a": total / n if n else np.nan,
                         "eroded_area_km2": float(eroded * px_km2),
                         "eroded_area_pct": float(100 * eroded / max(1, int(gc[1:].sum())))})  # fmt: skip
        grade_img = np.asarray(got["grade_img"])
        table = pd.DataFrame(rows).set_index("year")
        rep.erosion = table
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(table.index, table["mean_erosion_t_hm2_a"], color="#a0522d")
        ax.axhline(g.tolerance_t_hm2_a, color="k", ls="--", lw=0.8, label="tolerance")
        ax2 = ax.twinx()
        ax2.plot(table.index, table["eroded_area_pct"], "o-", color="#08519c", label="eroded area")
        ax.set_ylabel("mean soil loss, t/(hm²·a)")
        ax2.set_ylabel(f"eroded area ({g.eroded_from} and above), %")
        ax.set_title("Annual erosion", fontsize=10)
        md += ["", "## Soil erosion per year", "", "```", table.round(3).to_string(), "```",
               "", f"![erosion]({save_png(fig, 'erosion_annual.png')})", f"Table: [{save_csv(table, 'erosion_annual.csv')}](erosion_annual.csv)"]  # fmt: skip

    # maps: first and last land cover, last year's erosion grade
    panels = [(labels[0], first), (labels[-1], last)] + ([("erosion grade " + rows[-1]["year"], grade_img)] if grade_img is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4))
    lut = np.zeros(256, np.int64)
    lut[codes] = np.arange(1, len(codes) + 1)
    lc_cmap = ListedColormap(["#ffffff"] + [colours[c] for c in codes])
    for ax, (title, img) in zip(np.atleast_1d(axes), panels, strict=True):
        if title.startswith("erosion"):
            gnames = cfg.science.rusle.grades.names
            gcol = class_colours(cfg, "erosion-annual", "grade")
            gc = ["#ffffff"] + [gcol.get(i + 1, "#808080") for i in range(len(gnames))]
            ax.imshow(img, cmap=ListedColormap(gc), vmin=0, vmax=len(gnames), interpolation="nearest")
            # the grade map's own legend: grade names and their colours
            ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in gc[1:]], list(gnames), title="erosion grade",
                      loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title_fontsize=7, frameon=False)  # fmt: skip
        else:
            ax.imshow(lut[img], cmap=lc_cmap, vmin=0, vmax=len(codes), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in codes]
    fig.legend(handles, names, loc="lower center", ncol=len(codes), fontsize=7, frameon=False, title="land cover",
               title_fontsize=7)  # fmt: skip
    md += ["", "## Maps", "", f"![maps]({save_png(fig, 'maps.png')})", ""]
    from lpqlc.analysis.report import report_section  # issue 18: the analyses' section, when they have run

    md += report_section(cfg)
    write_bytes(rep.markdown, "\n".join(md).encode("utf-8"), store)
    return rep


def _area_plot(plt: Any, area: Any, colours: list[str]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.stackplot(range(len(area)), area.T.values, labels=area.columns, colors=colours)
    ax.set_xticks(range(len(area)), area.index, rotation=45, fontsize=7)
    ax.set_ylabel("area, km²")
    ax.set_title("Land-cover area per class", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig

