"""Topography: slope (Horn 1981), the Liu et al. (1994) S pieces, and the L factor from flow
accumulation (pyflwdir) in the Desmet & Govers (1996) contributing-area form (SCIENCE.md §3).

Slope is a 3×3 neighbourhood op, so it runs chunk-wise (``map_overlap`` with a one-pixel halo). LS
needs flow routing, but the slope-length cap bounds how far upstream it looks: :func:`ls_factor` runs
chunk-wise with a halo of λ_max/D plus a margin for depression filling (a static layer, computed per
tile as Dask tasks and cached as COGs by the erosion job). Angles in degrees,
lengths and elevations in metres; a geographic DEM (degrees) gets metric cell sizes per row.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from numba import njit
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from lpqlc.config.science import LSFactorConfig
from lpqlc.erosion.flow import upstream_area

__all__ = ["cell_size_m", "slope_degrees", "aspect_radians", "s_factor", "m_exponent", "l_factor", "ls_factor", "ls_halo_px", "slope_ls_block", "upstream_area"]


def _crs(dem: xr.DataArray) -> CRS | None:
    try:
        return dem.odc.crs  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 — an array without a CRS: treated as projected metres
        return None


def cell_size_m(dem: xr.DataArray | GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) in metres per row, shapes (ny, 1), of a DEM or a grid: constant on a projected grid, by
    latitude on a geographic one (WGS 84 ellipsoid series for metres per degree)."""
    if isinstance(dem, GeoBox):
        coords, crs = xr_coords(dem), dem.crs
        x, y = coords["x"].values, coords["y"].values
    else:
        x, y, crs = dem["x"].values, dem["y"].values, _crs(dem)
    rx, ry = abs(float(x[1] - x[0])), abs(float(y[1] - y[0]))
    if crs is not None and crs.geographic:
        phi = np.deg2rad(y)
        m_lat = 111132.954 - 559.822 * np.cos(2 * phi) + 1.175 * np.cos(4 * phi)
        m_lon = 111412.84 * np.cos(phi) - 93.5 * np.cos(3 * phi)
        return (rx * m_lon)[:, None], (ry * m_lat)[:, None]
    ny = y.size
    return np.full((ny, 1), rx), np.full((ny, 1), ry)


def _horn(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horn's 3×3 gradients (dz/dx, dz/dy) of an edge-padded block; returns the unpadded interior."""
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[1:-1, 1:-1])
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * dy[1:-1, 1:-1])
    return dzdx, dzdy


