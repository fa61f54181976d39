"""Per-pixel quality masks and the fused per-chunk median: pure numpy, called inside Dask tasks.

Everything here works on one chunk: digital numbers ``(time, band, y, x)`` (integers, as loaded) and
the quality layer ``(time, y, x)``; the result is the median reflectance per band, the count of clear
observations and NDVI, as one ``(band + 2, y, x)`` float32 block.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scl_clear", "qa_clear", "median_block", "nan_median_sorted"]


def scl_clear(scl: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
    """True where the Sentinel-2 SCL class is one of ``keep`` (e.g. 4 vegetation, 5 bare, 6 water, 7)."""
    return np.isin(scl, np.asarray(keep, dtype=scl.dtype))


def qa_clear(qa: np.ndarray, mask_bits: tuple[int, ...], nodata: int = 1) -> np.ndarray:
    """True where none of the Landsat QA_PIXEL ``mask_bits`` is set and the pixel is not ``nodata``.

    Bit 0 is fill: Landsat 7 SLC-off stripes and swath edges are fill, so they become nodata here.
    """
    bits = np.uint16(sum(1 << b for b in mask_bits))
    q = qa.astype(np.uint16, copy=False)
    return ((q & bits) == 0) & (q != nodata)


def nan_median_sorted(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN, given ``n`` = count of finite values per pixel.

    Sorting puts NaN last, so the median of the ``n`` finite values sits at ranks (n−1)//2 and n//2
    (their mean; the same as ``numpy.nanmedian``). Where n = 0 the result is NaN.
    """
    s = np.sort(x, axis=0)
    lo = np.maximum((n - 1) // 2, 0)[None]
    hi = np.maximum(n // 2, 0)[None]
    med = 0.5 * (np.take_along_axis(s, lo, 0)[0] + np.take_along_axis(s, hi, 0)[0])
    med[n == 0] = np.nan
    return med.astype(np.float32, copy=False)


def median_block(
    dn: np.ndarray,
    quality: np.ndarray,
    *,
    mask_kind: str,
    keep: tuple[int, ...],
    mask_bits: tuple[int, ...],
    mask_nodata: int,
    scale: np.ndarray,
    offset: np.ndarray,
    nodata: np.ndarray,
    valid_range: tuple[float, float],
    red: int | None,
    nir: int | None,
) -> np.ndarray:
    """Quarterly composite of one chunk.

    ``dn`` (T, B, y, x) integer digital numbers; ``quality`` (T, y, x) SCL classes or QA_PIXEL bits;
    ``scale``/``offset`` (T, B) per time slice and band (reflectance = DN·scale + offset);
    ``nodata`` (B,) the DN of missing pixels. An observation counts only if its quality is clear and
    every band is present and inside ``valid_range``. Returns float32 (B + 2, y, x): the median
    reflectance per band, the clear-observation count, NDVI (from bands ``red`` and ``nir``; NaN
    where either is missing or the count is 0).
    """
    t, b, h, w = dn.shape
    out = np.full((b + 2, h, w), np.nan, dtype=np.float32)
    if t == 0:
        out[b] = 0
        return out
    if mask_kind == "scl":
        valid = scl_clear(quality, keep)
    else:
        valid = qa_clear(quality, mask_bits, mask_nodata)
    lo, hi = valid_range
    refl = np.empty((t, b, h, w), dtype=np.float32)
    for j in range(b):
        r = dn[:, j].astype(np.float32) * scale[:, j, None, None].astype(np.float32)
        r += offset[:, j, None, None].astype(np.float32)
        valid &= (dn[:, j] != nodata[j]) & (r >= lo) & (r <= hi)
        refl[:, j] = r
    count = valid.sum(axis=0)
    for j in range(b):
        x = refl[:, j]
        x[~valid] = np.nan
        out[j] = nan_median_sorted(x, count)
    out[b] = count
    if red is not None and nir is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ndvi = (out[nir] - out[red]) / (out[nir] + out[red])
        out[b + 1] = np.where(np.isfinite(ndvi), np.clip(ndvi, -1, 1), np.nan)
    return out
