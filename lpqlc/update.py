"""Incremental quarterly updates: find what changed from the published catalog itself, redo only that.

State lives in the published items. Each confidence item records ``lpqlc:source_digest``: a digest of
its quarter's source items and when each last changed (``updated``, else ``created``, else the
acquisition time). A fresh search of every configured quarter gives the current digest:

- **new**: source items exist and nothing is published for the quarter;
- **changed**: the digest differs (an item was added, removed or reprocessed);
- **unchanged**: equal digests; **no imagery**: the search finds nothing (nothing is published).

New and changed quarters are composited and classified again; temporal refinement is redone on the
affected window (each processed quarter and up to ``temporal_window // 2`` published quarters either
side); erosion is recomputed for the years those quarters fall in. Publishing compares checksums and
inputs, so only items whose content or lineage changed get a new version and ``updated``; every other
item stays byte-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lpqlc.composite.run import item_stamp, tile_id
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.pipeline import RunSummary, composite_quarters, publish_chain, start_run, timed, work_dirs
from lpqlc.publish.catalog import item_url, read_item
from lpqlc.publish.collections import collection_id
from lpqlc.publish.items import Period, item_id
from lpqlc.quarter import Quarter
from lpqlc.storage import exists

__all__ = ["QuarterState", "UpdatePlan", "plan_update", "run_update"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuarterState:
    """One quarter's standing: ``new``, ``changed``, ``unchanged`` or ``no imagery``."""

    quarter: Quarter
    status: str
    items: int
    published_version: str | None = None


@dataclass
class UpdatePlan:
    """What an update will do."""

    states: list[QuarterState] = field(default_factory=list)
    process: list[Quarter] = field(default_factory=list)
    refine: list[Quarter] = field(default_factory=list)
    years: list[int] = field(default_factory=list)
    context: list[Quarter] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.process

    def lines(self) -> list[str]:
        by: dict[str, list[str]] = {}
        for s in self.states:
            by.setdefault(s.status, []).append(str(s.quarter))
        out = [f"{status}: {len(qs)} quarter(s){': ' + ', '.join(qs) if status != 'unchanged' else ''}"
               for status, qs in sorted(by.items())]  # fmt: skip
        if self.empty:
            return [*out, "nothing to do: the published products are up to date"]
        return [
            *out,
            f"composite + classify: {', '.join(map(str, self.process))}",
            f"refine + republish land cover: {', '.join(map(str, self.refine))}",
            f"recompute + republish erosion of: {', '.join(map(str, self.years))}",
        ]


def _published(cfg: PipelineConfig, grid: OutputGrid, quarter: Quarter) -> dict[str, Any] | None:
    """The published confidence item of the quarter's first tile (all tiles share its sources)."""
    cid = collection_id(cfg, "landcover-confidence")
    index, _ = next(iter(grid.iter_tiles(quarter)))
    return read_item(item_url(cfg.publish_url, cid, item_id(cid, Period.of(quarter), tile_id(index))),
                     cfg.storage.endpoint_url)  # fmt: skip


def plan_update(cfg: PipelineConfig, quarters: Sequence[Quarter] | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> UpdatePlan:  # fmt: skip
    """Search every quarter and compare with the published catalog (see the module doc)."""
    from lpqlc.publish.products import source_digest
    from lpqlc.sources.search import search_quarter

    qs = sorted(quarters or cfg.quarters)
    plan = UpdatePlan()
    published: set[Quarter] = set()
    out_grid = OutputGrid.from_config(cfg)
    for n, q in enumerate(qs):
        doc = _published(cfg, out_grid, q)
        result = search_quarter(cfg, q)
        version = doc["properties"].get("version") if doc else None
        if doc is not None:
            published.add(q)
        if not result.items:
            state = QuarterState(q, "no imagery", 0, version)
        elif doc is None:
            state = QuarterState(q, "new", len(result.items))
        else:
            digest = source_digest({it.id: item_stamp(it) for it in result.items})
            same = doc["properties"].get("lpqlc:source_digest") == digest
            state = QuarterState(q, "unchanged" if same else "changed", len(result.items), version)
        plan.states.append(state)
        if progress:
            progress("plan", n + 1, len(qs))
    plan.process = [s.quarter for s in plan.states if s.status in ("new", "changed")]
    if plan.empty:
        return plan
    grid = out_grid.grid
    half = cfg.science.landcover.temporal_window // 2
    plan.context = sorted(published | set(plan.process))
    refine: set[Quarter] = set()
    for q in plan.process:
        era = [w for w in plan.context if grid.resolution_for(w) == grid.resolution_for(q)]
        at = era.index(q)
        refine.update(era[max(0, at - half) : at + half + 1])
    plan.refine = sorted(refine)
    plan.years = sorted({q.year for q in plan.refine})
    return plan


def run_update(cfg: PipelineConfig, plan: UpdatePlan, *, model: str | None = None, client: Any = None,
               progress: Callable[[str, int, int], None] | None = None) -> RunSummary:  # fmt: skip
    """Carry out ``plan``: composite and classify the processed quarters, re-refine the window,
    recompute the affected years' erosion, republish what changed, refresh the catalog."""
    from lpqlc.classify.run import refine_quarters, run_classify
    from lpqlc.lock import publish_lock

    model, ident, summary = start_run(cfg, model)
    if plan.empty:
        return summary
    with publish_lock(cfg, "update"):  # one writer per publish URL (lpqlc/lock.py)
        dirs = work_dirs(cfg)
        endpoint = cfg.storage.endpoint_url
        with timed(summary, "composite"):
            ok = composite_quarters(cfg, plan.process, summary, client=client, progress=progress, force=True)
        failed = set(plan.process) - set(ok)
        context = [q for q in plan.context if q not in failed]
        refine = [q for q in plan.refine if q not in failed]
        # a published quarter whose raw prediction is gone from the working folder is classified again
        grid = OutputGrid.from_config(cfg)
        first_tile = {q: tile_id(next(iter(grid.iter_tiles(q)))[0]) for q in context}
        missing = [q for q in context if q not in ok and not exists(f"{dirs['classify']}/raw/{q}/{first_tile[q]}/class.tif", endpoint)]
        summary.quarters = sorted(set(ok))
        with timed(summary, "classify + refine"):
            if ok or missing:
                run_classify(cfg, model, sorted(set(ok) | set(missing)), dirs["classify"], composites=dirs["composites"],
                             client=client, progress=progress, refine=False)  # fmt: skip
            refine_quarters(cfg, dirs["classify"], refine, context, client=client, progress=progress)
        years = {q.year for q in refine}
        erosion_quarters = [q for q in context if q.year in years]
        return publish_chain(cfg, summary, ident, refine, context, erosion_quarters, client=client, progress=progress)
