"""Training data of CCTS from the quarterly composites (SCIENCE.md §1), read tile by tile.

- Labelled set D^l: the label year's composites (2021) with the WorldCover-derived 8-class labels, on
  class-balanced tiles (:mod:`lpqlc.model.tiles`: per-tile class histograms as a Dask reduction, up
  to ``landcover.tiles_per_class`` tiles per class, a tile index on disk); a batch draws a class
  uniformly, then one of its tiles.
- Unlabelled set D^u: every other quarter of the same tiles, of both sensor eras: a Landsat-era
  (30 m) composite is read for the same ground footprint and resampled (nearest: the 30 m pixels
  nest 3×3 on the 10 m grid) onto the label era's pixel grid, so stage 1's positive pairs include
  cross-sensor pairs and stage 3's pseudo-labels cover Landsat quarters.

Nothing AOI-sized is loaded: composites and labels stay lazy (dask), the normalisation statistics are
a Dask reduction, and each draw reads one tile window of one quarter. Each sensor era is normalised
by its own band mean and standard deviation (the label era's from its labelled quarters, another
era's from all its quarters); missing pixels become 0 after normalisation and are flagged invalid.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np

from lpqlc.composite.normalise import NormStats
from lpqlc.composite.run import composite_layer
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.grid import OutputGrid
from lpqlc.model.losses import IGNORE
from lpqlc.model.tiles import TileIndex, WindowReader, tile_index
from lpqlc.quarter import Quarter

__all__ = ["TrainingData", "lazy_composite", "load_composite", "lazy_labels", "load_labels", "load_training_data",
           "Sampler"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The training quarters, a window reader over their lazy composites and the labels, which quarters
    are labelled, the class codes, band names, per-era normalisation and the selected tiles."""

    quarters: list[Quarter]
    reader: WindowReader
    labelled: list[int]
    classes: list[int]
    bands: list[str]
    norm: NormStats
    index: TileIndex
    #: Normalisation per sensor era (pixel size in metres as ``era_key``) and each quarter's era key.
    era_norms: dict[str, NormStats] = field(default_factory=dict)
    eras: list[str] = field(default_factory=list)
    #: Pixel size (metres) of the grid the tiles are on: the label era's.
    resolution: float = 0.0


def lazy_composite(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, onto: Quarter | None = None,
                   chunks: int = 1024) -> da.Array:  # fmt: skip
    """Lazy (bands, H, W) float32 reflectance of a quarter's composite on the AOI grid (NaN = missing);
    with ``onto``, resampled (nearest, lazily by odc-geo) onto the grid of ``onto``'s era."""
    layers = [composite_layer(cfg, comp_dir, quarter, b, chunks=chunks) for b in cfg.science.composite.bands]
    grid = OutputGrid.from_config(cfg)
    if onto is not None and grid.grid.resolution_for(onto) != grid.grid.resolution_for(quarter):
        from odc.geo.xr import xr_reproject

        gbox = grid.geobox(onto)
        layers = [xr_reproject(x, gbox, resampling="nearest", dst_nodata=np.nan, chunks=(chunks, chunks)) for x in layers]
    return da.stack([x.data.astype(np.float32) for x in layers])


def load_composite(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, onto: Quarter | None = None) -> np.ndarray:
    """(bands, H, W) float32 reflectance of a quarter's composite, computed (see :func:`lazy_composite`)."""
    return np.asarray(lazy_composite(cfg, comp_dir, quarter, onto).compute())


