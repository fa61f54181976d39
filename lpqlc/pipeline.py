"""The whole chain for a set of quarters: composite → classify → refine → publish land cover →
erosion → publish erosion → catalog, indexes and STAC API.

Working outputs live under the storage URL (``composites/``, ``classify/``, ``erosion/``); the
products are published under ``publish.url`` (default ``<storage>/stac``). A quarter whose composite
fails (no imagery, an unreadable archive) is reported and left out of the later stages; the others
go on. Each stage is timed; :class:`RunSummary` says what was done.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lpqlc.config import PipelineConfig
from lpqlc.errors import ConfigError, LpqlcError
from lpqlc.quarter import Quarter
from lpqlc.storage import exists, parse_storage_url

__all__ = ["RunSummary", "Failure", "run_pipeline", "work_dirs", "timed", "composite_quarters", "start_run", "publish_chain"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Failure:
    """A unit of work that did not produce its output, and why."""

    stage: str
    what: str
    message: str


@dataclass
class RunSummary:
    """What a run did: quarters and years produced, items per collection by outcome, failures, timings."""

    quarters: list[Quarter] = field(default_factory=list)
    years: list[int] = field(default_factory=list)
    items: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    catalog: Any = None
    outputs: dict[str, str] = field(default_factory=dict)
    #: Quarters whose sources this run searched (composited now, not reused), and when it began (ISO UTC).
    searched: list[Quarter] = field(default_factory=list)
    started: str = ""

    def count(self, outcomes: Sequence[Any]) -> None:
        for o in outcomes:
            cid = o.item_id.rsplit("-", 2)[0]
            self.items.setdefault(cid, Counter())[o.status] += 1

    def lines(self) -> list[str]:
        """A human-readable summary."""
        out = [f"quarters: {len(self.quarters)} ({self.quarters[0]}–{self.quarters[-1]})" if self.quarters else "quarters: none",
               f"years with annual erosion: {', '.join(map(str, self.years)) or 'none'}"]  # fmt: skip
        for cid, c in sorted(self.items.items()):
            out.append(f"{cid}: {sum(c.values())} items ({c['new']} new, {c['updated']} updated, {c['unchanged']} unchanged)")
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{q} ({why})" for q, why in self.skipped))
        out.append(f"warnings: {len(self.warnings)}")
        out += [f"  {w}" for w in self.warnings]
        out.append(f"failures: {len(self.failures)}")
        out += [f"  {f.stage} {f.what}: {f.message}" for f in self.failures]
        out.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))
        return out


def work_dirs(cfg: PipelineConfig) -> dict[str, str]:
    """The working folders under the storage URL."""
    root = parse_storage_url(cfg.storage.url, what="storage.url")
    return {name: root.join(name) for name in ("composites", "classify", "erosion")}


@contextmanager
def timed(summary: RunSummary, stage: str) -> Iterator[None]:
    """Add the time spent in the block to ``summary.timings[stage]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        summary.timings[stage] = summary.timings.get(stage, 0.0) + time.perf_counter() - t0


