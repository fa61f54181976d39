"""Flow routing for the L factor: depression filling, D8 steepest descent, upstream area.

The D8 directions that ``pyflwdir.from_dem`` returns are the order in which its filling pass reached
each cell, not steepest descent (ENVIRONMENT.md: on a real 30 m DEM they agree with steepest descent on
only about 55 % of the pixels). No library at hand gives D8 steepest descent on an already filled DEM
(pyflwdir, xarray-spatial and richdem either fill-and-route in one pass or need a compiled extra), so
:func:`d8_steepest` is a small numba kernel: one pass over the cells, eight neighbours each.
pyflwdir's Priority-Flood (a numba heap of tuples) took ~70 % of LS on a 9 Mpx DEM, too slow for the
speed target, so :func:`fill_depressions` is Barnes et al.'s (2014) Priority-Flood with a pit queue on
flat arrays, and :func:`accumulate` one pass in the fill's order; both are tested equal to pyflwdir's
(``fill_depressions``, ``accuflux``), which :func:`upstream_area_m2` still wraps.

Rule (documented in docs/erosion.md):

- each valid cell drains to the neighbour with the largest drop ``(z − z_n) / distance`` on the
  filled DEM, distances from the cell sizes in metres (diagonals ``√(dx² + dy²)``);
- ties (equal largest drop) go to the first neighbour in pyflwdir's D8 code order E, SE, S, SW, W, NW,
  N, NE (codes 1, 2, 4, …, 128);
- flats (no neighbour strictly lower: filled depressions and level ground) keep the direction of the
  filling pass, which leads across the flat to its spill point; cells on the data edge with no lower
  neighbour are outlets (pits).

Steepest edges go strictly down and the filling pass's edges never go up, so the network has no loops.
The filled DEM is float32 and filled cells carry exactly their spill elevation (no epsilon gradient),
so flats are exactly flat and the rule above applies to them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fill_depressions", "d8_steepest", "accumulate", "upstream_area_m2", "D8_CODES"]

#: pyflwdir's D8 codes in the tie order: E, SE, S, SW, W, NW, N, NE, with their (row, col) offsets.
D8_CODES = np.array([1, 2, 4, 8, 16, 32, 64, 128], np.uint8)
_DR = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)
_DC = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int64)
_NODATA_D8 = np.uint8(247)


@njit(cache=True)
def _priority_flood(z: np.ndarray, dr: np.ndarray, dc: np.ndarray, codes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Priority-Flood with a pit queue (Barnes et al. 2014): filled DEM, filling-pass D8, pop order."""
    ny, nx = z.shape
    n = ny * nx
    filled = z.copy()
    d8 = np.full((ny, nx), np.uint8(247))
    done = np.zeros((ny, nx), np.bool_)
    order = np.empty(n, np.int64)
    hz = np.empty(n, np.float32)  # binary heap keyed by (elevation, push sequence)
    hs = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    pit = np.empty(n, np.int64)  # FIFO of cells raised to their spill elevation
    size, seq, head, tail, k = 0, 0, 0, 0, 0
    for r in range(ny):
        for c in range(nx):
            if np.isnan(z[r, c]):
                continue
            edge = False
            for j in range(8):
                rr, cc = r + dr[j], c + dc[j]
                if rr < 0 or rr >= ny or cc < 0 or cc >= nx or np.isnan(z[rr, cc]):
                    edge = True
                    break
            if not edge:
                continue
            done[r, c] = True
            d8[r, c] = 0
            # push (sift up)
            i = size
            size += 1
            while i > 0:
                p = (i - 1) // 2
                if hz[p] < z[r, c] or (hz[p] == z[r, c] and hs[p] < seq):
                    break
                hz[i], hs[i], hi[i] = hz[p], hs[p], hi[p]
                i = p
            hz[i], hs[i], hi[i] = z[r, c], seq, r * nx + c
            seq += 1
    while size > 0 or head < tail:
        if head < tail:
            cell = pit[head]
            head += 1
        else:
            cell = hi[0]
            size -= 1
            lz, ls, li = hz[size], hs[size], hi[size]
            i = 0
            while True:  # sift the last element down from the root
                ch = 2 * i + 1
                if ch >= size:
                    break
                if ch + 1 < size and (hz[ch + 1] < hz[ch] or (hz[ch + 1] == hz[ch] and hs[ch + 1] < hs[ch])):
                    ch += 1
                if lz < hz[ch] or (lz == hz[ch] and ls < hs[ch]):
                    break
                hz[i], hs[i], hi[i] = hz[ch], hs[ch], hi[ch]
                i = ch
            hz[i], hs[i], hi[i] = lz, ls, li
        order[k] = cell
        k += 1
        r0, c0 = cell // nx, cell % nx
        z0 = filled[r0, c0]
        for j in range(8):
            r, c = r0 + dr[j], c0 + dc[j]
            if r < 0 or r >= ny or c < 0 or c >= nx or done[r, c] or np.isnan(z[r, c]):
                continue
            done[r, c] = True
            d8[r, c] = codes[(j + 4) % 8]  # back towards the cell that reached it
            if filled[r, c] <= z0:
                filled[r, c] = z0
                pit[tail] = r * nx + c
                tail += 1
            else:
                zv = filled[r, c]
                i = size
                size += 1
                while i > 0:
                    p = (i - 1) // 2
                    if hz[p] < zv or (hz[p] == zv and hs[p] < seq):
                        break
                    hz[i], hs[i], hi[i] = hz[p], hs[p], hi[p]
                    i = p
                hz[i], hs[i], hi[i] = zv, seq, r * nx + c
                seq += 1
    return filled, d8, order[:k]