def _remap(codes: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[np.clip(codes.astype(np.int64), 0, 255)]


def lazy_labels(cfg: PipelineConfig, quarter: Quarter, chunks: int = 1024) -> da.Array:
    """Lazy (H, W) int64 class indices of the WorldCover labels on the quarter's grid (mode), IGNORE where none."""
    import odc.stac

    from lpqlc.sources.search import search_collection

    lc_cfg = cfg.science.landcover
    gbox = OutputGrid.from_config(cfg).geobox(quarter)
    items = search_collection(cfg, cfg.sources.collections.worldcover)
    key = "map" if "map" in items[0].assets else next(iter(items[0].assets))
    ds = odc.stac.load(items, bands=[key], geobox=gbox, resampling="mode", groupby=lambda *_: 0,
                       chunks={"x": chunks, "y": chunks})  # fmt: skip
    lut = np.full(256, IGNORE, np.int64)
    classes = sorted(lc_cfg.classes)
    for i, c in enumerate(classes):
        lut[c] = i
    for src, dst in lc_cfg.worldcover_remap.items():
        lut[src] = classes.index(dst)
    return ds[key].isel(time=0).data.map_blocks(_remap, lut, dtype=np.int64)


def load_labels(cfg: PipelineConfig, quarter: Quarter) -> np.ndarray:
    """(H, W) class indices of the WorldCover labels, computed (see :func:`lazy_labels`)."""
    return np.asarray(lazy_labels(cfg, quarter).compute())


def _era_stats(images: list[da.Array], bands: list[str], source: str) -> NormStats:
    """Band mean/std over the valid pixels of several lazy (bands, y, x) images: one Dask reduction."""
    parts = []
    for img in images:
        ok = da.isfinite(img).all(axis=0)
        x = da.where(ok[None], img, 0).astype(np.float64)
        parts.append((x.sum(axis=(1, 2)), (x * x).sum(axis=(1, 2)), ok.sum()))
    (done,) = dask.compute(parts)
    s1 = sum(p[0] for p in done)
    s2 = sum(p[1] for p in done)
    n = int(sum(p[2] for p in done))
    if n < 2:
        raise LpqlcError(f"{source}: {n} valid pixel(s), normalisation statistics are undefined")
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    return NormStats(mean={b: float(mean[i]) for i, b in enumerate(bands)},
                     std={b: float(std[i]) for i, b in enumerate(bands)}, n={b: n for b in bands}, source=source)  # fmt: skip


def load_training_data(cfg: PipelineConfig, comp_dir: str, quarters: list[Quarter], index_url: str | None = None) -> TrainingData:
    """Lazy composites of ``quarters`` (any sensor era, on the label era's grid), the label year's
    labels, each era's normalisation statistics, and the class-balanced tile index (kept at
    ``index_url`` so reruns and resumes read the same tiles)."""
    from lpqlc.model.checkpoint import era_key

    year = cfg.science.landcover.label_year
    labelled = [i for i, q in enumerate(quarters) if q.year == year]
    if not labelled:
        raise LpqlcError(f"the training quarters hold none of the label year {year}")
    cc = cfg.science.ccts
    grid = OutputGrid.from_config(cfg).grid
    label_q = quarters[labelled[0]]
    chunks = max(cfg.grid.chunk_size // cc.tile_size, 1) * cc.tile_size
    eras = [era_key(grid.resolution_for(q)) for q in quarters]
    images = [lazy_composite(cfg, comp_dir, q, onto=label_q, chunks=chunks) for q in quarters]
    bands = list(cfg.science.composite.bands)
    era_norms: dict[str, NormStats] = {}
    for era in sorted(set(eras)):
        own = [i for i, e in enumerate(eras) if e == era]
        basis = [i for i in own if i in labelled] or own
        era_norms[era] = _era_stats([images[i] for i in basis], bands,
                                    f"{era} m era: {', '.join(str(quarters[i]) for i in basis)} composites")  # fmt: skip
    norms = [(np.array([era_norms[e].mean[b] for b in bands], np.float32),
              np.array([era_norms[e].std[b] or 1.0 for b in bands], np.float32)) for e in eras]  # fmt: skip
    labels = lazy_labels(cfg, label_q, chunks=chunks)
    classes = sorted(cfg.science.landcover.classes)
    key = hashlib.sha256(json.dumps([cfg.grid.model_dump(mode="json"), cfg.aoi.model_dump(mode="json"), str(label_q),
                                     cc.tile_size, cfg.science.landcover.tiles_per_class, cc.seed,
                                     cfg.sources.collections.worldcover]).encode()).hexdigest()  # fmt: skip
    index = tile_index(labels, cc.tile_size, len(classes), cfg.science.landcover.tiles_per_class, cc.seed, index_url,
                       key, cfg.store)  # fmt: skip
    return TrainingData(quarters=quarters, reader=WindowReader(images, labels, norms), labelled=labelled, classes=classes,
                        bands=bands, norm=era_norms[eras[labelled[0]]], index=index, era_norms=era_norms, eras=eras,
                        resolution=grid.resolution_for(label_q))  # fmt: skip


class Sampler:
    """Seeded tile batches from the tile index: class-balanced labelled tiles, unlabelled tiles,
    cross-time pairs. Each draw reads one tile window of one quarter."""

    def __init__(self, data: TrainingData, tile: int, seed: int):
        self.d, self.tile = data, tile
        self.rng = np.random.default_rng(seed)
        if data.index.size != tile:
            raise LpqlcError(f"the tile index holds {data.index.size} px tiles, training asks for {tile} px")
        self.by_class = {c: ix for c, ix in data.index.by_class.items() if ix}
        self.unlabelled = [i for i in range(len(data.quarters)) if i not in data.labelled] or list(data.labelled)
        #: Tiles drawn so far per use (``pairs``, ``unlabelled``, ``labelled``) and quarter.
        self.draws: Counter[tuple[str, str]] = Counter()

    def _origin(self, k: int) -> tuple[int, int]:
        r, c = self.d.index.tiles[k]
        return r * self.tile, c * self.tile

    def _any_tile(self) -> tuple[int, int]:
        return self._origin(int(self.rng.integers(len(self.d.index.tiles))))

    def _crop(self, q: int, y0: int, x0: int, use: str = "") -> tuple[np.ndarray, np.ndarray]:
        self.draws[(use, str(self.d.quarters[q]))] += 1
        return self.d.reader.read(q, y0, x0, self.tile)

    def labelled(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (n, B, t, t), y (n, t, t) class indices (IGNORE where unlabelled or invalid)."""
        xs, ys = [], []
        classes = sorted(self.by_class)
        for _ in range(n):
            c = classes[int(self.rng.integers(len(classes)))]
            y0, x0 = self._origin(self.by_class[c][int(self.rng.integers(len(self.by_class[c])))])
            q = self.d.labelled[int(self.rng.integers(len(self.d.labelled)))]
            x, v = self._crop(q, y0, x0, "labelled")
            y = self.d.reader.read_labels(y0, x0, self.tile)
            y[~v] = IGNORE
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)

    def unlabelled_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (n, B, t, t) from quarters other than the label year's, and validity (n, t, t)."""
        out = []
        for _ in range(n):
            q = self.unlabelled[int(self.rng.integers(len(self.unlabelled)))]
            out.append(self._crop(q, *self._any_tile(), "unlabelled"))
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])

    def unlabelled_pairs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """n tiles of D^u, each at two different unlabelled quarters (any era): xa, xb (n, B, t, t) and
        their validity va, vb (n, t, t); on one pixel grid: pixel (i, j) of xa and xb is the same ground."""
        qs = self.unlabelled if len(self.unlabelled) > 1 else list(range(len(self.d.quarters)))
        a_s, b_s = [], []
        for _ in range(n):
            y0, x0 = self._any_tile()
            a, b = self.rng.choice(len(qs), size=2, replace=False)
            a_s.append(self._crop(qs[int(a)], y0, x0, "unlabelled"))
            b_s.append(self._crop(qs[int(b)], y0, x0, "unlabelled"))
        return (np.stack([o[0] for o in a_s]), np.stack([o[1] for o in a_s]),
                np.stack([o[0] for o in b_s]), np.stack([o[1] for o in b_s]))  # fmt: skip

    def pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (2n, B, t, t): n tiles, each at two different quarters; location ids (2n,)."""
        xs, loc = [], []
        nq = len(self.d.quarters)
        for i in range(n):
            y0, x0 = self._any_tile()
            a, b = self.rng.choice(nq, size=2, replace=False)
            xs += [self._crop(int(a), y0, x0, "pairs")[0], self._crop(int(b), y0, x0, "pairs")[0]]
            loc += [i, i]
        return np.stack(xs), np.asarray(loc)
