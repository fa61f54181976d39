"""Incremental quarterly updates: find what changed from the published catalog itself, redo only that.

State lives in the published items. Each confidence item records ``lpqlc:source_digest``: a digest of
its quarter's source items and when each last changed (``updated``, else ``created``, else the
acquisition time). A fresh search of a quarter gives the current digest. Which quarters are searched
(:func:`plan_update`): all of them on ``--rescan`` or before the first update; otherwise those the
STAC API reports changed items in since the last update (one CQL2 search per source collection),
the last ``publish.lookback_quarters`` and any never searched; ``<publish>/_update.json`` records when
the last update searched and each quarter's standing. A searched quarter is:

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
from datetime import UTC, datetime
from typing import Any

from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.pipeline import RunSummary, composite_quarters, publish_chain, start_run, timed, work_dirs
from lpqlc.publish.catalog import item_url, read_item, to_json
from lpqlc.publish.collections import collection_id
from lpqlc.publish.items import Period, item_id
from lpqlc.quarter import Quarter
from lpqlc.storage import exists, write_bytes
from lpqlc.tiling import item_stamp, tile_id

__all__ = ["QuarterState", "UpdatePlan", "plan_update", "run_update", "record_state", "record_empty", "read_state", "changed_since",
           "record_run"]

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
    #: When the plan's searches began (ISO UTC), how quarters were chosen, which were searched.
    started: str = ""
    how: str = ""
    searched: list[Quarter] = field(default_factory=list)
    published: list[Quarter] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.process

    def lines(self) -> list[str]:
        by: dict[str, list[str]] = {}
        for s in self.states:
            by.setdefault(s.status, []).append(str(s.quarter))
        out = [f"{status}: {len(qs)} quarter(s){': ' + ', '.join(qs) if status not in ('unchanged', 'not searched') else ''}"
               for status, qs in sorted(by.items())]  # fmt: skip
        if self.how:
            out.insert(0, f"searched {len(self.searched)} quarter(s): {self.how}")
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
                     cfg.store)  # fmt: skip


def state_url(cfg: PipelineConfig) -> str:
    """``<publish>/_update.json``: when the last update searched, and each searched quarter's standing."""
    return f"{cfg.publish_url.rstrip('/')}/_update.json"


def read_state(cfg: PipelineConfig) -> dict[str, Any] | None:
    """The last update's record (None before the first update)."""
    doc = read_item(state_url(cfg), cfg.store)  # a JSON document, read the same way
    return doc


def changed_since(cfg: PipelineConfig, since: str, quarters: Sequence[Quarter]) -> set[Quarter] | None:
    """Quarters (of ``quarters``) holding a source item created or updated at or after ``since``, from one
    CQL2-JSON search per source collection of ``sources.stac_api``; None when there is no STAC API or
    it does not support the filter (then the plan falls back to its look-back window).

    pgstac keeps ``created``/``updated`` as text in its default queryables (a ``timestamp`` literal is
    refused with an operator error), so the filter compares ISO 8601 UTC strings, which order as times.
    """
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from requests.exceptions import RequestException

    src = cfg.sources
    if src.stac_api is None or not quarters:
        return None
    collections = sorted({src.collections.sentinel2 if src.sensor_for(q) == "sentinel2" else src.collections.landsat
                          for q in quarters})  # fmt: skip
    flt = {"op": "or", "args": [{"op": ">=", "args": [{"property": p}, since]} for p in ("updated", "created")]}
    span = f"{min(quarters).datetime_range().split('/')[0]}/{max(quarters).datetime_range().split('/')[1]}"
    wanted = set(quarters)
    found: set[Quarter] = set()
    try:
        client = Client.open(src.stac_api, timeout=src.timeout_s)
        if not client.conforms_to("FILTER"):
            log.info("plan: %s does not support CQL2 filters: searching the look-back window", src.stac_api)
            return None
        for coll in collections:
            search = client.search(collections=[coll], bbox=cfg.aoi.bbox, datetime=span, filter=flt,
                                   filter_lang="cql2-json", limit=src.page_limit)  # fmt: skip
            for page in search.pages_as_dicts():
                for it in page.get("features", []):
                    p = it.get("properties", {})
                    when = p.get("datetime") or p.get("start_datetime")
                    if when:
                        q = Quarter.of(datetime.fromisoformat(when.replace("Z", "+00:00")))
                        if q in wanted:
                            found.add(q)
    except (APIError, RequestException, NotImplementedError) as exc:
        log.warning("plan: the CQL2 search for items changed since %s failed (%s): searching the look-back window",
                    since, str(exc)[:200])  # fmt: skip
        return None
    return found


