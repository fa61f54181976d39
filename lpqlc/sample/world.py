"""The sample archive's synthetic world: a loess hilly-gully catchment with a known land-cover history.

Everything is a deterministic function of a seed. The world lives on a fine UTM grid (10 m, EPSG:32649,
near Yan'an, 36.6°N 110.5°E); any other grid (30 m Landsat, 20 m Sentinel-2 bands, the 1″ DEM in
EPSG:4326, the 250 m soil grid, the 0.05° precipitation grid) samples the world's fields through
:meth:`World.sample`, so every layer describes the same ground.

The land cover of quarter ``t`` follows known rules from a 2000Q1 base map (SCIENCE.md §1 classes):
forest gain from existing stands (afforestation), bare land greening to grassland, grassland turning
to cropland on gentle slopes near the valley, and urban growth around a valley town.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from lpqlc.quarter import Quarter

__all__ = ["World", "WorldSpec", "smooth_field", "TRANSITIONS"]

FOREST, SHRUB, GRASS, CROP, BUILT, BARE, WATER, WETLAND = 10, 20, 30, 40, 50, 60, 80, 90

#: The dynamics the truth follows, in the order they are applied (from → to, name).
TRANSITIONS: tuple[tuple[int, int, str], ...] = (
    (BARE, GRASS, "bare land greening to grassland"),
    (GRASS, FOREST, "afforestation next to existing forest"),
    (SHRUB, FOREST, "shrubland maturing to forest"),
    (GRASS, CROP, "grassland reclaimed as cropland"),
    (CROP, BUILT, "urban growth of the valley town"),
)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth random field of zero mean and unit variance (Gaussian-filtered white noise)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _rank01(a: np.ndarray) -> np.ndarray:
    """Values replaced by their rank in [0, 1) (uniform marginals, same spatial pattern)."""
    r = np.empty(a.size)
    r[np.argsort(a, axis=None, kind="stable")] = np.arange(a.size) / a.size
    return r.reshape(a.shape)


@dataclass(frozen=True)
class WorldSpec:
    """Size and placement of the world: ``size`` fine pixels of ``res`` metres, west/north edge in UTM."""

    seed: int = 42
    size: int = 384
    res: float = 10.0
    epsg: int = 32649
    west: float = 455_040.0
    north: float = 4_051_200.0
    first_quarter: Quarter = Quarter(2000, 1)

    @property
    def transform(self) -> Affine:
        return Affine(self.res, 0.0, self.west, 0.0, -self.res, self.north)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in UTM metres."""
        extent = self.size * self.res
        return self.west, self.north - extent, self.west + extent, self.north