def run_pipeline(
    cfg: PipelineConfig,
    quarters: Sequence[Quarter] | None = None,
    *,
    model: str | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run the chain for ``quarters`` (default: the configured period) and publish the products.

    ``model`` (default ``model.checkpoint``) is the land-cover checkpoint. Raises
    :class:`ConfigError` when there is none; per-quarter failures are collected in the summary.
    """
    from lpqlc.classify.run import run_classify
    from lpqlc.lock import publish_lock

    model, ident, summary = start_run(cfg, model)
    dirs = work_dirs(cfg)
    if logging.getLogger("lpqlc.plan").isEnabledFor(logging.INFO):  # the plan costs a search per quarter
        from lpqlc.plan import log_plan

        log_plan(cfg, sorted(quarters or cfg.quarters))
    from lpqlc.update import record_run

    with publish_lock(cfg, "run"):  # one writer per publish URL (lpqlc/lock.py)
        summary.started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with timed(summary, "composite"):
            ok = composite_quarters(cfg, sorted(quarters or cfg.quarters), summary, client=client, progress=progress)
        if ok:
            summary.quarters = ok
            with timed(summary, "classify + refine"):
                run_classify(cfg, model, ok, dirs["classify"], composites=dirs["composites"], client=client, progress=progress)
            summary = publish_chain(cfg, summary, ident, ok, ok, ok, client=client, progress=progress)
        record_run(cfg, summary)  # the update state: the first `lpqlc update` need not search every quarter
        return summary


def start_run(cfg: PipelineConfig, model: str | None) -> tuple[str, dict[str, str], RunSummary]:
    """Before any work: the land-cover checkpoint (``model`` or ``model.checkpoint``), its identity
    (URL and checksum; :class:`ConfigError` when it is unset or missing), and an empty summary."""
    from lpqlc.publish.products import model_identity

    model = model or cfg.model.checkpoint
    if not model:
        raise ConfigError("no land-cover model: set model.checkpoint in the config or pass --model "
                          "(make one with `lpqlc train`)")  # fmt: skip
    ident = model_identity(model, cfg.store)
    dirs = work_dirs(cfg)
    return model, ident, RunSummary(outputs={**dirs, "catalog": f"{cfg.publish_url.rstrip('/')}/catalog.json"})


def publish_chain(cfg: PipelineConfig, summary: RunSummary, model: dict[str, str], landcover_quarters: Sequence[Quarter],
                  context: Sequence[Quarter], erosion_quarters: Sequence[Quarter], *, client: Any = None,
                  progress: Progress | None = None) -> RunSummary:  # fmt: skip
    """The chain after refinement: publish the land cover of ``landcover_quarters`` (windows over
    ``context``; ``model`` is the checkpoint's identity), RUSLE erosion of ``erosion_quarters``,
    publish it, refresh the catalog."""
    from lpqlc.erosion.run import run_erosion
    from lpqlc.publish.products import (
        erosion_specs,
        landcover_specs,
        publish_items,
        refresh_catalog,
    )

    dirs = work_dirs(cfg)
    outcomes = []  # what was published: the catalog refresh indexes only these (lpqlc/publish/refresh.py)
    with timed(summary, "publish land cover"):
        specs = landcover_specs(cfg, dirs["classify"], dirs["composites"], landcover_quarters, model, context=context)
        outcomes += publish_items(cfg, specs, client=client, progress=progress, stage="publish land cover")
        summary.count(outcomes)
    with timed(summary, "erosion"):
        landcover = f"{dirs['classify']}/refined/{{quarter}}/{{tile}}/class.tif"
        ero = run_erosion(cfg, list(erosion_quarters), dirs["erosion"], landcover=landcover, composites=dirs["composites"],
                          client=client, progress=progress)  # fmt: skip
        summary.years = ero.years
    with timed(summary, "publish erosion"):
        specs = erosion_specs(cfg, dirs["erosion"], dirs["composites"], erosion_quarters, ero.years)
        erosion = publish_items(cfg, specs, client=client, progress=progress, stage="publish erosion")
        summary.count(erosion)
    with timed(summary, "catalog"):
        summary.catalog = refresh_catalog(cfg, client=client, progress=progress, outcomes=outcomes + erosion)
    return summary


def composite_quarters(cfg: PipelineConfig, quarters: Sequence[Quarter], summary: RunSummary, *, client: Any = None,
                       progress: Progress | None = None, force: bool = False) -> list[Quarter]:  # fmt: skip
    """Composite the quarters (reusing existing composites unless ``force``); returns those with
    imagery. Failures go to ``summary.failures``; quarters without any source item to ``summary.skipped``."""
    from lpqlc.composite.run import composite_summary, run_composite

    comp = work_dirs(cfg)["composites"]
    ok: list[Quarter] = []
    for i, q in enumerate(quarters):
        try:
            if force or not exists(f"{comp}/{q}/composite.json", cfg.store):
                run_composite(cfg, q, comp, client=client, progress=_sub(progress, f"composite {q} ({i + 1}/{len(quarters)})"))
                summary.searched.append(q)
            done = composite_summary(cfg, comp, q)
            for item, why in (done.get("unreadable") or {}).items():
                summary.warnings.append(f"{q}: source item {item} left out, {why}")
            if done.get("items"):
                ok.append(q)
            else:
                summary.skipped.append((str(q), "no source imagery"))
        except LpqlcError as exc:
            log.error("%s: composite failed: %s", q, exc)
            summary.failures.append(Failure("composite", str(q), str(exc)))
        if progress:
            progress("composites", i + 1, len(quarters))
    return ok


def _sub(progress: Progress | None, stage: str) -> Progress | None:
    if progress is None:
        return None
    return lambda _stage, done, total: progress(stage, done, total)