def plan_update(cfg: PipelineConfig, quarters: Sequence[Quarter] | None = None,
                progress: Callable[[str, int, int], None] | None = None, *, rescan: bool = False) -> UpdatePlan:  # fmt: skip
    """Which quarters to redo (see the module doc).

    Searched in full: every quarter with ``rescan`` or before the first update (no record yet);
    otherwise only the quarters the STAC API reports a source item created or updated in since the
    last update searched (:func:`changed_since`), the last ``publish.lookback_quarters`` quarters, and
    quarters never searched. The others are ``not searched``.
    """
    from lpqlc.publish.products import source_digest
    from lpqlc.sources.search import search_quarter

    qs = sorted(quarters or cfg.quarters)
    plan = UpdatePlan(started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    state = None if rescan else read_state(cfg)
    known: dict[str, str] = dict((state or {}).get("quarters", {}))
    if state is None:
        search = list(qs)
        plan.how = "rescan" if rescan else "full search (no record of an earlier update)"
    else:
        recent = set(qs[-cfg.publish.lookback_quarters :])
        unseen = {q for q in qs if str(q) not in known}
        changed = changed_since(cfg, state["searched_at"], qs)
        plan.how = (f"look-back {cfg.publish.lookback_quarters} quarter(s)" if changed is None else
                    f"items created or updated since {state['searched_at']} ({len(changed)} quarter(s)) + "
                    f"look-back {cfg.publish.lookback_quarters} quarter(s)")  # fmt: skip
        search = sorted(recent | unseen | (changed or set()))
    plan.searched = list(search)
    published: set[Quarter] = {q for q in qs if known.get(str(q)) == "published" and q not in search}
    out_grid = OutputGrid.from_config(cfg)
    for q in qs:
        if q not in search:
            plan.states.append(QuarterState(q, "not searched", 0))
    for n, q in enumerate(search):
        doc = _published(cfg, out_grid, q)
        result = search_quarter(cfg, q)
        version = doc["properties"].get("version") if doc else None
        if doc is not None:
            published.add(q)
        if not result.items:
            state_q = QuarterState(q, "no imagery", 0, version)
        elif doc is None:
            state_q = QuarterState(q, "new", len(result.items))
        else:
            digest = source_digest({it.id: item_stamp(it) for it in result.items})
            same = doc["properties"].get("lpqlc:source_digest") == digest
            state_q = QuarterState(q, "unchanged" if same else "changed", len(result.items), version)
        plan.states.append(state_q)
        if progress:
            progress("plan", n + 1, len(search))
    plan.states.sort(key=lambda s: s.quarter)
    plan.published = sorted(published)
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


def record_empty(cfg: PipelineConfig, plan: UpdatePlan) -> None:
    """After a plan with nothing to do: record its searches (under the run lock), so the next plan
    asks only for what changed since."""
    from lpqlc.lock import publish_lock

    with publish_lock(cfg, "update (nothing to do)"):
        record_state(cfg, plan)


def record_state(cfg: PipelineConfig, plan: UpdatePlan, done: Sequence[Quarter] | None = None) -> None:
    """Write the update record after a successful update: ``searched_at`` (when its searches began:
    the next plan asks for changes since then) and each quarter's standing. A processed quarter that
    is not in ``done`` (it failed) is left out, so the next plan searches it again."""
    old = read_state(cfg) or {}
    quarters: dict[str, str] = dict(old.get("quarters", {}))
    ok = set(done if done is not None else plan.process)
    for s in plan.states:
        if s.status == "not searched":
            continue
        if s.status == "no imagery":
            quarters[str(s.quarter)] = "published" if s.quarter in plan.published else "no imagery"
        elif s.status in ("new", "changed") and s.quarter not in ok:
            quarters.pop(str(s.quarter), None)
        else:
            quarters[str(s.quarter)] = "published"
    doc = {"searched_at": plan.started, "how": plan.how, "quarters": dict(sorted(quarters.items()))}
    write_bytes(state_url(cfg), to_json(doc), cfg.store)


def record_run(cfg: PipelineConfig, summary: RunSummary) -> None:
    """After ``lpqlc run`` (under its lock): record in ``_update.json`` the quarters whose sources the run
    searched (``summary.searched``: composited now, not reused) as ``published`` or ``no imagery``, so
    the first ``lpqlc update`` asks the STAC API only for what changed since instead of searching every
    quarter. ``searched_at`` is when the run began, or the earlier record's time when there is one (the
    quarters the run did not search may have changed since then). A quarter that failed anywhere, or
    whose composite was reused (searched at some unknown earlier time), is left out: the next update
    searches it in full."""
    failed = {f.what.split(" ")[0] for f in summary.failures}
    old = read_state(cfg) or {}
    quarters: dict[str, str] = dict(old.get("quarters", {}))
    skipped = {q for q, why in summary.skipped if why == "no source imagery"}
    for q in summary.searched:
        if str(q) in failed:
            quarters.pop(str(q), None)
        elif str(q) in skipped:
            quarters[str(q)] = "no imagery"
        elif q in summary.quarters:
            quarters[str(q)] = "published"
    if not quarters:
        return
    since = min(t for t in (old.get("searched_at"), summary.started) if t)
    doc = {"searched_at": since, "how": old.get("how", "lpqlc run"), "quarters": dict(sorted(quarters.items()))}
    write_bytes(state_url(cfg), to_json(doc), cfg.store)


def run_update(cfg: PipelineConfig, plan: UpdatePlan, *, model: str | None = None, client: Any = None,
               progress: Callable[[str, int, int], None] | None = None) -> RunSummary:  # fmt: skip
    """Carry out ``plan``: composite and classify the processed quarters, re-refine the window,
    recompute the affected years' erosion, republish what changed, refresh the catalog."""
    from lpqlc.classify.run import refine_quarters, run_classify
    from lpqlc.lock import publish_lock

    if plan.empty:
        record_empty(cfg, plan)
        return RunSummary()
    model, ident, summary = start_run(cfg, model)
    with publish_lock(cfg, "update"):  # one writer per publish URL (lpqlc/lock.py)
        dirs = work_dirs(cfg)
        store = cfg.store
        with timed(summary, "composite"):
            ok = composite_quarters(cfg, plan.process, summary, client=client, progress=progress, force=True)
        failed = set(plan.process) - set(ok)
        context = [q for q in plan.context if q not in failed]
        refine = [q for q in plan.refine if q not in failed]
        # a published quarter whose raw prediction is gone from the working folder is classified again
        grid = OutputGrid.from_config(cfg)
        first_tile = {q: tile_id(next(iter(grid.iter_tiles(q)))[0]) for q in context}
        missing = [q for q in context if q not in ok and not exists(f"{dirs['classify']}/raw/{q}/{first_tile[q]}/class.tif", store)]
        summary.quarters = sorted(set(ok))
        with timed(summary, "classify + refine"):
            if ok or missing:
                run_classify(cfg, model, sorted(set(ok) | set(missing)), dirs["classify"], composites=dirs["composites"],
                             client=client, progress=progress, refine=False)  # fmt: skip
            refine_quarters(cfg, dirs["classify"], refine, context, client=client, progress=progress)
        years = {q.year for q in refine}
        erosion_quarters = [q for q in context if q.year in years]
        summary = publish_chain(cfg, summary, ident, refine, context, erosion_quarters, client=client, progress=progress)
        record_state(cfg, plan, done=ok)
        return summary
