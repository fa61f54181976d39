"""A tile's composite graph built and computed inside its worker task (odc-stats' pattern).

Building a 10 m tile's odc-stac graph on the client costs ~1–4 s (odc-stac makes a task per item ×
asset × chunk, ~10,000 for a 4096² tile of ~75 items, and projects every item's footprint to choose
them): hours of client time per plateau quarter before a pixel is read. So the client submits one
small task per tile instead, holding the tile's GeoBox and its items as compact JSON (made once per
quarter by :func:`portable_items`, as tiles first need them), and the worker builds the tile's graph
(:func:`lpqlc.composite.build.build_composite`) and computes it on its own synchronous scheduler
(:func:`tile_block`): memory is bounded by the tile, the client's per-tile cost is the spatial-index
query, the unit key and one submit. odc-stats submits its per-tile work the same way; neither odc-stac
nor stackstac offers a ready-made "build the graph on the worker" entry point, hence these few lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import dask.array as da
import numpy as np
import pystac
from odc.geo.geobox import GeoBox

from lpqlc.config.science import CompositeConfig
from lpqlc.sources.rules import SourceRule

__all__ = ["PortableItems", "portable_items", "tile_items", "tile_block"]


class PortableItems(dict[str, str]):
    """Item id → the item as JSON with absolute asset hrefs and no links (a static catalog's relative
    hrefs would not resolve on a worker, and links would drag the catalog along). Each is made when a
    tile first asks for it (``__missing__``) and kept for the quarter's other tiles: items that feed no
    tile cost nothing. A tile task receives the strings of its items only (a few kB each)."""

    def __init__(self, items: Iterable[pystac.Item]):
        super().__init__()
        self._items = {it.id: it for it in items}

    def __missing__(self, item_id: str) -> str:
        it = self._items[item_id]
        doc = it.to_dict(include_self_link=False, transform_hrefs=False)
        doc["links"] = []
        for key, asset in it.assets.items():
            doc["assets"][key]["href"] = asset.get_absolute_href() or asset.href
        self[item_id] = text = json.dumps(doc, separators=(",", ":"))
        return text


def portable_items(items: Iterable[pystac.Item]) -> PortableItems:
    """The quarter's items for the tile tasks (:class:`PortableItems`, made lazily, once per quarter)."""
    return PortableItems(items)


def tile_items(sources: Iterable[str]) -> list[pystac.Item]:
    """The pystac items of a tile task, from :func:`portable_items`' strings."""
    return [pystac.Item.from_dict(json.loads(s), migrate=False) for s in sources]


def tile_block(
    sources: tuple[str, ...],
    rule: SourceRule,
    cfg: CompositeConfig,
    gbox: GeoBox,
    chunk_size: int,
    names: list[str],
    env: dict[str, Any],
) -> np.ndarray:
    """One tile's composite layers ``names`` as a (layer, y, x) float32 array, computed here (on a worker).

    ``sources``: the tile's items (:func:`portable_items`); ``env``: GDAL options (the S3 endpoint…),
    given to odc-stac's reader configuration and to stackstac's reads. The graph runs on the synchronous
    scheduler of this task: the worker's threads already run one tile each, and chunks are computed one
    after another, so memory stays that of the tile's output plus one chunk's stacks.
    """
    import odc.stac

    from lpqlc.composite.build import build_composite

    odc.stac.configure_rio(cloud_defaults=True, **env)
    comp = build_composite(tile_items(sources), rule, cfg, gbox, chunk_size, env=env)
    block = da.stack([comp[n].data.astype(np.float32) for n in names])
    return np.asarray(block.compute(scheduler="synchronous"))
