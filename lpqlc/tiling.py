"""Names and read-back helpers shared by the stages that write tiles and those that read them
(composite, classify, erosion, publish, update): output tile names, a source item's change stamp,
and reading a quarter's composite back (its ``composite.json`` summary and its layers' tile COGs).

They live below :mod:`lpqlc.composite` and :mod:`lpqlc.publish` so that neither package imports the
other (``tests/test_storage.py`` checks the import graph).
"""

from __future__ import annotations

import json
from typing import Any

from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter
from lpqlc.storage import exists, parse_storage_url, read_bytes

__all__ = ["tile_id", "item_stamp", "default_composites_dir", "composite_summary", "layer_urls", "composite_layer"]


def tile_id(index: tuple[int, int]) -> str:
    """Name of an output tile from its (row, column) index in the grid's tiling, e.g. ``x002y001``."""
    return f"x{index[1]:03d}y{index[0]:03d}"


def item_stamp(item: Any) -> str:
    """When a source item last changed: its ``updated``, else ``created``, else its datetime (ISO).
    ``item``: a pystac Item or its dict (as tasks are sent items)."""
    p = item.get("properties", {}) if isinstance(item, dict) else item.properties
    return str(p.get("updated") or p.get("created") or p.get("datetime") or p.get("start_datetime") or "")


def default_composites_dir(cfg: PipelineConfig) -> str:
    """``<storage.url>/composites``: where the model jobs find (and make) composites by default."""
    return f"{parse_storage_url(cfg.storage.url).url.rstrip('/')}/composites"


def composite_summary(cfg: PipelineConfig, comp_dir: str, quarter: Quarter) -> dict[str, Any]:
    """The ``composite.json`` a composite run wrote for ``quarter`` (tiles, layers, search report…)."""
    url = f"{comp_dir}/{quarter}/composite.json"
    if not exists(url, cfg.store):
        raise LpqlcError(f"no composite of {quarter} under {comp_dir}: run `lpqlc composite` first")
    return json.loads(read_bytes(url, cfg.store))  # type: ignore[no-any-return]


def layer_urls(comp_dir: str, quarter: Quarter, summary: dict[str, Any], layer: str) -> list[str]:
    """The tile COGs of one layer of a quarter's composite."""
    return [f"{comp_dir}/{quarter}/{t}/{layer}.tif" for t in summary["tiles"]]


def composite_layer(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, layer: str, *,
                    resampling: str = "nearest", chunks: int = 1024) -> Any:  # fmt: skip
    """Lazy (y, x) mosaic of one composite layer's tiles on the quarter's AOI grid."""
    from lpqlc.sources.rasters import load_files

    urls = layer_urls(comp_dir, quarter, composite_summary(cfg, comp_dir, quarter), layer)
    gbox = OutputGrid.from_config(cfg).geobox(quarter)
    return load_files(urls, gbox, name=layer, resampling=resampling, chunks=chunks, store=cfg.store)
