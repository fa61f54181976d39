"""Synthetic acquisitions: surface reflectance with phenology, clouds, shadows, snow, gaps, and the
sensors' encodings (Sentinel-2 L2A digital numbers with SCL; Landsat C2 L2 with QA_PIXEL bits).

All physics runs on the world's fine grid; a sensor's pixels are block means of it (10 m → 20 m, 30 m),
so the masks a sensor reports agree with what its pixels show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import ndimage

from lpqlc.sample.world import BARE, BUILT, CROP, FOREST, GRASS, SHRUB, WATER, WETLAND, World, smooth_field

__all__ = [
    "BANDS",
    "Acquisition",
    "Scene",
    "simulate",
    "block_mean",
    "s2_encode",
    "s2_scl",
    "landsat_encode",
    "landsat_qa",
    "QA",
]

#: Reflective bands simulated, in order (the pipeline's five).
BANDS = ("blue", "green", "red", "nir", "swir1")

_VEG = np.array([0.03, 0.07, 0.04, 0.45, 0.22])
_FOREST_VEG = np.array([0.025, 0.055, 0.03, 0.36, 0.17])
_BACKGROUND = {
    FOREST: np.array([0.06, 0.09, 0.11, 0.20, 0.25]),
    SHRUB: np.array([0.12, 0.16, 0.21, 0.27, 0.34]),
    GRASS: np.array([0.12, 0.16, 0.21, 0.27, 0.34]),
    CROP: np.array([0.11, 0.15, 0.20, 0.26, 0.33]),
    BUILT: np.array([0.14, 0.15, 0.17, 0.22, 0.26]),
    BARE: np.array([0.16, 0.21, 0.27, 0.32, 0.40]),
    WETLAND: np.array([0.07, 0.09, 0.10, 0.15, 0.15]),
    WATER: np.array([0.06, 0.07, 0.05, 0.025, 0.015]),
}
#: Green cover per class: base + amplitude × seasonal curve (crop uses its own, sharper season).
_COVER = {
    FOREST: (0.45, 0.40),
    SHRUB: (0.20, 0.45),
    GRASS: (0.08, 0.50),
    CROP: (0.02, 0.85),
    BUILT: (0.04, 0.10),
    BARE: (0.01, 0.04),
    WETLAND: (0.20, 0.60),
    WATER: (0.0, 0.0),
}
_CLOUD = np.array([0.55, 0.55, 0.56, 0.58, 0.45])
#: Relative strength of atmospheric path radiance (haze) per band, roughly λ^-2 from blue to SWIR1.
_HAZE_SHAPE = np.array([1.0, 0.72, 0.52, 0.24, 0.06])
#: How each sensor sees the same surface, as ρ_sensor = (ρ_OLI − a) / b with Roy et al. (2016, RSE 185,
#: Table 2, OLS ETM+ → OLI) for TM/ETM+, and the HLS v2 Sentinel-2 → OLI adjustment (Claverie et al. 2018)
#: for the MSI; OLI is the reference. Per band (b, a) in BANDS order.
SENSOR_RESPONSE: dict[str, tuple[tuple[float, float], ...]] = {
    "landsat-5": ((0.8474, 0.0003), (0.8483, 0.0088), (0.9047, 0.0061), (0.8462, 0.0412), (0.8937, 0.0254)),
    "landsat-7": ((0.8474, 0.0003), (0.8483, 0.0088), (0.9047, 0.0061), (0.8462, 0.0412), (0.8937, 0.0254)),
    "landsat-8": ((1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)),
    "landsat-9": ((1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)),
    "sentinel-2a": ((0.9778, -0.004), (1.0053, -0.0009), (0.9765, 0.0009), (0.9983, -0.0001), (0.9987, -0.0011)),
    "sentinel-2b": ((0.9778, -0.004), (1.0053, -0.0009), (0.9765, 0.0009), (0.9983, -0.0001), (0.9987, -0.0011)),
}
#: Per-scene appearance: common gain sd (illumination, BRDF, calibration), per-band gain sd, haze
#: (path reflectance in blue) mean of an exponential draw — a few percent, as between real clear scenes.
GAIN_SD, BAND_GAIN_SD, HAZE_MEAN = 0.06, 0.02, 0.015
#: Year-to-year phenology: green-up/senescence shift sd (days) and season amplitude sd (relative).
PHENO_SHIFT_SD, PHENO_AMP_SD = 12.0, 0.12
_SNOW = np.array([0.85, 0.85, 0.80, 0.70, 0.10])


def _season(doy: float, start: float, end: float) -> float:
    """0 outside [start, end] days of year, a sine hump inside."""
    return float(np.sin(np.pi * (doy - start) / (end - start))) if start < doy < end else 0.0


@dataclass(frozen=True)
class Acquisition:
    """One overpass: when, by which platform, and its random draw."""

    when: date
    platform: str
    seed: int
    cloud_cover: float
    snowy: bool = False
    partial: bool = False
    slc_off: bool = False


@dataclass
class Scene:
    """One acquisition on the fine grid: reflectance (band, y, x) and per-pixel fractions (y, x)."""

    reflectance: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray
    snow: np.ndarray
    nodata: np.ndarray
    water: np.ndarray


def year_phenology(seed: int, year: int) -> tuple[float, float]:
    """(green-up shift in days, season amplitude factor) of a year: a drier or later spring, a weaker
    or stronger summer — the same for every acquisition of the year (drawn from the world seed)."""
    rng = np.random.default_rng([seed, 7919, year])
    return float(rng.normal(0.0, PHENO_SHIFT_SD)), float(np.clip(rng.normal(1.0, PHENO_AMP_SD), 0.7, 1.3))


def appearance(rng: np.random.Generator, platform: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (gain, offset) of one acquisition: illumination/calibration gain, haze (path
    reflectance falling with wavelength) and the sensor's band response; ρ_seen = gain·ρ + offset."""
    gain = rng.normal(1.0, GAIN_SD) * rng.normal(1.0, BAND_GAIN_SD, 5)
    haze = rng.exponential(HAZE_MEAN) * _HAZE_SHAPE
    resp = np.asarray(SENSOR_RESPONSE.get(platform, SENSOR_RESPONSE["landsat-8"]))
    b, a = resp[:, 0], resp[:, 1]
    return (gain / b).astype(np.float32), ((haze - a) / b).astype(np.float32)