class World:
    """Fields of the synthetic catchment on the fine grid, and the truth map of any quarter."""

    def __init__(self, spec: WorldSpec = WorldSpec()):
        self.spec = spec
        n = spec.size
        rng = np.random.default_rng(spec.seed)
        yy, xx = np.mgrid[0:n, 0:n] / n
        # --- terrain: ridges and gullies, a river valley along a meander
        relief = 0.55 * smooth_field(rng, (n, n), n / 6) + 0.3 * smooth_field(rng, (n, n), n / 16)
        relief += 0.12 * smooth_field(rng, (n, n), n / 48)
        river_y = 0.55 + 0.12 * np.sin(2 * np.pi * (xx * 1.3 + 0.2))
        self.river_dist_px = np.abs(yy - river_y) * n
        valley = np.exp(-((self.river_dist_px / (0.12 * n)) ** 2))
        self.dem = (1180.0 + 120.0 * relief - 170.0 * valley).astype(np.float32)
        gy, gx = np.gradient(self.dem.astype(np.float64), spec.res)
        self.slope_deg = np.degrees(np.arctan(np.hypot(gx, gy))).astype(np.float32)
        # --- independent textures and the per-rule change timing fields
        self.texture = {k: smooth_field(rng, (n, n), s) for k, s in (("a", n / 10), ("b", n / 24), ("c", 3.0))}
        self.timing = {name: _rank01(smooth_field(rng, (n, n), n / 14)) for _, _, name in TRANSITIONS}
        town_row, town_col = (river_y[0, n // 2] - 0.06) * n, n / 2
        rows, cols = np.mgrid[0:n, 0:n]
        self.town_dist_px = np.hypot(rows - town_row, cols - town_col) * (1 + 0.25 * self.texture["b"])
        self.label_noise_field = smooth_field(rng, (n, n), 4.0)

    # ------------------------------------------------------------------------------ land cover
    @cached_property
    def base_map(self) -> np.ndarray:
        """Land cover of the first quarter (ESA WorldCover codes), uint8 (y, x)."""
        n = self.spec.size
        elev = (self.dem - self.dem.min()) / (np.ptp(self.dem) + 1e-9)
        a, b = self.texture["a"], self.texture["b"]
        lc = np.full((n, n), GRASS, np.uint8)
        lc[(self.slope_deg > 14) & (b > 0.6)] = BARE
        lc[(elev > 0.62) & (a > 0.35)] = SHRUB
        lc[(elev > 0.72) & (a > 0.7)] = FOREST
        lc[(self.river_dist_px < 60) & (self.slope_deg < 16)] = CROP
        lc[(self.slope_deg < 12) & (b < 0.0) & (lc == GRASS)] = CROP
        lc[self.river_dist_px < 9] = WETLAND
        lc[self.river_dist_px < 4] = WATER
        lc[(self.town_dist_px < n * 0.07) & (lc != WATER) & (lc != WETLAND)] = BUILT
        return lc

    def change_index(self, rule: str) -> np.ndarray:
        """Quarter index (since the first quarter) at which each pixel undergoes ``rule``; a big value = never."""
        base = self.base_map
        n = self.spec.size
        never = np.full((n, n), 10_000, np.int32)
        u = self.timing[rule]
        if rule == "bare land greening to grassland":
            sel = base == BARE
            return np.where(sel & (u < 0.7), (4 + u * 80).astype(np.int32), never)
        if rule == "afforestation next to existing forest":
            dist = ndimage.distance_transform_edt(base != FOREST)
            t = 6 + dist * 1.4 + 10 * u
            return np.where((base == GRASS) & (dist < 40), t.astype(np.int32), never)
        if rule == "shrubland maturing to forest":
            return np.where((base == SHRUB) & (u > 0.55), (20 + (u - 0.55) * 150).astype(np.int32), never)
        if rule == "grassland reclaimed as cropland":
            sel = (base == GRASS) & (self.slope_deg < 18) & (self.river_dist_px < 110)
            return np.where(sel & (u < 0.6), (24 + u * 90).astype(np.int32), never)
        if rule == "urban growth of the valley town":
            grow = (self.town_dist_px - n * 0.07) / (n * 0.12)
            return np.where((grow > 0) & (grow < 1), (8 + grow * 85 + 4 * u).astype(np.int32), never)
        raise KeyError(rule)

    @cached_property
    def _change_indices(self) -> dict[str, np.ndarray]:
        return {name: self.change_index(name) for _, _, name in TRANSITIONS}

    def truth(self, quarter: Quarter) -> np.ndarray:
        """The true land cover of a quarter (ESA codes), uint8 (y, x) on the fine grid."""
        t = quarter - self.spec.first_quarter
        assert isinstance(t, int)
        lc = self.base_map.copy()
        for src, dst, name in TRANSITIONS:
            lc[(lc == src) & (t >= self._change_indices[name])] = dst
        return lc

    def worldcover_labels(self, year: int, noise: float = 0.04) -> np.ndarray:
        """WorldCover-like labels of ``year`` (its Q3 truth) with blob-shaped confusions.

        A fraction ``noise`` of pixels, in blobs, takes the class WorldCover most often confuses it
        with (grass↔shrub, crop→grass, bare→grass); a few grassland pixels carry code 100
        (moss and lichen), which the legend remaps.
        """
        lc = self.truth(Quarter(year, 3))
        out = lc.copy()
        f = self.label_noise_field
        blobs = f > np.quantile(f, 1 - noise) if noise > 0 else np.zeros_like(lc, bool)
        confuse = {GRASS: SHRUB, SHRUB: GRASS, CROP: GRASS, BARE: GRASS, FOREST: SHRUB}
        for src, dst in confuse.items():
            out[blobs & (lc == src)] = dst
        moss = (f < np.quantile(f, 0.01)) & (lc == GRASS)
        out[moss] = 100
        return out

    # ------------------------------------------------------------------------------- sampling
    def sample(
        self, field: np.ndarray, transform: Affine, shape: tuple[int, int], epsg: int, *, order: int = 1
    ) -> np.ndarray:
        """Sample a fine-grid field at the pixel centres of another grid (any CRS).

        ``order`` 0 is nearest (classes), 1 bilinear. Points outside the world take the nearest edge.
        """
        h, w = shape
        cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        xs, ys = transform @ (cols, rows)
        if epsg != self.spec.epsg:
            tr = Transformer.from_crs(epsg, self.spec.epsg, always_xy=True)
            xs, ys = tr.transform(xs, ys)
        fine = ~self.spec.transform
        fc, fr = fine @ (xs, ys)
        coords = np.stack([fr - 0.5, fc - 0.5])
        return ndimage.map_coordinates(field, coords, order=order, mode="nearest").astype(field.dtype)

    def lonlat_bounds(self, margin_m: float = 0.0) -> tuple[float, float, float, float]:
        """The world's (west, south, east, north) in degrees, grown by ``margin_m``."""
        w, s, e, n = self.spec.bounds
        w, s, e, n = w - margin_m, s - margin_m, e + margin_m, n + margin_m
        tr = Transformer.from_crs(self.spec.epsg, 4326, always_xy=True)
        xs, ys = tr.transform([w, e, e, w], [s, s, n, n])
        return min(xs), min(ys), max(xs), max(ys)
