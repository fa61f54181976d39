"""FVC for pixel-quarters without a clear observation, and the per-pixel quality layer that says so.

A quarter's composite leaves FVC NaN where no clear observation exists (persistent cloud); C, hence
the quarter's and the year's erosion, would be NaN there. :func:`fill_fvc` applies the rules of
:class:`lpqlc.config.science.FVCGapFillConfig` in order (docs/erosion.md):

1. ``same_quarter``: the mean FVC of the same quarter in the adjacent years (± 1 … ± ``years``; the
   nearest years that have an observation, both sides averaged when both have one) — phenology
   repeats by season, so this is the closest analogue;
2. ``adjacent_quarters``: linear interpolation between the previous and the next quarter (their mean),
   or the one available when ``one_sided`` is set (series ends).

Quality codes (uint8, :data:`QUALITY`): 0 no land cover, 1 observed, 2 filled from the same quarter of
adjacent years, 3 filled from adjacent quarters, 4 missing (no rule applied: C and A stay NaN where C
needs FVC). All functions are elementwise and lazy on Dask-backed inputs.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lpqlc.config.science import FVCGapFillConfig

__all__ = ["QUALITY", "NO_DATA", "OBSERVED", "FILLED_SAME_QUARTER", "FILLED_ADJACENT", "MISSING", "fill_fvc",
           "annual_quality"]  # fmt: skip

NO_DATA, OBSERVED, FILLED_SAME_QUARTER, FILLED_ADJACENT, MISSING = 0, 1, 2, 3, 4
#: Quality code → name (the ``quality`` asset's classes).
QUALITY = {NO_DATA: "no data", OBSERVED: "observed", FILLED_SAME_QUARTER: "filled: same quarter of adjacent years",
           FILLED_ADJACENT: "filled: adjacent quarters", MISSING: "missing"}  # fmt: skip


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
    """A year's quality from its quarters' (uint8): the worst code of the four (missing > filled from
    adjacent quarters > filled from the same quarter > observed), missing where some but not all quarters
    have no land cover (the annual sum lacks that quarter, so annual A is NaN), no data where none has."""
    stack = [np.asarray(q, np.uint8) for q in quarterly]
    worst = np.maximum.reduce(stack)
    some_without = np.logical_or.reduce([q == NO_DATA for q in stack])
    return np.where(some_without & (worst != NO_DATA), np.uint8(MISSING), worst).astype(np.uint8)
