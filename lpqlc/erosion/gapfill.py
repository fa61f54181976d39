"""FVC for pixel-quarters without a clear observation, and the per-pixel quality layer that says so.

A quarter's composite leaves FVC NaN where no clear observation exists (persistent cloud); C, hence
the quarter's and the year's erosion, would be NaN there. :func:`fill_fvc` applies the rules of
:class:`lpqlc.config.science.FVCGapFillConfig` in order (docs/erosion.md):

1. ``same_quarter``: the mean FVC of the same quarter in the adjacent years (± 1 … ± ``years``; the
   nearest years that have an observation, both sides averaged when both have one) — phenology
   repeats by season, so this is the closest analogue;
2. ``adjacent_quarters``: linear interpolation between the previous and the next quarter (their mean),
   or the one available when ``one_sided`` is set (series ends).

Land cover itself can be missing in a quarter (no clear observation: class 0). :func:`fill_landcover`
gives erosion the same pixel's class from the nearest quarter that has one
(:class:`lpqlc.config.science.LandCoverGapFillConfig`: the nearest quarter within the refinement's
window, else the same quarter of the adjacent years; :func:`landcover_candidates` lists them in order).
This is done on the erosion job's C/P input, not in the temporal refinement: the published land-cover
maps keep saying where nothing was observed (the refinement leaves nodata at the centre by design),
the erosion job also takes land cover from other sources (truth maps, external maps), and the erosion
quality layer is where a fill is flagged.

Quality codes (uint8, :data:`QUALITY`): 0 no land cover, 1 observed, 2 FVC filled from the same quarter
of adjacent years, 3 FVC filled from adjacent quarters, 4 missing (no rule applied: C and A stay NaN
where C needs FVC), 5 land cover filled from another quarter (its FVC then observed or filled by the
rules above). All functions are elementwise and lazy on Dask-backed inputs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lpqlc.config.science import FVCGapFillConfig, LandCoverGapFillConfig
from lpqlc.quarter import Quarter

__all__ = ["QUALITY", "NO_DATA", "OBSERVED", "FILLED_SAME_QUARTER", "FILLED_ADJACENT", "MISSING",
           "FILLED_LANDCOVER", "fill_fvc", "annual_quality", "fill_landcover", "landcover_candidates",
           "flag_landcover_fill"]  # fmt: skip

NO_DATA, OBSERVED, FILLED_SAME_QUARTER, FILLED_ADJACENT, MISSING, FILLED_LANDCOVER = 0, 1, 2, 3, 4, 5
#: Quality code → name (the ``quality`` asset's classes).
QUALITY = {NO_DATA: "no data", OBSERVED: "observed",
           FILLED_SAME_QUARTER: "filled: same quarter of adjacent years",
           FILLED_ADJACENT: "filled: adjacent quarters", MISSING: "missing",
           FILLED_LANDCOVER: "filled: land cover from another quarter"}  # fmt: skip
#: Severity rank of each code (the annual quality is the worst quarter): missing is the worst.
_RANK = np.array([0, 1, 2, 3, 5, 4], np.uint8)


def _mean_of(candidates: list[xr.DataArray]) -> xr.DataArray:
    """Per-pixel mean of the finite values among ``candidates`` (NaN where none is finite)."""
    stack = xr.concat(candidates, dim="candidate", coords="minimal", compat="override", join="override")
    return stack.mean("candidate", skipna=True)


def fill_fvc(observed: xr.DataArray, landcover: xr.DataArray, same_quarter: list[list[xr.DataArray]],
             previous: xr.DataArray | None, following: xr.DataArray | None,
             cfg: FVCGapFillConfig = FVCGapFillConfig()) -> tuple[xr.DataArray, xr.DataArray]:  # fmt: skip
    """(FVC 0–1 float32, quality uint8) of a quarter on ``observed``'s grid (y, x).

    ``same_quarter``: per year distance 1, 2, … the FVC of the same quarter in the years before and after
    that exist (0, 1 or 2 arrays each); ``previous``/``following``: the adjacent quarters' FVC or None.
    ``landcover`` (class codes, 0 = no data) sets quality 0. All inputs on the same grid as ``observed``.
    """
    fvc = observed.astype(np.float32)
    quality = xr.where(np.isfinite(fvc), OBSERVED, MISSING)
    for rule in cfg.rules:
        if rule == "same_quarter":
            for ring in same_quarter[: cfg.years]:
                if not ring:
                    continue
                cand = _mean_of([r.assign_coords(y=fvc["y"], x=fvc["x"]) for r in ring])
                take = (quality == MISSING) & np.isfinite(cand)
                fvc, quality = xr.where(take, cand, fvc), xr.where(take, FILLED_SAME_QUARTER, quality)
        elif rule == "adjacent_quarters":
            sides = [s.assign_coords(y=fvc["y"], x=fvc["x"]) for s in (previous, following) if s is not None]
            if not sides:
                continue
            cand = _mean_of(sides)
            if not cfg.one_sided and len(sides) == 2:
                cand = cand.where(np.isfinite(sides[0]) & np.isfinite(sides[1]))
            elif not cfg.one_sided:
                continue
            take = (quality == MISSING) & np.isfinite(cand)
            fvc, quality = xr.where(take, cand, fvc), xr.where(take, FILLED_ADJACENT, quality)
    quality = xr.where(landcover.assign_coords(y=fvc["y"], x=fvc["x"]) == 0, NO_DATA, quality)
    return fvc.astype(np.float32).rename("fvc"), quality.astype(np.uint8).rename("quality")


def annual_quality(quarterly: list[np.ndarray]) -> np.ndarray:
    """A year's quality from its quarters' (uint8): the worst code of the four (missing > land cover
    filled > FVC filled from adjacent quarters > from the same quarter > observed), missing where some but
    not all quarters have no land cover (the annual sum lacks that quarter, so annual A is NaN), no data
    where none has."""
    stack = [np.asarray(q, np.uint8) for q in quarterly]
    by_rank = np.argsort(_RANK).astype(np.uint8)  # rank → code
    worst = by_rank[np.maximum.reduce([_RANK[q] for q in stack])]
    some_without = np.logical_or.reduce([q == NO_DATA for q in stack])
    return np.where(some_without & (worst != NO_DATA), np.uint8(MISSING), worst).astype(np.uint8)


def landcover_candidates(quarter: Quarter,
                         cfg: LandCoverGapFillConfig = LandCoverGapFillConfig()) -> list[Quarter]:
    """The quarters whose land cover may stand in for ``quarter``'s, in the order they are tried: per
    rule of ``cfg.rules``, "nearest_quarter" ±1 … ±``max_quarters`` (earlier first at equal distance),
    "same_quarter" the same quarter ±1 … ±``years`` years (earlier first); each quarter once."""
    out: list[Quarter] = []
    for rule in cfg.rules:
        near = rule == "nearest_quarter"
        steps = range(1, cfg.max_quarters + 1) if near else range(4, 4 * cfg.years + 1, 4)
        for d in steps:
            for q in (quarter + (-d), quarter + d):
                if q not in out:
                    out.append(q)
    return out


def fill_landcover(landcover: xr.DataArray, candidates: list[xr.DataArray],
                   nodata: int = 0) -> tuple[xr.DataArray, xr.DataArray]:  # fmt: skip
    """(class codes, filled bool) of a quarter (y, x): where ``landcover`` is ``nodata``, the class of the
    first of ``candidates`` (other quarters' maps on the same grid, in :func:`landcover_candidates`'s
    order) that has one; ``filled`` marks those pixels. Lazy on Dask-backed inputs."""
    out = landcover
    filled = xr.zeros_like(landcover, dtype=bool)
    for cand in candidates:
        cand = cand.assign_coords(y=landcover["y"], x=landcover["x"])
        take = (out == nodata) & (cand != nodata)
        out, filled = xr.where(take, cand, out), filled | take
    return out.astype(landcover.dtype).rename(landcover.name), filled.rename("landcover_filled")


def flag_landcover_fill(quality: xr.DataArray, filled: xr.DataArray) -> xr.DataArray:
    """The quality layer with :data:`FILLED_LANDCOVER` where the land cover was filled, unless the FVC
    rules left the pixel missing (missing is worse and stays)."""
    take = filled.assign_coords(y=quality["y"], x=quality["x"]) & (quality != MISSING) & (quality != NO_DATA)
    return xr.where(take, FILLED_LANDCOVER, quality).astype(np.uint8).rename(quality.name)
