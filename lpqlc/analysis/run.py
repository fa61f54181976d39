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
from typing import Any

from lpqlc.analysis.inputs import TREND_KEY, AnalysisResult, Cubes
from lpqlc.analysis.steps import Analyses
from lpqlc.config import PipelineConfig
from lpqlc.errors import ConfigError
from lpqlc.storage import write_bytes

__all__ = ["ANALYSES", "AnalysisResult", "run_analyses", "TREND_KEY"]

log = logging.getLogger(__name__)

#: The analyses ``--what`` can name, in the order they run.
ANALYSES = ("areas", "transitions", "trends", "cumulative", "terrain", "attribution", "control", "reference")


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
    cubes = Cubes(cfg, resolution)
    res = AnalysisResult(out=out)
    ctx = Analyses(cfg, cubes, res, out, client)
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
    write_bytes(url, "\n".join(res.markdown).encode("utf-8"), cfg.store)
    res.files.append(url)
    return res
