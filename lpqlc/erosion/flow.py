"""Flow routing for the L factor: depression filling (pyflwdir), D8 steepest descent, upstream area.

pyflwdir fills the depressions (priority flood, Wang & Liu 2006) and accumulates the flow, but the
D8 directions that ``pyflwdir.from_dem`` returns are the order in which its filling pass reached each
cell, not steepest descent (ENVIRONMENT.md: on a real 30 m DEM they agree with steepest descent on only
about 55 % of the pixels). No library at hand gives D8 steepest descent on an already filled DEM
(pyflwdir, xarray-spatial and richdem either fill-and-route in one pass or need a compiled extra), so
:func:`d8_steepest` is a small numba kernel: one pass over the cells, eight neighbours each.

Rule (documented in docs/erosion.md):

- each valid cell drains to the neighbour with the largest drop ``(z − z_n) / distance`` on the
  filled DEM, distances from the cell sizes in metres (diagonals ``√(dx² + dy²)``);
- ties (equal largest drop) go to the first neighbour in pyflwdir's D8 code order E, SE, S, SW, W, NW,
  N, NE (codes 1, 2, 4, …, 128);
- flats (no neighbour strictly lower: filled depressions and level ground) keep the direction of the
  filling pass, which leads across the flat to its spill point; cells on the data edge with no lower
  neighbour are outlets (pits).

Steepest edges go strictly down and the filling pass's edges never go up, so the network has no loops.
The filled DEM is float32 on purpose: pyflwdir orders its queue in float32, and filled cells then carry
exactly their spill elevation (a float64 DEM would leave them an ulp above or below it, enough to send
flow back into a filled depression).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fill_depressions", "d8_steepest", "upstream_area_m2", "D8_CODES"]

#: pyflwdir's D8 codes in the tie order: E, SE, S, SW, W, NW, N, NE, with their (row, col) offsets.
D8_CODES = np.array([1, 2, 4, 8, 16, 32, 64, 128], np.uint8)
_DR = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)
_DC = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int64)
_NODATA_D8 = np.uint8(247)


def fill_depressions(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filled DEM float32 m, pyflwdir's filling-pass D8 uint8) of ``dem`` (y, x) in m; NaN = no data.

    Outlets are the cells on the edge of the valid data (array edge or next to NaN).
    """
    import pyflwdir

    z = np.asarray(dem, dtype=np.float32)
    filled, d8 = pyflwdir.dem.fill_depressions(z, outlets="edge", nodata=np.float32(np.nan))
    return np.asarray(filled, np.float32), np.asarray(d8, np.uint8)


@njit(cache=True)
def _steepest(z: np.ndarray, d8_fill: np.ndarray, dx: np.ndarray, dy: np.ndarray, dr: np.ndarray,
              dc: np.ndarray, codes: np.ndarray) -> np.ndarray:  # fmt: skip
    ny, nx = z.shape
    out = np.full((ny, nx), np.uint8(247))
    for r in range(ny):
        ddx, ddy = dx[r], dy[r]
        ddiag = np.sqrt(ddx * ddx + ddy * ddy)
        for c in range(nx):
            z0 = np.float64(z[r, c])
            if np.isnan(z0):
                continue
            best, code = 0.0, np.uint8(0)
            for k in range(8):
                rr, cc = r + dr[k], c + dc[k]
                if rr < 0 or rr >= ny or cc < 0 or cc >= nx:
                    continue
                zn = np.float64(z[rr, cc])
                if np.isnan(zn):
                    continue
                dist = ddiag if (dr[k] != 0 and dc[k] != 0) else (ddx if dr[k] == 0 else ddy)
                drop = (z0 - zn) / dist
                if drop > best:  # strictly larger: the first of equal drops wins
                    best, code = drop, codes[k]
            out[r, c] = code if best > 0.0 else d8_fill[r, c]
    return out


def d8_steepest(filled: np.ndarray, d8_fill: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """D8 steepest-descent directions (pyflwdir codes, uint8; 0 pit, 247 no data) on a filled DEM.

    ``filled`` (y, x) float32 m from :func:`fill_depressions`, ``d8_fill`` its filling-pass directions
    (used on flats), ``dx``/``dy`` cell sizes in m per row (shape (y,) or (y, 1)). See the module doc
    for the tie and flat rule.
    """
    ny = filled.shape[0]
    dxr = np.broadcast_to(np.asarray(dx, np.float64).reshape(-1), (ny,)).copy()
    dyr = np.broadcast_to(np.asarray(dy, np.float64).reshape(-1), (ny,)).copy()
    return _steepest(np.ascontiguousarray(filled, np.float32), np.ascontiguousarray(d8_fill, np.uint8),  # type: ignore[no-any-return]
                     dxr, dyr, _DR, _DC, D8_CODES)  # fmt: skip


def upstream_area_m2(d8: np.ndarray, cell_area_m2: np.ndarray) -> np.ndarray:
    """Upstream area in m² of each cell, itself included (float64, (y, x)), by pyflwdir's accumulation
    over the D8 network ``d8``; ``cell_area_m2`` broadcastable to (y, x). NaN where ``d8`` has no data."""
    import pyflwdir

    flw = pyflwdir.from_array(d8, ftype="d8", check_ftype=False)
    area = np.broadcast_to(np.asarray(cell_area_m2, np.float64), d8.shape)
    out = np.asarray(flw.accuflux(np.ascontiguousarray(area), nodata=np.nan), np.float64)
    out[d8 == _NODATA_D8] = np.nan
    return out