def fill_depressions(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(filled DEM float32 m, filling-pass D8 uint8, pop order int64) of ``dem`` (y, x) in m; NaN = no data.

    Priority-Flood (Wang & Liu 2006) with Barnes et al.'s (2014) pit queue, outlets on the edge of the
    valid data (array edge or next to NaN): the same filled DEM as ``pyflwdir.dem.fill_depressions``
    (tested), about an order of magnitude faster (its heap of tuples dominated LS; docs/performance.md).
    The pop order visits cells by non-decreasing filled elevation, so its reverse is an upstream-first
    order for any D8 network whose edges never go up (used by :func:`accumulate`).
    """
    z = np.ascontiguousarray(dem, dtype=np.float32)
    filled, d8, order = _priority_flood(z, _DR, _DC, D8_CODES)
    return filled, d8, order


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


@njit(cache=True)
def _accumulate(d8: np.ndarray, order: np.ndarray, area: np.ndarray, dr: np.ndarray, dc: np.ndarray,
                codes: np.ndarray) -> np.ndarray:  # fmt: skip
    ny, nx = d8.shape
    lut_r = np.zeros(256, np.int64)
    lut_c = np.zeros(256, np.int64)
    for j in range(8):
        lut_r[codes[j]], lut_c[codes[j]] = dr[j], dc[j]
    acc = np.full((ny, nx), np.nan)
    for cell in order:
        acc[cell // nx, cell % nx] = area[cell // nx, cell % nx]
    for t in range(order.size - 1, -1, -1):
        cell = order[t]
        r, c = cell // nx, cell % nx
        code = d8[r, c]
        if code == 0 or code == 247:
            continue
        acc[r + lut_r[code], c + lut_c[code]] += acc[r, c]
    return acc


def accumulate(d8: np.ndarray, order: np.ndarray, cell_area_m2: np.ndarray) -> np.ndarray:
    """Upstream area in m² (float64, (y, x), the cell included; NaN off the data) over the D8 network
    ``d8`` whose edges never go up on the filled DEM, visiting cells in the reverse of ``order`` from
    :func:`fill_depressions` (one O(n) pass; pyflwdir's ``accuflux`` gives the same, tested)."""
    area = np.ascontiguousarray(np.broadcast_to(np.asarray(cell_area_m2, np.float64), d8.shape))
    return _accumulate(np.ascontiguousarray(d8), order, area, _DR, _DC, D8_CODES)  # type: ignore[no-any-return]


def upstream_area_m2(d8: np.ndarray, cell_area_m2: np.ndarray) -> np.ndarray:
    """Upstream area in m² of each cell, itself included (float64, (y, x)), by pyflwdir's accumulation
    over the D8 network ``d8``; ``cell_area_m2`` broadcastable to (y, x). NaN where ``d8`` has no data."""
    import pyflwdir

    flw = pyflwdir.from_array(d8, ftype="d8", check_ftype=False)
    area = np.broadcast_to(np.asarray(cell_area_m2, np.float64), d8.shape)
    out = np.asarray(flw.accuflux(np.ascontiguousarray(area), nodata=np.nan), np.float64)
    out[d8 == _NODATA_D8] = np.nan
    return out
