"""When each platform flies over the sample area, and each overpass's random draw.

Every overpass draws from its own seed (archive seed, platform, date), so an archive made for a sub-period
holds exactly the same items, byte for byte, as the full archive over those quarters.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from lpqlc.quarter import Quarter
from lpqlc.sample.scenes import Acquisition

__all__ = ["PLATFORM_LIFETIMES", "SampleSchedule", "acquisitions"]

#: (first, last) day each platform's Level-2 data covers in the sample (Loess Plateau overpasses).
PLATFORM_LIFETIMES: dict[str, tuple[date, date]] = {
    "landsat-5": (date(1984, 3, 1), date(2011, 11, 18)),
    "landsat-7": (date(1999, 5, 28), date(2021, 12, 31)),
    "landsat-8": (date(2013, 4, 11), date(2100, 1, 1)),
    "landsat-9": (date(2021, 10, 31), date(2100, 1, 1)),
    "sentinel-2a": (date(2016, 1, 1), date(2100, 1, 1)),
    "sentinel-2b": (date(2017, 7, 1), date(2100, 1, 1)),
}
SLC_FAILURE = date(2003, 5, 31)


@dataclass(frozen=True)
class SampleSchedule:
    """Overpasses per quarter: Sentinel-2 per platform, Landsat per platform, and their draws."""

    seed: int = 42
    s2_per_platform: int = 2
    landsat_per_platform: int = 2
    #: Fraction of Sentinel-2 acquisitions that also appear reprocessed (a newer ``_1_L2A`` item).
    reprocessed_fraction: float = 0.06
    partial_fraction: float = 0.12


def _rng(seed: int, *parts: object) -> np.random.Generator:
    key = zlib.crc32("/".join(map(str, parts)).encode())
    return np.random.default_rng([seed, key])


def _cloud_cover(rng: np.random.Generator, quarter: int) -> float:
    """Cloud fraction of a scene: many clear, many partly cloudy, some overcast; wetter summers."""
    u = rng.random()
    summer = quarter == 3
    if u < (0.35 if summer else 0.45):
        return float(rng.uniform(0.0, 0.04))
    if u < 0.82:
        return float(rng.uniform(0.08, 0.6))
    return float(rng.uniform(0.7, 0.98))


def acquisitions(schedule: SampleSchedule, quarter: Quarter, family: str) -> list[Acquisition]:
    """The overpasses of a quarter for ``family`` ``'sentinel2'`` or ``'landsat'``, in time order."""
    platforms = [p for p in PLATFORM_LIFETIMES if p.startswith("sentinel-2" if family == "sentinel2" else "landsat")]
    per = schedule.s2_per_platform if family == "sentinel2" else schedule.landsat_per_platform
    start = quarter.start.date()
    span = ((quarter + 1).start.date() - start).days
    out: list[Acquisition] = []
    for i, platform in enumerate(platforms):
        first, last = PLATFORM_LIFETIMES[platform]
        for k in range(per):
            # evenly spread, platforms offset from each other (8 days for Landsat, 5 for Sentinel-2)
            day = start + timedelta(days=int((k + 0.5) * span / per + (i * 8 if family == "landsat" else i * 5)) % span)
            if not first <= day <= last:
                continue
            rng = _rng(schedule.seed, platform, day.isoformat())
            out.append(
                Acquisition(
                    when=day,
                    platform=platform,
                    seed=int(rng.integers(2**31)),
                    cloud_cover=_cloud_cover(rng, quarter.q),
                    snowy=quarter.q == 1 and rng.random() < 0.25,
                    partial=rng.random() < schedule.partial_fraction,
                    slc_off=platform == "landsat-7" and day >= SLC_FAILURE,
                )
            )
    return sorted(out, key=lambda a: (a.when, a.platform))


def reprocessed(schedule: SampleSchedule, acq: Acquisition) -> bool:
    """Whether a Sentinel-2 acquisition also exists in a later processing (baseline 05.00)."""
    return bool(_rng(schedule.seed, "reprocessed", acq.platform, acq.when.isoformat()).random() < schedule.reprocessed_fraction)
