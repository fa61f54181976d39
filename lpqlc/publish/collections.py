"""The published products and their STAC collections, made from the JSON templates in ``stac/``.

A template holds what does not change between runs (title, description, keywords, providers, the
``item_assets`` with class tables and band units). The pipeline config fills in the rest: the id
prefix, the classes and colours actually used, the licence, the extent of the published items, and
the links to the collection's indexes (kerchunk datacubes, stac-geoparquet).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from lpqlc.config import PipelineConfig
from lpqlc.errors import ConfigError

__all__ = ["Product", "PRODUCTS", "product", "load_template", "collection_id", "collection_doc"]


@dataclass(frozen=True)
class Product:
    """A published product: its collection template, the period of its items and its asset keys."""

    key: str
    period: Literal["quarter", "year"]
    assets: tuple[str, ...]
    #: Assets holding class codes (overviews by mode, a colour table, classification:classes).
    classes: tuple[str, ...] = ()


PRODUCTS: dict[str, Product] = {
    p.key: p
    for p in (
        Product("landcover", "quarter", ("landcover",), classes=("landcover",)),
        Product("landcover-confidence", "quarter", ("confidence",)),
        Product("erosion", "quarter", ("erosion", "quality"), classes=("quality",)),
        Product("erosion-annual", "year", ("erosion", "grade", "quality"), classes=("grade", "quality")),
    )
}


def product(key: str) -> Product:
    """The product named ``key`` (``landcover``, ``landcover-confidence``, ``erosion``, ``erosion-annual``)."""
    try:
        return PRODUCTS[key]
    except KeyError:
        raise ConfigError(f"no product {key!r}; products are {', '.join(PRODUCTS)}") from None


def collection_id(cfg: PipelineConfig, key: str) -> str:
    """``<publish.collection_prefix>-<product>``."""
    return f"{cfg.publish.collection_prefix}-{key}"


def load_template(key: str) -> dict[str, Any]:
    """The template ``stac/<key>.json`` (shipped in the package as ``lpqlc/data/stac``)."""
    f = resources.files("lpqlc") / "data" / "stac" / f"{key}.json"
    try:
        return json.loads(f.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise ConfigError(f"no collection template stac/{key}.json") from None


def _landcover_classes(cfg: PipelineConfig) -> list[dict[str, Any]]:
    lc = cfg.science.landcover
    return [
        {"value": code, "name": name.lower().replace(" ", "-"), "description": name,
         "color_hint": lc.colours[code].lstrip("#").lower()}
        for code, name in sorted(lc.classes.items())
    ]  # fmt: skip


def _grade_classes(cfg: PipelineConfig, template: list[dict[str, Any]]) -> list[dict[str, Any]]:
    g = cfg.science.rusle.grades
    colours = [c.get("color_hint") for c in template]
    out = []
    for i, name in enumerate(g.names):
        lo = g.breaks[i - 1] if i else None
        hi = g.breaks[i] if i < len(g.breaks) else None
        span = f"A < {hi:g}" if lo is None else (f"A ≥ {lo:g}" if hi is None else f"{lo:g} ≤ A < {hi:g}")
        entry = {"value": i + 1, "name": name, "description": f"{name}: {span} t/(hm²·a)"}
        if i < len(colours) and colours[i]:
            entry["color_hint"] = colours[i]
        out.append(entry)
    return out


def item_assets(cfg: PipelineConfig, key: str) -> dict[str, Any]:
    """The collection's ``item_assets`` with the configured class tables filled in."""
    assets = copy.deepcopy(load_template(key)["item_assets"])
    if "landcover" in assets:
        assets["landcover"]["classification:classes"] = _landcover_classes(cfg)
    if "grade" in assets:
        assets["grade"]["classification:classes"] = _grade_classes(cfg, assets["grade"]["classification:classes"])
    return assets  # type: ignore[no-any-return]


def class_colours(cfg: PipelineConfig, key: str, asset: str) -> dict[int, str]:
    """Class code → ``#rrggbb`` for an asset's embedded colour table."""
    classes = item_assets(cfg, key)[asset].get("classification:classes", [])
    return {int(c["value"]): "#" + c["color_hint"] for c in classes if c.get("color_hint")}


def collection_doc(cfg: PipelineConfig, key: str, items: Sequence[dict[str, Any]],
                   assets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The collection document for product ``key`` over its published ``items`` (extent from them)."""
    doc = load_template(key)
    doc["id"] = collection_id(cfg, key)
    doc["license"] = cfg.publish.license
    doc["item_assets"] = item_assets(cfg, key)
    if items:
        w = min(i["bbox"][0] for i in items)
        s = min(i["bbox"][1] for i in items)
        e = max(i["bbox"][2] for i in items)
        n = max(i["bbox"][3] for i in items)
        start = min(i["properties"]["start_datetime"] for i in items)
        end = max(i["properties"]["end_datetime"] for i in items)
        doc["extent"] = {"spatial": {"bbox": [[w, s, e, n]]}, "temporal": {"interval": [[start, end]]}}
        doc["summaries"] = {
            "lpqlc:period": sorted({i["properties"]["lpqlc:period"] for i in items}),
            "gsd": sorted({i["assets"][a]["raster:bands"][0]["spatial_resolution"]
                           for i in items for a in i["assets"]}),  # fmt: skip
        }
    if assets:
        doc["assets"] = assets
    doc["links"] = []
    return doc