def _slope_of(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    # √(gx² + gy²) rather than hypot (no overflow to guard against at DEM gradients; the fused LS kernel
    # does the same operations, so the slope layer and the slope inside LS are the same bits)
    return np.degrees(np.arctan(np.sqrt(gx * gx + gy * gy))).astype(np.float32)


def _aspect_of(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    return np.arctan2(gx, gy).astype(np.float32)


def _slope_block(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    out = np.full(z.shape, np.nan, np.float32)
    out[1:-1, 1:-1] = _slope_of(*_horn(z.astype(np.float64), dx, dy))
    return out


def _aspect_block(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    out = np.full(z.shape, np.nan, np.float32)
    out[1:-1, 1:-1] = _aspect_of(*_horn(z.astype(np.float64), dx, dy))
    return out


def _padded(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (float64) and per-pixel cell sizes with a one-pixel edge-replicated border."""
    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(np.broadcast_to(a, z.shape), 1, mode="edge")

    return np.pad(np.asarray(z, dtype=np.float64), 1, mode="edge"), pad(dx), pad(dy)


def _neighbourhood(dem: xr.DataArray, fn: Any, name: str) -> xr.DataArray:
    dx, dy = cell_size_m(dem)
    z = dem.data
    if isinstance(z, da.Array):
        dxa = da.broadcast_to(da.from_array(dx, chunks=(z.chunks[0], 1)), dem.shape, chunks=z.chunks)
        dya = da.broadcast_to(da.from_array(dy, chunks=(z.chunks[0], 1)), dem.shape, chunks=z.chunks)
        data = da.map_overlap(fn, z, dxa, dya, depth=1, boundary="nearest", dtype=np.float32, trim=True)
    else:
        data = fn(*_padded(np.asarray(z), dx, dy))[1:-1, 1:-1]
    return xr.DataArray(data, coords=dem.coords, dims=dem.dims, name=name)


def slope_degrees(dem: xr.DataArray) -> xr.DataArray:
    """Slope θ in degrees by Horn's method (3×3, edges replicated); (y, x) like ``dem`` (m).

    Lazy and chunk-wise (one-pixel halo) when ``dem`` is Dask-backed; NaN elevations give NaN.
    """
    out = _neighbourhood(dem, _slope_block, "slope")
    out.attrs.update(units="degree", long_name="slope (Horn 1981)")
    return out


def aspect_radians(dem: xr.DataArray) -> xr.DataArray:
    """Downslope direction (radians, from Horn's gradients); used by the L factor's x = |sin a| + |cos a|."""
    return _neighbourhood(dem, _aspect_block, "aspect")


def s_factor(slope_deg: Any, cfg: LSFactorConfig = LSFactorConfig()) -> Any:
    """S of Liu et al. (1994): 10.8·sinθ + 0.03 (θ < 5°), 16.8·sinθ − 0.50 (5–10°), 21.91·sinθ − 0.96 (≥ 10°).

    ``slope_deg`` a number, numpy or xarray (lazy stays lazy); NaN stays NaN.
    """
    where = xr.where if isinstance(slope_deg, xr.DataArray) else np.where
    sin = np.sin(np.deg2rad(slope_deg))
    a0, b0 = cfg.s_coefficients[0]
    out = a0 * sin + b0
    for lo, (a, b) in zip(cfg.s_breaks_deg, cfg.s_coefficients[1:], strict=True):
        out = where(slope_deg >= lo, a * sin + b, out)
    return out


def m_exponent(slope_deg: Any, cfg: LSFactorConfig = LSFactorConfig()) -> Any:
    """m of L = (λ/22.13)^m by slope bin (0.2, 0.3, 0.4, 0.5 at the breaks 1°, 3°, 5°)."""
    idx = np.digitize(np.nan_to_num(np.asarray(slope_deg), nan=0.0), cfg.m_breaks_deg, right=False)
    return np.asarray(cfg.m_values)[idx]


def l_factor(a_in: np.ndarray, cell_m: np.ndarray, aspect: np.ndarray, slope_deg: np.ndarray,
             cfg: LSFactorConfig = LSFactorConfig()) -> np.ndarray:  # fmt: skip
    """Desmet & Govers (1996): L = [(A + D²)^(m+1) − A^(m+1)] / (D^(m+2)·x^m·22.13^m).

    ``a_in`` upslope contributing area (m², the cell excluded), ``cell_m`` the cell size D (m),
    ``x`` = |sin a| + |cos a| from the aspect. The contributing length (A + D²)/D is capped at
    ``slope_length_cap_m``.
    """
    m = m_exponent(slope_deg, cfg)
    d = cell_m
    a = np.minimum(a_in, np.maximum(cfg.slope_length_cap_m * d - d * d, 0.0))
    x = np.abs(np.sin(aspect)) + np.abs(np.cos(aspect))
    x = np.where(np.isfinite(x) & (x > 0), x, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((a + d * d) ** (m + 1) - a ** (m + 1)) / (d ** (m + 2) * x**m * cfg.unit_length_m**m)  # type: ignore[no-any-return]


def ls_halo_px(cell_m: float | GeoBox, cfg: LSFactorConfig = LSFactorConfig()) -> int:
    """Halo (pixels) of a tile for LS: the slope-length cap λ_max in cells, one for Horn's window, plus
    ``cfg.tile_fill_margin_px`` for depressions that straddle the tile edge (docs/erosion.md).
    ``cell_m``: the cell size in m, or a grid (its smallest cell)."""
    if isinstance(cell_m, GeoBox):
        dx, dy = cell_size_m(cell_m)
        cell_m = float(np.sqrt(dx * dy).min())
    return int(np.ceil(cfg.slope_length_cap_m / cell_m)) + 1 + int(cfg.tile_fill_margin_px)


@njit(cache=True, nogil=True)
def _l_numerators(d2: float, amax: float, mp1: np.ndarray, n: int) -> np.ndarray:
    """(A + D²)^(m+1) − A^(m+1) for A = i·D², i = 0 … n − 1 (rows), and A = ``amax`` (row n), per m class."""
    out = np.empty((n + 1, mp1.size))
    for i in range(n + 1):
        a = i * d2 if i < n else amax
        for k in range(mp1.size):
            out[i, k] = (a + d2) ** mp1[k] - a ** mp1[k]
    return out


@njit(cache=True, nogil=True)
def _slope_ls_kernel(z: np.ndarray, dx: np.ndarray, dy: np.ndarray, a_in: np.ndarray, m_breaks: np.ndarray,
                     m_values: np.ndarray, s_breaks: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, cap: float,
                     unit: float, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Horn slope (float32 degrees) and LS (float32): slope, aspect, Desmet & Govers L and Liu S in one
    pass per pixel.

    ``a_in`` is the upstream area including the cell (m², NaN off the data); the cell's own D² is taken
    off here. Fewer transcendentals than the formulas as written, same values (to float rounding):
    sin θ = h/√(1 + h²) and x = |sin a| + |cos a| = (|∂z/∂x| + |∂z/∂y|)/h with h = |∇z| (x = 1 on level
    ground, as atan2(0, 0) = 0 gives), and D^(m+2)·22.13^m per row and slope class. The capped
    contributing area is a whole number of cells on a projected grid (A = i·D², i < λ_max/D), so L's
    numerator comes from a per-row table of those values (:func:`_l_numerators`, the same expression on
    the same A: the same bits), the power computed per pixel only where A is not such a multiple (a
    geographic grid); x^0.5 is √x. θ itself (float32 degrees, as the slope layer) picks the m and S
    classes.
    Only the window ``rows`` × ``cols`` (half-open) is computed and returned; Horn's window reads the
    whole block (edge cells replicated)."""
    ny, nx = z.shape
    out = np.empty((rows[1] - rows[0], cols[1] - cols[0]), np.float32)
    slope_out = np.empty((rows[1] - rows[0], cols[1] - cols[0]), np.float32)
    nm = m_values.size
    mp1 = m_values + 1.0
    denom = np.empty(nm)
    d_prev = -1.0
    table = np.empty((1, nm))
    ntab = 0
    for r in range(rows[0], rows[1]):
        r0, r2 = max(r - 1, 0), min(r + 1, ny - 1)
        ro = r - rows[0]
        ddx, ddy = dx[r], dy[r]
        d = np.sqrt(ddx * ddy)
        d2 = d * d
        amax = max(cap * d - d2, 0.0)
        if d != d_prev:
            for j in range(nm):
                denom[j] = d ** (m_values[j] + 2.0) * unit ** m_values[j]
            ntab = min(int(amax / d2) + 1, 4096)
            table = _l_numerators(d2, amax, mp1, ntab)
            d_prev = d
        for c in range(cols[0], cols[1]):
            co = c - cols[0]
            if np.isnan(z[r, c]):
                out[ro, co] = np.nan
                slope_out[ro, co] = np.nan
                continue
            c0, c2 = max(c - 1, 0), min(c + 1, nx - 1)
            za, zb, zc = np.float64(z[r0, c0]), np.float64(z[r0, c]), np.float64(z[r0, c2])
            zd, zf = np.float64(z[r, c0]), np.float64(z[r, c2])
            zg, zh, zi = np.float64(z[r2, c0]), np.float64(z[r2, c]), np.float64(z[r2, c2])
            gx = ((zc + 2 * zf + zi) - (za + 2 * zd + zg)) / (8.0 * ddx)
            gy = ((zg + 2 * zh + zi) - (za + 2 * zb + zc)) / (8.0 * ddy)
            h = np.sqrt(gx * gx + gy * gy)
            slope32 = np.float32(np.degrees(np.arctan(h)))
            slope_out[ro, co] = slope32
            slope = np.float64(slope32)
            if slope != slope:
                out[ro, co] = np.nan
                continue
            k = 0
            for j in range(m_breaks.size):
                if slope >= m_breaks[j]:
                    k = j + 1
            m = m_values[k]
            a = a_in[r, c] - d2
            a = 0.0 if a != a else min(max(a, 0.0), amax)
            if a == amax:
                num = table[ntab, k]
            else:
                i = int(a / d2 + 0.5)
                if i < ntab and a == i * d2:
                    num = table[i, k]
                else:
                    num = (a + d2) ** mp1[k] - a ** mp1[k]
            x = (abs(gx) + abs(gy)) / h if h > 0 else 1.0
            lf = num / (denom[k] * (np.sqrt(x) if m == 0.5 else x**m))  # √: correctly rounded, cheaper than pow
            sn = h / np.sqrt(1.0 + h * h)
            sf = s_a[0] * sn + s_b[0]
            for j in range(s_breaks.size):
                if slope >= s_breaks[j]:
                    sf = s_a[j + 1] * sn + s_b[j + 1]
            ls = lf * sf
            out[ro, co] = np.nan if ls != ls else max(ls, 0.0)
    return slope_out, out


def slope_ls_block(z: np.ndarray, dx: np.ndarray, dy: np.ndarray, cfg: LSFactorConfig = LSFactorConfig(),
                   inner: tuple[slice, slice] | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Slope (float32 degrees, Horn) and LS (float32) of one DEM block (y, x) in m with cell sizes
    ``dx``/``dy`` (y, 1) in m; the block's edges are edges of the data (Horn's window replicates them;
    flow leaves there). Callers tiling an area pass the tile plus its :func:`ls_halo_px` halo, and the
    tile's slices in it as ``inner``: both layers are returned for that window only (the halo is routed
    and accumulated, but slope, L and S are computed only where they are kept).

    Routing by :mod:`lpqlc.erosion.flow`; slope, aspect, L and S fused in one numba pass (the numpy
    composition of :func:`l_factor` and :func:`s_factor` held ~15 float64 temporaries and took a third
    of LS; tests check both agree, and that the slope equals :func:`slope_degrees`)."""
    z = np.asarray(z)  # float32 or float64 as given: the kernel computes in float64 from either
    z = np.ascontiguousarray(z, dtype=z.dtype if z.dtype in (np.float32, np.float64) else np.float64)
    dx, dy = np.asarray(dx, np.float64)[:, :1], np.asarray(dy, np.float64)[:, :1]
    a_in = upstream_area(z, dx, dy)  # the kernel takes the cell's own area off
    coef = np.asarray(cfg.s_coefficients, np.float64)
    ys, xs = (slice(0, z.shape[0]), slice(0, z.shape[1])) if inner is None else inner
    rows, cols = ys.indices(z.shape[0])[:2], xs.indices(z.shape[1])[:2]
    return _slope_ls_kernel(z, np.ascontiguousarray(dx[:, 0]), np.ascontiguousarray(dy[:, 0]), a_in,  # type: ignore[no-any-return]
                            np.asarray(cfg.m_breaks_deg, np.float64), np.asarray(cfg.m_values, np.float64),
                            np.asarray(cfg.s_breaks_deg, np.float64), np.ascontiguousarray(coef[:, 0]),
                            np.ascontiguousarray(coef[:, 1]), float(cfg.slope_length_cap_m), float(cfg.unit_length_m),
                            rows, cols)  # fmt: skip


def _ls_block(z: np.ndarray, dx: np.ndarray, dy: np.ndarray, cfg: LSFactorConfig) -> np.ndarray:
    """LS (float32) of one DEM block: :func:`slope_ls_block` without the slope."""
    return slope_ls_block(z, dx, dy, cfg)[1]


def _ls_numpy(z: np.ndarray, dx: np.ndarray, dy: np.ndarray, cfg: LSFactorConfig) -> np.ndarray:
    """The same LS by the numpy composition of :func:`l_factor` and :func:`s_factor` (tests' reference)."""
    z = np.asarray(z, dtype=np.float64)
    dx, dy = np.asarray(dx, np.float64)[:, :1], np.asarray(dy, np.float64)[:, :1]
    gx, gy = _horn(*_padded(z, dx, dy))
    slope = _slope_of(gx, gy).astype(np.float64)
    aspect = _aspect_of(gx, gy).astype(np.float64)
    a_in = np.maximum(upstream_area(z, dx, dy) - dx * dy, 0.0)
    with np.errstate(invalid="ignore"):
        ls = l_factor(np.nan_to_num(a_in), np.sqrt(dx * dy), aspect, slope, cfg) * s_factor(slope, cfg)
    return np.where(np.isfinite(z), np.maximum(ls, 0.0), np.nan).astype(np.float32)


def ls_factor(dem: xr.DataArray, cfg: LSFactorConfig = LSFactorConfig()) -> xr.DataArray:
    """Static LS (dimensionless, float32) of a DEM (y, x) in m; NaN where the DEM is NaN.

    Flow directions are D8 steepest descent on the depression-filled DEM (:mod:`lpqlc.erosion.flow`).
    A Dask-backed ``dem`` gives a lazy result computed per chunk with a halo of :func:`ls_halo_px`
    pixels (``dask.array.map_overlap``): peak memory is bounded by (chunk + 2·halo)², whatever the AOI.
    The capped slope length makes L at a cell depend only on cells within λ_max/D of it along flow
    paths, so the tiled result equals the whole-area one except where depression filling reaches
    farther than the margin (docs/erosion.md reports the differences). A numpy-backed ``dem`` is
    computed whole, in memory.
    """
    dx, dy = cell_size_m(dem)
    z = dem.data
    if isinstance(z, da.Array):
        halo = ls_halo_px(float(np.sqrt(dx * dy).min()), cfg)
        depth = {0: min(halo, dem.shape[0] - 1), 1: min(halo, dem.shape[1] - 1)}  # a halo ≥ the AOI sees it all
        z = z.astype(np.float32)
        dxa = da.broadcast_to(da.from_array(dx, chunks=(z.chunks[0], 1)), dem.shape, chunks=z.chunks)
        dya = da.broadcast_to(da.from_array(dy, chunks=(z.chunks[0], 1)), dem.shape, chunks=z.chunks)
        data = da.map_overlap(_ls_block, z, dxa, dya, depth=depth, boundary="none", trim=True,
                              dtype=np.float32, cfg=cfg, allow_rechunk=True)  # fmt: skip
    else:
        data = _ls_block(np.asarray(z), dx, dy, cfg)
    out = xr.DataArray(data, coords=dem.coords, dims=dem.dims, name="ls")
    out.attrs.update(units="1", long_name="LS factor (Desmet & Govers L, Liu S; D8 steepest descent)")
    return out
