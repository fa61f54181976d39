"""Publishing the pipeline's working outputs as STAC items (one Dask task per item), then refreshing
the catalog, its indexes and the STAC API.

Sources (written by the jobs; see their module docs)::

    <classify>/refined/<Q>/<tile>/class.tif       → <prefix>-landcover            asset landcover
    <classify>/raw/<Q>/<tile>/confidence.tif      → <prefix>-landcover-confidence asset confidence
    <erosion>/<Q>/<tile>/{erosion,quality}.tif    → <prefix>-erosion              assets erosion, quality
    <erosion>/<YYYY>/<tile>/{erosion,grade,quality}.tif → <prefix>-erosion-annual assets erosion, grade, quality
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dask

from lpqlc import __version__
from lpqlc.cluster import compute_bounded
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.publish.catalog import PublishOutcome, publish_item
from lpqlc.publish.collections import collection_id, item_assets
from lpqlc.publish.items import CogInfo, Period, build_item, item_id
from lpqlc.publish.refresh import CatalogIndex, refresh_catalog
from lpqlc.quarter import Quarter
from lpqlc.storage import Store, exists, read_bytes
from lpqlc.tiling import composite_summary, tile_id

__all__ = ["ItemSpec", "publish_items", "landcover_specs", "erosion_specs", "refresh_catalog", "CatalogIndex",
           "software_versions"]  # fmt: skip

log = logging.getLogger(__name__)


def software_versions(*extra: str) -> dict[str, str]:
    """``processing:software``: lpqlc and GDAL, plus the named packages' versions."""
    from importlib.metadata import PackageNotFoundError, version

    import rasterio

    out = {"lpqlc": __version__, "gdal": str(rasterio.__gdal_version__)}
    for name in extra:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class ItemSpec:
    """Everything one publish task needs: where the sources are, what the item says."""

    product: str
    period: str
    tile: str
    sources: dict[str, str]
    lineage: str
    inputs: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _publish_one(spec: ItemSpec, cfg: PipelineConfig, root: str, software: dict[str, str]) -> PublishOutcome:
    """Runs on a worker: read the source COGs, publish them and the item."""
    store = cfg.store
    cid = collection_id(cfg, spec.product)
    period = Period(spec.period)
    gbox = dict(OutputGrid.from_config(cfg).iter_tiles(period.quarters[0]))[_tile_index(spec.tile)]
    blobs = {k: read_bytes(u, store) for k, u in spec.sources.items()}
    assets_tmpl = item_assets(cfg, spec.product)

    def make(version: int, assets: Mapping[str, tuple[str, CogInfo]], created: datetime, updated: datetime) -> dict[str, Any]:
        return build_item(collection=cid, period=period, tile=spec.tile, gbox=gbox, assets=assets,
                          item_assets=assets_tmpl, version=version, created=created, updated=updated,
                          lineage=spec.lineage, inputs=spec.inputs, software=software, extra=spec.extra)  # fmt: skip

    return publish_item(root, cid, item_id(cid, period, spec.tile), blobs, make, inputs=spec.inputs, store=store,
                        superseded=cfg.publish.superseded)  # fmt: skip


def _tile_index(tile: str) -> tuple[int, int]:
    return int(tile[5:8]), int(tile[1:4])


def publish_items(cfg: PipelineConfig, specs: Sequence[ItemSpec], *, client: Any = None,
                  progress: Callable[[str, int, int], None] | None = None, stage: str = "publish") -> list[PublishOutcome]:  # fmt: skip
    """Publish ``specs`` (one task each; assets first, the item last) under ``cfg.publish_url``."""
    root = cfg.publish_url.rstrip("/")
    software = software_versions("torch", "odc-stac", "xarray", "dask")
    tasks = [dask.delayed(_publish_one, pure=False)(s, cfg, root, software) for s in specs]
    outcomes: list[PublishOutcome] = compute_bounded(tasks, client, stage, progress)
    return outcomes


def _summaries(cfg: PipelineConfig, comp_dir: str, quarters: Iterable[Quarter]) -> dict[Quarter, dict[str, Any]]:
    """Each quarter's ``composite.json``, read once."""
    return {q: composite_summary(cfg, comp_dir, q) for q in set(quarters)}


