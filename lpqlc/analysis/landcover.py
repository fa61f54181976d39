"""Land-cover areas, transition matrices and "when" maps (paper §4.3, Figure 10), as lazy reductions.

Inputs are class rasters with dimensions (time, y, x) or (y, x) (WorldCover codes, 0 nodata), e.g. the
``landcover`` variable of the published land-cover datacube. Areas are in km² (pixel count × pixel
area of the equal-area grid). Regions are an optional (y, x) uint8 raster of subregion numbers
1…R (0 outside every subregion); tables then hold the whole AOI as region ``all`` plus each subregion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from lpqlc.analysis.counts import bincount, class_index

__all__ = ["area_per_class", "relative_change", "net_gain", "transitions", "when_maps"]


def _region_labels(names: Sequence[str] | None) -> list[str]:
    return ["all", *(names or [])]


def area_per_class(lc: xr.DataArray, codes: Sequence[int], pixel_km2: float,
                   regions: xr.DataArray | None = None,
                   region_names: Sequence[str] | None = None) -> xr.DataArray:  # fmt: skip
    """Area (km²) per class for every leading index of ``lc`` (e.g. per quarter): dims (…, region, class).

    Region ``all`` is the whole AOI; the others are ``regions`` == 1…len(region_names).
    """
    idx = class_index(lc, codes)
    k = len(codes)
    whole = bincount(idx, k, dim="class")
    parts = [whole]
    if regions is not None and region_names:
        r = len(region_names)
        inside = (idx >= 0) & (regions >= 1) & (regions <= r)
        key = xr.where(inside, (regions.astype(np.int16) - 1) * k + idx, -1)
        per = bincount(key, r * k, dim="bin")
        parts += [per.isel(bin=slice(i * k, (i + 1) * k)).rename(bin="class") for i in range(r)]
    out = (xr.concat(parts, dim="region") * pixel_km2).transpose(..., "region", "class")
    return out.assign_coords(region=_region_labels(region_names if regions is not None else None),
                             **{"class": list(codes)}).rename("area_km2")  # fmt: skip


def relative_change(area: xr.DataArray, dim: str = "time") -> xr.Dataset:
    """Change of each area relative to the first step of ``dim``: km² and percent (NaN where it was 0)."""
    first = area.isel({dim: 0})
    delta = area - first
    return xr.Dataset({"change_km2": delta, "change_pct": 100 * delta / first.where(first > 0)})


def net_gain(area: xr.DataArray, start: object, end: object, dim: str = "time") -> xr.DataArray:
    """Net gain (km², negative for a net loss) of each class between two labels of ``dim``."""
    return area.sel({dim: end}) - area.sel({dim: start})


def transitions(a: xr.DataArray, b: xr.DataArray, codes: Sequence[int], pixel_km2: float,
                regions: xr.DataArray | None = None, region_names: Sequence[str] | None = None,
                mask: xr.DataArray | None = None) -> xr.DataArray:  # fmt: skip
    """Transition matrix (km²) from class map ``a`` to class map ``b`` (both (y, x)): dims (region, from, to).

    Pixels that are nodata in either map, or False in ``mask``, are left out.
    """
    k = len(codes)
    ia, ib = class_index(a, codes), class_index(b, codes)
    ok = (ia >= 0) & (ib >= 0)
    if mask is not None:
        ok = ok & mask
    pair = xr.where(ok, ia.astype(np.int32) * k + ib, -1)
    parts = [bincount(pair, k * k)]
    names = list(region_names or []) if regions is not None else []
    for i, _ in enumerate(names):
        parts.append(bincount(xr.where(regions == i + 1, pair, -1), k * k))
    flat = xr.concat(parts, dim="region") * pixel_km2
    data = flat.data.reshape(len(parts), k, k)
    return xr.DataArray(data, dims=("region", "from", "to"),
                        coords={"region": _region_labels(names), "from": list(codes), "to": list(codes)},
                        name="area_km2")  # fmt: skip


def _when_block(x: np.ndarray, code: int, labels: np.ndarray) -> np.ndarray:
    """(…, T) classes → (…, 2) int32: [gain label, loss label], 0 where the pixel did not gain/lose."""
    holds = x == code
    valid = x != 0
    t_len = x.shape[-1]
    # length of the run at the end of the series where the pixel holds (gain) / does not hold (loss) the class
    tail_hold = np.cumprod(holds[..., ::-1], axis=-1).sum(-1)
    tail_not = np.cumprod((~holds & valid)[..., ::-1], axis=-1).sum(-1)
    gained = ~holds[..., 0] & valid[..., 0] & holds[..., -1]
    lost = holds[..., 0] & (tail_not > 0)
    gain = np.where(gained, labels[np.clip(t_len - tail_hold, 0, t_len - 1)], 0)
    loss = np.where(lost, labels[np.clip(t_len - tail_not, 0, t_len - 1)], 0)
    return np.stack([gain, loss], axis=-1).astype(np.int32)


def when_maps(lc: xr.DataArray, code: int, labels: Sequence[int], dim: str = "time") -> xr.Dataset:
    """For class ``code`` over a (``dim``, y, x) class series: ``gain`` is the label (e.g. 20053 for
    2005Q3) of the first step from which a pixel that did not hold the class at the first step holds it
    to the end of the series; ``loss`` the first step from which a pixel that held it at the first step
    never holds it again (nodata steps end a loss run). 0 where there was no such change. int32 (y, x).
    ``dim`` is made one chunk (memory per block: steps × block pixels bytes)."""
    if len(labels) != lc.sizes[dim]:
        raise ValueError(f"when_maps: {len(labels)} labels for {lc.sizes[dim]} steps of {dim!r}")
    data = lc.chunk({dim: -1}) if lc.chunks is not None else lc
    lab = np.asarray(labels, np.int32)
    out = xr.apply_ufunc(
        _when_block, data, input_core_dims=[[dim]], output_core_dims=[["change"]], dask="parallelized",
        output_dtypes=[np.int32], dask_gufunc_kwargs={"output_sizes": {"change": 2}},
        kwargs={"code": int(code), "labels": lab},
    )  # fmt: skip
    return xr.Dataset({"gain": out.isel(change=0, drop=True), "loss": out.isel(change=1, drop=True)})
