"""Flow routing for the L factor: depression filling, D8 steepest descent, upstream area.

The D8 directions that ``pyflwdir.from_dem`` returns are the order in which its filling pass reached
each cell, not steepest descent (ENVIRONMENT.md: on a real 30 m DEM they agree with steepest descent on
only about 55 % of the pixels). No library at hand gives D8 steepest descent on an already filled DEM
(pyflwdir, xarray-spatial and richdem either fill-and-route in one pass or need a compiled extra), so
:func:`d8_steepest` is a small numba kernel: one pass over the cells, eight neighbours each.
pyflwdir's Priority-Flood (a numba heap of tuples) took ~70 % of LS on a 9 Mpx DEM, too slow for the
speed target, so :func:`fill_depressions` is our own numba Priority-Flood written from the papers
(Wang & Liu 2006; Barnes et al. 2014's pit queue; Zhou et al. 2016's upslope tracing, which keeps most
slope cells off the heap; a heap of packed uint64 keys on flat arrays), and :func:`accumulate` one O(n)
pass in a topological order of the network (Kahn); both are tested equal to pyflwdir's
(``fill_depressions``, ``accuflux``), which :func:`upstream_area_m2` still wraps.

Barnes, R., Lehman, C., Mulla, D. (2014) Priority-flood: An optimal depression-filling and
watershed-labeling algorithm for digital elevation models. Computers & Geosciences 62, 117–127.
Zhou, G., Sun, Z., Fu, S. (2016) An efficient variant of the Priority-Flood algorithm for filling
depressions in raster digital elevation models. Computers & Geosciences 90, 87–96.

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


@njit(cache=True, inline="always")
def _key(zbits: np.uint32, seq: np.int64) -> np.uint64:
    """Heap key ordering (elevation, push sequence) as one unsigned integer: the float32's bits mapped to
    an order-preserving unsigned integer (sign bit flipped for ≥ 0, all bits for < 0) above the sequence."""
    b = np.uint64(zbits)
    b = (b ^ np.uint64(0xFFFFFFFF)) if b & np.uint64(0x80000000) else (b | np.uint64(0x80000000))
    return (b << np.uint64(32)) | np.uint64(seq)


@njit(cache=True)
def _push(hk: np.ndarray, hi: np.ndarray, size: int, key: np.uint64, cell: np.int32) -> None:
    i = size
    while i > 0:  # sift up
        p = (i - 1) >> 1
        if hk[p] < key:
            break
        hk[i], hi[i] = hk[p], hi[p]
        i = p
    hk[i], hi[i] = key, cell


@njit(cache=True)
def _priority_flood(z: np.ndarray, dr: np.ndarray, dc: np.ndarray, codes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Priority-Flood (Wang & Liu 2006) with Barnes et al.'s (2014) pit queue and Zhou et al.'s (2016)
    upslope tracing: filled DEM and filling-pass D8.

    Written here from the papers' descriptions. The priority queue is a binary heap on flat arrays: one
    uint64 key per entry (:func:`_key`: elevation bits above the push sequence, the order of (elevation,
    sequence) pairs in one integer comparison) and the cell (int32). A neighbour at or below the level
    being processed is raised to it and goes to the pit FIFO (Barnes). A neighbour above it is final at
    its own elevation (it drains over the lower cell), and so is every unprocessed neighbour higher than
    a final cell: those are traced upslope with a plain FIFO, never touching the heap (Zhou); only a
    traced cell that still has an unprocessed neighbour at or below its own elevation goes on the heap,
    to be expanded when the flood reaches its level."""
    ny, nx = z.shape
    n = ny * nx
    zf = z.reshape(-1)
    zb = zf.view(np.uint32)
    filled = z.copy()
    d8 = np.full((ny, nx), np.uint8(247))
    done = np.zeros((ny, nx), np.bool_)
    hk = np.empty(n, np.uint64)  # binary heap: keys (elevation, push sequence) and cells
    hi = np.empty(n, np.int32)
    pit = np.empty(n, np.int32)  # FIFO of cells raised to their spill elevation
    up = np.empty(n, np.int32)  # FIFO of the upslope trace
    size, seq, head, tail = 0, 0, 0, 0
    any_nan = False
    for cell in range(n):
        if np.isnan(zf[cell]):
            any_nan = True
            break
    for r in range(ny):
        border_row = r == 0 or r == ny - 1
        for c in range(nx):
            if not (border_row or c == 0 or c == nx - 1 or any_nan):
                continue  # an interior cell of a block without NaN is no outlet
            if np.isnan(z[r, c]):
                continue
            edge = border_row or c == 0 or c == nx - 1
            if not edge:
                for j in range(8):
                    if np.isnan(z[r + dr[j], c + dc[j]]):
                        edge = True
                        break
            if not edge:
                continue
            done[r, c] = True
            d8[r, c] = 0
            _push(hk, hi, size, _key(zb[r * nx + c], seq), np.int32(r * nx + c))
            size += 1
            seq += 1
    while size > 0 or head < tail:
        if head < tail:
            cell = pit[head]
            head += 1
        else:
            cell = hi[0]
            size -= 1
            lk, li = hk[size], hi[size]
            i = 0
            while True:  # sift the last element down from the root
                ch = 2 * i + 1
                if ch >= size:
                    break
                if ch + 1 < size and hk[ch + 1] < hk[ch]:
                    ch += 1
                if lk < hk[ch]:
                    break
                hk[i], hi[i] = hk[ch], hi[ch]
                i = ch
            hk[i], hi[i] = lk, li
        r0, c0 = cell // nx, cell % nx
        z0 = filled[r0, c0]
        interior = 0 < r0 < ny - 1 and 0 < c0 < nx - 1
        for j in range(8):
            r, c = r0 + dr[j], c0 + dc[j]
            if not interior and (r < 0 or r >= ny or c < 0 or c >= nx):
                continue
            if done[r, c] or np.isnan(z[r, c]):
                continue
            done[r, c] = True
            d8[r, c] = codes[(j + 4) % 8]  # back towards the cell that reached it
            if filled[r, c] <= z0:
                filled[r, c] = z0
                pit[tail] = r * nx + c
                tail += 1
                continue
            # above the level: final at its own elevation; trace upslope from it
            uh, ut = 0, 1
            up[0] = r * nx + c
            while uh < ut:
                u = up[uh]
                uh += 1
                ru, cu = u // nx, u % nx
                zu = z[ru, cu]
                pending = False
                inner = 0 < ru < ny - 1 and 0 < cu < nx - 1
                for jj in range(8):
                    rr, cc = ru + dr[jj], cu + dc[jj]
                    if not inner and (rr < 0 or rr >= ny or cc < 0 or cc >= nx):
                        continue
                    if done[rr, cc] or np.isnan(z[rr, cc]):
                        continue
                    if z[rr, cc] > zu:
                        done[rr, cc] = True
                        d8[rr, cc] = codes[(jj + 4) % 8]
                        up[ut] = rr * nx + cc
                        ut += 1
                    else:
                        pending = True
                if pending:
                    _push(hk, hi, size, _key(zb[u], seq), np.int32(u))
                    size += 1
                    seq += 1
    return filled, d8


