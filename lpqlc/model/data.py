"""Training data of CCTS from the quarterly composites (SCIENCE.md §1).

- Labelled set D^l: the label year's composites (2021) with the WorldCover-derived 8-class labels,
  sampled class-balanced (a class drawn uniformly, then a tile around one of its pixels).
- Unlabelled set D^u: every other quarter of the same area; stage 1 takes the same tile at two
  different quarters as a positive pair.

The composites are read (lazily, then computed at this edge) from the ``lpqlc composite`` outputs and
normalised band-wise by the label year's mean and standard deviation; missing pixels become 0 after
normalisation and are flagged invalid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lpqlc.composite.normalise import BandSums, NormStats
from lpqlc.composite.run import composite_layer
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.grid import OutputGrid
from lpqlc.model.losses import IGNORE
from lpqlc.quarter import Quarter

__all__ = ["TrainingData", "load_composite", "load_labels", "load_training_data", "Sampler"]

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Composites (Q, B, H, W) normalised float32, their validity (Q, H, W), labels (H, W) as class
    indices (IGNORE where unknown), which quarters are labelled, the class codes and band names."""

    quarters: list[Quarter]
    images: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    labelled: list[int]
    classes: list[int]
    bands: list[str]
    norm: NormStats


def load_composite(cfg: PipelineConfig, comp_dir: str, quarter: Quarter) -> np.ndarray:
    """(bands, H, W) float32 reflectance of a quarter's composite on the AOI grid (NaN = missing)."""
    bands = [composite_layer(cfg, comp_dir, quarter, b).values for b in cfg.science.composite.bands]
    return np.stack(bands).astype(np.float32)


def load_labels(cfg: PipelineConfig, quarter: Quarter) -> np.ndarray:
    """(H, W) class indices of the WorldCover labels on the quarter's grid (mode), IGNORE where none."""
    import odc.stac

    from lpqlc.sources.search import search_collection

    lc_cfg = cfg.science.landcover
    gbox = OutputGrid.from_config(cfg).geobox(quarter)
    items = search_collection(cfg, cfg.sources.collections.worldcover)
    key = "map" if "map" in items[0].assets else next(iter(items[0].assets))
    ds = odc.stac.load(items, bands=[key], geobox=gbox, resampling="mode", groupby=lambda *_: 0)
    codes = ds[key].isel(time=0).values.astype(np.int64)
    lut = np.full(256, IGNORE, np.int64)
    classes = sorted(lc_cfg.classes)
    for i, c in enumerate(classes):
        lut[c] = i
    for src, dst in lc_cfg.worldcover_remap.items():
        lut[src] = classes.index(dst)
    return lut[np.clip(codes, 0, 255)]


def load_training_data(cfg: PipelineConfig, comp_dir: str, quarters: list[Quarter]) -> TrainingData:
    """Composites of ``quarters`` and the label year's labels, normalised by the label year's statistics."""
    year = cfg.science.landcover.label_year
    labelled = [i for i, q in enumerate(quarters) if q.year == year]
    if not labelled:
        raise LpqlcError(f"the training quarters hold none of the label year {year}")
    res = {OutputGrid.from_config(cfg).grid.resolution_for(q) for q in quarters}
    if len(res) > 1:
        raise LpqlcError(f"training quarters span several resolutions {sorted(res)}: keep them in one sensor era")
    raw = np.stack([load_composite(cfg, comp_dir, q) for q in quarters])
    bands = list(cfg.science.composite.bands)
    sums = sum((BandSums.of({b: raw[i, j] for j, b in enumerate(bands)}) for i in labelled), BandSums())
    norm = sums.stats(source=f"{year} composites")
    valid = np.isfinite(raw).all(axis=1)
    images = norm.normalise(np.nan_to_num(raw, nan=0.0).transpose(1, 0, 2, 3), bands).transpose(1, 0, 2, 3)
    images[~np.broadcast_to(valid[:, None], images.shape)] = 0.0
    labels = load_labels(cfg, quarters[labelled[0]])
    return TrainingData(quarters=quarters, images=np.ascontiguousarray(images, np.float32), valid=valid,
                        labels=labels, labelled=labelled, classes=sorted(cfg.science.landcover.classes),
                        bands=bands, norm=norm)  # fmt: skip


class Sampler:
    """Seeded tile batches: class-balanced labelled tiles, unlabelled tiles, cross-time pairs."""

    def __init__(self, data: TrainingData, tile: int, seed: int):
        self.d, self.tile = data, tile
        self.rng = np.random.default_rng(seed)
        _, _, h, w = data.images.shape
        if h < tile or w < tile:
            raise LpqlcError(f"the area ({h}×{w} px) is smaller than a training tile ({tile} px)")
        self.by_class = {c: np.flatnonzero(data.labels.ravel() == c) for c in range(len(data.classes))}
        self.by_class = {c: ix for c, ix in self.by_class.items() if ix.size}
        self.unlabelled = [i for i in range(len(data.quarters)) if i not in data.labelled] or list(data.labelled)

    def _window(self, cy: int | None = None, cx: int | None = None) -> tuple[int, int]:
        _, _, h, w = self.d.images.shape
        t = self.tile
        if cy is None or cx is None:
            return int(self.rng.integers(0, h - t + 1)), int(self.rng.integers(0, w - t + 1))
        y0 = int(np.clip(cy - t // 2 + self.rng.integers(-t // 4, t // 4 + 1), 0, h - t))
        x0 = int(np.clip(cx - t // 2 + self.rng.integers(-t // 4, t // 4 + 1), 0, w - t))
        return y0, x0

    def _crop(self, q: int, y0: int, x0: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.tile
        return self.d.images[q, :, y0 : y0 + t, x0 : x0 + t], self.d.valid[q, y0 : y0 + t, x0 : x0 + t]

    def labelled(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (n, B, t, t), y (n, t, t) class indices (IGNORE where unlabelled or invalid)."""
        xs, ys = [], []
        classes = sorted(self.by_class)
        w = self.d.images.shape[-1]
        for _ in range(n):
            c = classes[int(self.rng.integers(len(classes)))]
            pix = int(self.rng.choice(self.by_class[c]))
            y0, x0 = self._window(pix // w, pix % w)
            q = self.d.labelled[int(self.rng.integers(len(self.d.labelled)))]
            x, v = self._crop(q, y0, x0)
            y = self.d.labels[y0 : y0 + self.tile, x0 : x0 + self.tile].copy()
            y[~v] = IGNORE
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)

    def unlabelled_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (n, B, t, t) from quarters other than the label year's, and validity (n, t, t)."""
        out = [self._crop(self.unlabelled[int(self.rng.integers(len(self.unlabelled)))], *self._window()) for _ in range(n)]
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])

    def pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """x (2n, B, t, t): n locations, each at two different quarters; location ids (2n,)."""
        xs, loc = [], []
        nq = len(self.d.quarters)
        for i in range(n):
            y0, x0 = self._window()
            a, b = self.rng.choice(nq, size=2, replace=False)
            xs += [self._crop(int(a), y0, x0)[0], self._crop(int(b), y0, x0)[0]]
            loc += [i, i]
        return np.stack(xs), np.asarray(loc)
