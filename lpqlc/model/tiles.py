"""Training tiles: class-balanced selection from per-tile class histograms, a tile index on disk, and
windowed reads of the composites and labels (SCIENCE.md §1: 256 px tiles, 1,800 per class).

The label raster is read lazily in tile-sized chunks; each chunk's class histogram is one task of a
Dask reduction (``map_blocks`` → an (tiles_y, tiles_x, classes) count array, the only thing computed
whole). For each class, the tiles holding the most pixels of it (ties broken by a seeded draw) are
kept, up to ``tiles_per_class``; tiles without any labelled pixel (outside the AOI) are dropped. The
selection is written as JSON next to the checkpoints (``<out>/tiles.json``), so a rerun or a resume
reads the same tiles; a changed grid, tile size or label source makes a new one.

:class:`WindowReader` serves one tile of one quarter at a time from the lazy composites: a training
step holds only its batch in memory, whatever the size of the AOI.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from lpqlc.errors import LpqlcError
from lpqlc.model.losses import IGNORE
from lpqlc.storage import Store, exists, read_bytes, write_bytes

__all__ = ["TileIndex", "tile_histograms", "select_tiles", "tile_index", "WindowReader"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileIndex:
    """Selected training tiles: ``tiles`` (row, col) in units of ``size`` px on the label grid,
    ``by_class[c]`` the indices into ``tiles`` chosen for class index c, ``key`` what they were made from."""

    size: int
    tiles: list[tuple[int, int]]
    by_class: dict[int, list[int]]
    key: str

    def to_json(self) -> bytes:
        doc = {"size": self.size, "key": self.key, "tiles": [list(t) for t in self.tiles],
               "by_class": {str(c): ix for c, ix in self.by_class.items()}}  # fmt: skip
        return (json.dumps(doc) + "\n").encode()

    @classmethod
    def from_json(cls, blob: bytes, where: str) -> TileIndex:
        try:
            doc = json.loads(blob)
            return cls(size=int(doc["size"]), tiles=[(int(r), int(c)) for r, c in doc["tiles"]],
                       by_class={int(c): [int(i) for i in ix] for c, ix in doc["by_class"].items()}, key=str(doc["key"]))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise LpqlcError(f"{where}: not a tile index ({exc})") from None


def _block_hist(block: np.ndarray, n_classes: int) -> np.ndarray:
    v = block[(block >= 0) & (block < n_classes)].astype(np.int64)
    return np.bincount(v, minlength=n_classes).reshape(1, 1, n_classes)


def tile_histograms(labels: da.Array, size: int, n_classes: int) -> np.ndarray:
    """(tiles_y, tiles_x, n_classes) pixel counts of each ``size``-px tile of a lazy (y, x) class-index
    raster (IGNORE and other values not counted); partial edge tiles count what they hold."""
    labels = labels.rechunk((size, size))
    hist = labels.map_blocks(_block_hist, n_classes, dtype=np.int64, new_axis=2,
                             chunks=((1,) * labels.numblocks[0], (1,) * labels.numblocks[1], (n_classes,)))  # fmt: skip
    return np.asarray(hist.compute())


def select_tiles(hist: np.ndarray, per_class: int, seed: int) -> tuple[list[tuple[int, int]], dict[int, list[int]]]:
    """Class-balanced tiles from ``hist`` (tiles_y, tiles_x, C): for each class, up to ``per_class``
    tiles holding the most pixels of it (a seeded random order breaks ties); tiles with no counted
    pixel are never chosen. Returns the tiles (row, col), sorted, and per class the indices into them."""
    ty, tx, n = hist.shape
    flat = hist.reshape(ty * tx, n)
    tie = np.random.default_rng(seed).random(ty * tx)
    chosen: dict[int, list[int]] = {}
    for c in range(n):
        has = np.flatnonzero(flat[:, c] > 0)
        if not has.size:
            continue
        order = has[np.lexsort((tie[has], -flat[has, c]))]
        chosen[c] = [int(i) for i in order[:per_class]]
    keep = sorted({i for ix in chosen.values() for i in ix})
    pos = {t: k for k, t in enumerate(keep)}
    tiles = [(t // tx, t % tx) for t in keep]
    return tiles, {c: [pos[t] for t in ix] for c, ix in chosen.items()}


def tile_index(labels: da.Array, size: int, n_classes: int, per_class: int, seed: int, url: str | None,
               key: str, store: Store | None = None) -> TileIndex:  # fmt: skip
    """The tile index at ``url`` when it was made from the same ``key`` (grid, tile size, labels, seed),
    else computed from ``labels`` and written there (``url`` None: not kept)."""
    if url is not None and exists(url, store):
        idx = TileIndex.from_json(read_bytes(url, store), url)
        if idx.key == key:
            log.info("tile index %s: %d tiles (reused)", url, len(idx.tiles))
            return idx
        log.info("tile index %s was made for other inputs: made again", url)
    tiles, by_class = select_tiles(tile_histograms(labels, size, n_classes), per_class, seed)
    if not tiles:
        raise LpqlcError("no training tile holds a labelled pixel: check the label source and the AOI")
    idx = TileIndex(size=size, tiles=tiles, by_class=by_class, key=key)
    if url is not None:
        write_bytes(url, idx.to_json(), store)
    return idx


class WindowReader:
    """Tile windows of lazy quarterly composites (each (bands, y, x) on the label grid, normalised,
    missing = NaN before normalisation) and of the lazy label raster; reads only the window asked.

    ``images[q]`` are dask arrays; ``read(q, y0, x0, t)`` returns the (bands, t, t) float32 tile
    (missing pixels 0, edge tiles padded with missing) and its (t, t) validity. Windows read recently
    are kept up to ``cache_mb`` (least recently used dropped), so small areas are not re-read every step.
    """

    def __init__(self, images: list[da.Array], labels: da.Array, norms: list[tuple[np.ndarray, np.ndarray]],
                 cache_mb: float = 256.0):  # fmt: skip
        self.images, self.labels, self.norms = images, labels, norms
        self.shape: tuple[int, int] = (int(labels.shape[0]), int(labels.shape[1]))
        self.largest = 0  # the largest array (bytes) a read has allocated: a window, never the AOI
        # recently read windows, least recently used dropped first: memory bounded by cache_mb
        self._cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._cache_bytes, self._cache_max = 0, int(cache_mb * 2**20)
        self.reads = 0

    def _window(self, a: Any, y0: int, x0: int, t: int, fill: float, key: Any = None) -> np.ndarray:
        ck = (key, y0, x0, t)
        if ck in self._cache:
            self._cache.move_to_end(ck)
            return self._cache[ck].copy()
        h, w = self.shape
        win = np.asarray(a[..., y0 : min(y0 + t, h), x0 : min(x0 + t, w)])
        self.reads += 1
        self.largest = max(self.largest, win.nbytes)
        if win.shape[-2:] != (t, t):
            pad = [(0, 0)] * (win.ndim - 2) + [(0, t - win.shape[-2]), (0, t - win.shape[-1])]
            win = np.pad(win, pad, constant_values=fill)
        if win.nbytes <= self._cache_max:
            self._cache[ck] = win
            self._cache_bytes += win.nbytes
            while self._cache_bytes > self._cache_max:
                self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return win.copy()

    def read(self, q: int, y0: int, x0: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        raw = self._window(self.images[q], y0, x0, t, np.nan, q).astype(np.float32)
        valid = np.isfinite(raw).all(0)
        mean, std = self.norms[q]
        x = ((np.nan_to_num(raw) - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
        x[:, ~valid] = 0.0
        return x, valid

    def read_labels(self, y0: int, x0: int, t: int) -> np.ndarray:
        return self._window(self.labels, y0, x0, t, IGNORE, "labels").astype(np.int64)