def fill_depressions(dem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filled DEM float32 m, filling-pass D8 uint8) of ``dem`` (y, x) in m; NaN = no data.

    Priority-Flood (Wang & Liu 2006) with Barnes et al.'s (2014) pit queue and Zhou et al.'s (2016)
    upslope tracing (:func:`_priority_flood`), outlets on the edge of the valid data (array edge or next
    to NaN): the same filled DEM as ``pyflwdir.dem.fill_depressions`` (tested), several times faster
    (its heap of tuples dominated LS; docs/performance.md). The filling-pass directions point back to the
    cell that reached each cell: on flats they lead across the flat to its spill point.
    """
    z = np.ascontiguousarray(dem, dtype=np.float32) + np.float32(0.0)  # −0 → +0: one key per elevation
    if z.size >= 2**31:
        raise ValueError(f"a DEM block of {z.shape} is too large for one fill (< 2**31 cells): tile it")
    return _priority_flood(z, _DR, _DC, D8_CODES)  # type: ignore[no-any-return]


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
def _accumulate(d8: np.ndarray, area: np.ndarray, dr: np.ndarray, dc: np.ndarray,
                codes: np.ndarray) -> np.ndarray:  # fmt: skip
    ny, nx = d8.shape
    lut_r = np.zeros(256, np.int64)
    lut_c = np.zeros(256, np.int64)
    for j in range(8):
        lut_r[codes[j]], lut_c[codes[j]] = dr[j], dc[j]
    acc = np.empty((ny, nx))
    indeg = np.zeros((ny, nx), np.uint8)  # donors not yet added
    for r in range(ny):
        for c in range(nx):
            code = d8[r, c]
            acc[r, c] = np.nan if code == 247 else area[r, c]
            if code != 0 and code != 247:
                indeg[r + lut_r[code], c + lut_c[code]] += 1
    stack = np.empty(ny * nx, np.int32)
    for r in range(ny):
        for c in range(nx):
            if indeg[r, c] != 0 or d8[r, c] == 247:
                continue
            top = 0
            stack[0] = r * nx + c
            while top >= 0:  # follow the flow down while each receiver has all its donors
                cell = stack[top]
                top -= 1
                rr, cc = cell // nx, cell % nx
                code = d8[rr, cc]
                if code == 0 or code == 247:
                    continue
                r2, c2 = rr + lut_r[code], cc + lut_c[code]
                acc[r2, c2] += acc[rr, cc]
                indeg[r2, c2] -= 1
                if indeg[r2, c2] == 0:
                    indeg[r2, c2] = 255  # taken: the row scan must not start from it again
                    top += 1
                    stack[top] = r2 * nx + c2
    return acc


def accumulate(d8: np.ndarray, cell_area_m2: np.ndarray) -> np.ndarray:
    """Upstream area in m² (float64, (y, x), the cell included; NaN off the data) over the D8 network
    ``d8`` (pyflwdir codes; it must have no loops, as steepest descent on a filled DEM has not): each
    cell's area flows to its receiver once all the cell's donors are in (Kahn's topological order, O(n);
    pyflwdir's ``accuflux`` gives the same, tested)."""
    area = np.ascontiguousarray(np.broadcast_to(np.asarray(cell_area_m2, np.float64), d8.shape))
    return _accumulate(np.ascontiguousarray(d8), area, _DR, _DC, D8_CODES)  # type: ignore[no-any-return]


def upstream_area_m2(d8: np.ndarray, cell_area_m2: np.ndarray) -> np.ndarray:
    """Upstream area in m² of each cell, itself included (float64, (y, x)), by pyflwdir's accumulation
    over the D8 network ``d8``; ``cell_area_m2`` broadcastable to (y, x). NaN where ``d8`` has no data."""
    import pyflwdir

    flw = pyflwdir.from_array(d8, ftype="d8", check_ftype=False)
    area = np.broadcast_to(np.asarray(cell_area_m2, np.float64), d8.shape)
    out = np.asarray(flw.accuflux(np.ascontiguousarray(area), nodata=np.nan), np.float64)
    out[d8 == _NODATA_D8] = np.nan
    return out