def _unreadable(summaries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Source items left out of these composites because an asset could not be read."""
    out: dict[str, str] = {}
    for s in summaries:
        out.update(s.get("unreadable") or {})
    return out


def _flag(extra: dict[str, Any], lineage: str, bad: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """Record unreadable inputs in an item: ``lpqlc:unreadable_inputs`` and the lineage sentence."""
    if not bad:
        return extra, lineage
    extra = {**extra, "lpqlc:unreadable_inputs": dict(sorted(bad.items())), "lpqlc:flags": ["unreadable-inputs"]}
    return extra, lineage + f"; {len(bad)} source item(s) left out as unreadable (lpqlc:unreadable_inputs)"


def source_digest(versions: Mapping[str, str]) -> str:
    """A digest of a quarter's source items and when each last changed (``id@updated``, sorted):
    ``lpqlc update`` compares it with a fresh search to find quarters whose inputs changed."""
    import hashlib

    text = "\n".join(f"{k}@{versions[k]}" for k in sorted(versions))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _composite_digest(summary: Mapping[str, Any]) -> str:
    versions = summary.get("item_versions") or {i: "" for i in summary.get("items", [])}
    return source_digest(versions)


def landcover_specs(cfg: PipelineConfig, classify_dir: str, comp_dir: str, quarters: Sequence[Quarter],
                    model: Mapping[str, str], context: Sequence[Quarter] | None = None) -> list[ItemSpec]:  # fmt: skip
    """Item specs of the land-cover and confidence products for ``quarters`` (every tile).

    A refined quarter's inputs are the source items of every quarter in its temporal window that
    was classified (``context``, default ``quarters``); a quarter's confidence depends on its own only.
    """
    grid = OutputGrid.from_config(cfg)
    half = cfg.science.landcover.temporal_window // 2
    res = grid.grid.resolution_for
    qset = set(context or quarters) | set(quarters)
    comps = _summaries(cfg, comp_dir, qset)
    own = {q: list(comps[q].get("items", [])) for q in qset}
    specs = []
    for q in sorted(quarters):
        era = sorted(w for w in qset if res(w) == res(q))
        at = era.index(q)
        window = era[max(0, at - half) : at + half + 1]  # the quarters refinement actually stacked
        inputs = tuple(sorted({i for w in window for i in own[w]}))
        span = f"{window[0]}–{window[-1]}" if len(window) > 1 else str(window[0])
        lc_extra, lc_lineage = _flag(
            {"lpqlc:model": dict(model), "lpqlc:window": [str(w) for w in window]},
            f"Temporal mode over {span} of CCTS/HRFormer class predictions (checkpoint {model['checksum'][:16]}…) "
            f"on quarterly median composites of {len(inputs)} source items (listed in the lineage document)",
            _unreadable(comps[w] for w in window))  # fmt: skip
        conf_extra, conf_lineage = _flag(
            {"lpqlc:model": dict(model), "lpqlc:source_digest": _composite_digest(comps[q])},
            f"Maximum class probability of the CCTS/HRFormer prediction (checkpoint {model['checksum'][:16]}…) on "
            f"the {q} median composite of {len(own[q])} source items (listed in the lineage document)",
            _unreadable([comps[q]]))  # fmt: skip
        for index, _ in grid.iter_tiles(q):
            t = tile_id(index)
            specs.append(ItemSpec("landcover", str(q), t, {"landcover": f"{classify_dir}/refined/{q}/{t}/class.tif"},
                                  lineage=lc_lineage, inputs=inputs, extra=lc_extra))  # fmt: skip
            specs.append(ItemSpec("landcover-confidence", str(q), t,
                                  {"confidence": f"{classify_dir}/raw/{q}/{t}/confidence.tif"},
                                  lineage=conf_lineage, inputs=tuple(own[q]), extra=conf_extra))  # fmt: skip
    return specs


def erosion_specs(cfg: PipelineConfig, erosion_dir: str, comp_dir: str, quarters: Sequence[Quarter],
                  years: Sequence[int]) -> list[ItemSpec]:  # fmt: skip
    """Item specs of the quarterly and annual erosion products. A quarterly item's inputs are its land-cover
    item, the land-cover items of the quarters (of the configured period or of ``quarters``) that may fill its class gaps
    (quality 5, :func:`lpqlc.erosion.gapfill.landcover_candidates`, in the order they are tried) and its
    composite's source items."""
    from lpqlc.erosion.gapfill import landcover_candidates

    grid = OutputGrid.from_config(cfg)
    period = set(cfg.quarters) | set(quarters)
    lc = collection_id(cfg, "landcover")
    ero = collection_id(cfg, "erosion")
    anc = cfg.sources.collections
    specs = []
    comps = _summaries(cfg, comp_dir, quarters)
    for q in sorted(quarters):
        comp = list(comps[q].get("items", []))
        bad = _unreadable([comps[q]])
        fillers = [c for c in landcover_candidates(q, cfg.science.rusle.landcover_gapfill) if c in period]
        for index, _ in grid.iter_tiles(q):
            t = tile_id(index)
            lc_id = item_id(lc, Period.of(q), t)
            filler_ids = [item_id(lc, Period.of(c), t) for c in fillers]
            gaps = f"; its class gaps (quality 5) filled from {', '.join(filler_ids)}, first that has one" if fillers else ""
            extra, lineage = _flag({}, (
                f"RUSLE A = R·K·LS·C·P: C and P from land cover {lc_id}{gaps}, and FVC of the {q} composite of "
                f"{len(comp)} source items (listed in the lineage document); R from {anc.precipitation}, K from "
                f"{anc.soil}, LS from {anc.dem}"), bad)  # fmt: skip
            specs.append(ItemSpec("erosion", str(q), t, {"erosion": f"{erosion_dir}/{q}/{t}/erosion.tif",
                                                          "quality": f"{erosion_dir}/{q}/{t}/quality.tif"},
                                  lineage=lineage, inputs=(lc_id, *filler_ids, *comp), extra=extra))  # fmt: skip
    for y in sorted(years):
        for index, _ in grid.iter_tiles(Quarter(y, 1)):
            t = tile_id(index)
            qids = tuple(item_id(ero, Period.of(Quarter(y, n)), t) for n in (1, 2, 3, 4))
            specs.append(ItemSpec(
                "erosion-annual", str(y), t,
                {"erosion": f"{erosion_dir}/{y}/{t}/erosion.tif", "grade": f"{erosion_dir}/{y}/{t}/grade.tif",
                 "quality": f"{erosion_dir}/{y}/{t}/quality.tif"},
                lineage=f"Sum of the quarterly soil loss {', '.join(qids)}; grades after SL 190-2007",
                inputs=qids,
            ))  # fmt: skip
    return specs


def model_identity(url: str, store: Store | None) -> dict[str, str]:
    """``lpqlc:model`` of the land-cover items: the checkpoint URL and its sha2-256 multihash."""
    from lpqlc.publish.items import multihash

    if not exists(url, store):
        from lpqlc.errors import ConfigError

        raise ConfigError(f"model checkpoint {url} does not exist: train one with `lpqlc train`")
    return {"checkpoint": url, "checksum": multihash(read_bytes(url, store))}