def surface_reflectance(world: World, when: date, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky surface reflectance (5, y, x) of the world on a date, and the land cover used."""
    from lpqlc.quarter import Quarter

    lc = world.truth(Quarter.of(when))
    doy = when.timetuple().tm_yday
    shift, amp = year_phenology(world.spec.seed, when.year)
    g_nat = amp * _season(doy, 85 + shift, 300 + shift / 2)
    g_crop = amp * _season(doy, 120 + shift, 275 + shift / 2)
    years = when.year - 2000 + doy / 365.0
    n = lc.shape[0]
    out = np.empty((5, n, n), np.float32)
    cover = np.zeros((n, n), np.float32)
    texture = 0.06 * world.texture["b"] + 0.03 * world.texture["c"]
    background = np.zeros((5, n, n), np.float32)
    veg = np.zeros((5, n, n), np.float32)
    for code, (base, amp) in _COVER.items():
        sel = lc == code
        if not sel.any():
            continue
        g = g_crop if code == CROP else g_nat
        trend = 1.0 + (0.008 * years if code in (FOREST, SHRUB, GRASS) else 0.0)
        cover[sel] = (base + amp * g) * trend
        background[:, sel] = _BACKGROUND[code][:, None]
        veg[:, sel] = (_FOREST_VEG if code == FOREST else _VEG)[:, None]
    cover = np.clip(cover + np.where(lc == WATER, 0.0, texture), 0.0, 0.97)
    out[:] = cover * veg + (1 - cover) * background
    out *= (1.0 + 0.04 * world.texture["c"])[None]
    out += rng.normal(0.0, 0.004, out.shape).astype(np.float32)
    return out, lc


def simulate(world: World, acq: Acquisition) -> Scene:
    """Render one acquisition over the world's fine grid."""
    rng = np.random.default_rng(acq.seed)
    n = world.spec.size
    refl, lc = surface_reflectance(world, acq.when, rng)
    gain, offset = appearance(rng, acq.platform)
    refl = np.maximum(refl * gain[:, None, None] + offset[:, None, None], 0.0005)
    # clouds: a smooth field thresholded to the drawn cover, with thin edges
    cloud = np.zeros((n, n), np.float32)
    if acq.cloud_cover > 0:
        f = smooth_field(rng, (n, n), sigma=n / rng.uniform(8, 16))
        thr = np.quantile(f, 1.0 - acq.cloud_cover)
        cloud = np.clip((f - thr) / 0.6 + 0.02, 0.0, 1.0).astype(np.float32)
        cloud[f < thr] = 0.0
    # shadows: the clouds cast to the north-west (sun in the south-east)
    shift = rng.uniform(25, 60)
    shadow = ndimage.shift(cloud, (-shift, -shift * rng.uniform(0.5, 1.2)), order=0, mode="constant")
    shadow = np.where(cloud < 0.03, shadow, 0.0).astype(np.float32)
    snow = np.zeros((n, n), np.float32)
    if acq.snowy:
        s = smooth_field(rng, (n, n), sigma=n / 20) + (world.dem - world.dem.mean()) / (world.dem.std() + 1e-9)
        snow = (s > np.quantile(s, rng.uniform(0.3, 0.8))).astype(np.float32)
        snow[lc == WATER] = 0
    refl = refl * (1 - snow) + _SNOW[:, None, None] * snow
    refl = refl * (1 - 0.65 * np.clip(shadow * 1.5, 0, 1))
    refl = refl * (1 - cloud) + (_CLOUD[:, None, None] * (0.75 + 0.25 * cloud)) * cloud
    nodata = np.zeros((n, n), bool)
    if acq.partial:  # an orbit / tile edge crossing the area
        rows, cols = np.mgrid[0:n, 0:n] / n
        nodata = (cols + 0.6 * rows) > rng.uniform(0.9, 1.4)
    if acq.slc_off:  # Landsat 7 scan-line-corrector failure: slanted stripes of missing data
        rows, cols = np.mgrid[0:n, 0:n]
        phase = rng.uniform(0, 51)
        nodata |= ((cols * 0.99 + rows * 0.13 + phase) % 51) < rng.uniform(6, 12)
    refl[:, nodata] = 0.0
    return Scene(
        reflectance=refl.astype(np.float32),
        cloud=cloud,
        shadow=shadow,
        snow=snow,
        nodata=nodata,
        water=(lc == WATER),
    )


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k×k blocks of the last two axes (sizes must divide by k)."""
    if k == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def _aggregate(scene: Scene, k: int) -> dict[str, np.ndarray]:
    nod = block_mean(scene.nodata.astype(np.float32), k) > 0
    return {
        "refl": block_mean(scene.reflectance, k),
        "cloud": block_mean(scene.cloud, k),
        "shadow": block_mean(scene.shadow, k),
        "snow": block_mean(scene.snow, k),
        "water": block_mean(scene.water.astype(np.float32), k) > 0.5,
        "nodata": nod,
    }


def s2_scl(scene: Scene, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sentinel-2 Scene Classification Layer at k× the fine pixel (uint8)."""
    a = _aggregate(scene, k)
    r = a["refl"]
    ndvi = (r[3] - r[2]) / np.maximum(r[3] + r[2], 1e-6)
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[a["water"]] = 6
    scl[(rng.random(scl.shape) < 0.003)] = 7
    scl[a["shadow"] > 0.3] = 3
    scl[a["snow"] > 0.5] = 11
    scl[a["cloud"] >= 0.03] = 10
    scl[a["cloud"] >= 0.15] = 8
    scl[a["cloud"] >= 0.5] = 9
    scl[a["nodata"]] = 0
    return scl


def s2_encode(scene: Scene, k: int, boa_offset: bool) -> np.ndarray:
    """Sentinel-2 L2A digital numbers (band, y, x) uint16: DN = 10000·ρ (+1000 from baseline 04.00); 0 = nodata."""
    a = _aggregate(scene, k)
    dn = np.rint(a["refl"] * 10000.0) + (1000.0 if boa_offset else 0.0)
    dn = np.clip(dn, 1, 65535).astype(np.uint16)
    dn[:, a["nodata"]] = 0
    return dn


class QA:
    """Landsat Collection 2 QA_PIXEL bits and confidence fields."""

    FILL, DILATED, CIRRUS, CLOUD, SHADOW, SNOW, CLEAR, WATER = (1 << b for b in range(8))
    LOW = (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # every confidence field "low"
    CLOUD_HIGH, CLOUD_MED = 3 << 8, 2 << 8
    SHADOW_HIGH, SNOW_HIGH, CIRRUS_HIGH = 3 << 10, 3 << 12, 3 << 14


def landsat_qa(scene: Scene, k: int, has_cirrus_band: bool) -> np.ndarray:
    """Landsat QA_PIXEL (uint16) at k× the fine pixel, consistent with the scene."""
    a = _aggregate(scene, k)
    cloud = a["cloud"] >= 0.25
    thin = (a["cloud"] >= 0.04) & ~cloud
    dilated = ndimage.binary_dilation(cloud, iterations=2) & ~cloud
    shadow = (a["shadow"] > 0.3) & ~cloud
    snow = (a["snow"] > 0.5) & ~cloud
    qa = np.full(cloud.shape, QA.LOW, np.uint32)
    qa[cloud] = (qa[cloud] & ~np.uint32(3 << 8)) | QA.CLOUD | QA.CLOUD_HIGH
    qa[dilated] |= QA.DILATED
    if has_cirrus_band:  # OLI band 9 flags thin cirrus; TM/ETM+ miss it (medium cloud confidence only)
        qa[thin] = (qa[thin] & ~np.uint32(3 << 14)) | QA.CIRRUS | QA.CIRRUS_HIGH
    else:
        qa[thin] = (qa[thin] & ~np.uint32(3 << 8)) | QA.CLOUD_MED
    qa[shadow] = (qa[shadow] & ~np.uint32(3 << 10)) | QA.SHADOW | QA.SHADOW_HIGH
    qa[snow] = (qa[snow] & ~np.uint32(3 << 12)) | QA.SNOW | QA.SNOW_HIGH
    flagged = (qa & (QA.DILATED | QA.CIRRUS | QA.CLOUD | QA.SHADOW | QA.SNOW)) > 0
    qa[~flagged] |= QA.CLEAR
    qa[a["water"] & ~flagged] |= QA.WATER
    qa[a["nodata"]] = QA.FILL
    return qa.astype(np.uint16)


#: Landsat Collection 2 L2 surface-reflectance scaling: ρ = DN·2.75e-5 − 0.2.
LANDSAT_SCALE, LANDSAT_OFFSET = 2.75e-5, -0.2


def landsat_encode(scene: Scene, k: int) -> np.ndarray:
    """Landsat C2 L2 surface-reflectance digital numbers (band, y, x) uint16; 0 = fill."""
    a = _aggregate(scene, k)
    dn = np.clip(np.rint((a["refl"] - LANDSAT_OFFSET) / LANDSAT_SCALE), 1, 65535).astype(np.uint16)
    dn[:, a["nodata"]] = 0
    return dn
