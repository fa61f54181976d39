"""The offline main job on the embedded default: sample archive → static-catalog search → lazy quarterly
median composites (masks, scale/offset, median, count, NDVI, FVC) on the equal-area grid, tile by tile on
a local Dask cluster → COGs and quicklooks; then RUSLE erosion of the last quarter's year (land cover:
the archive's truth maps until the model lands) → erosion COGs, a CSV per subregion and plots.

No server is needed. Later stages (classification, publishing) join this job as they land.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpqlc.config import load_config
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter, quarter_range
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate

__all__ = ["DemoResult", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    archive: SampleArchive
    quarter: Quarter
    n_items: int
    pngs: list[str]
    grid_shape: tuple[int, int]
    erosion: Any = None


def run_demo(config: str | Path, out: str | Path, spec: SampleSpec, quarters: list[Quarter]) -> DemoResult:
    """Generate the archive under ``out`` and composite ``quarters`` from it on a local Dask cluster."""
    from lpqlc.cluster import open_client
    from lpqlc.composite.run import run_composite
    from lpqlc.erosion.run import run_erosion

    out = Path(out).absolute()
    archive = generate(str(out / "archive"), spec)
    cfg = load_config(config)
    cfg = cfg.model_copy(
        update={
            "sources": cfg.sources.model_copy(update={"catalog": archive.catalog, "stac_api": None}),
        }
    )
    pngs: list[str] = []
    n_items = 0
    shape = (0, 0)
    with open_client(cfg.cluster) as client:
        for q in quarters:
            run = run_composite(cfg, q, str(out / "composites"), client=client)
            n_items += sum(run.report.kept.values())
            if run.quicklook:
                pngs.append(run.quicklook)
            gbox = OutputGrid.from_config(cfg).geobox(q)
            shape = (int(gbox.shape.y), int(gbox.shape.x))
            for line in run.report.lines():
                log.info(line)
        year = quarters[-1].year
        eq = [q for q in quarter_range(f"{year}Q1", f"{year}Q4") if spec.start <= q <= spec.end]
        erosion = run_erosion(cfg, eq, str(out / "erosion"), landcover=str(Path(archive.truth) / "landcover" / "{quarter}.tif"),
                              composites=str(out / "composites"), client=client)  # fmt: skip
    return DemoResult(archive=archive, quarter=quarters[-1], n_items=n_items, pngs=pngs, grid_shape=shape,
                      erosion=erosion)  # fmt: skip
