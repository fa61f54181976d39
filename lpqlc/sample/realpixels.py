"""Import the real Sentinel-2 L2A bands that ship in the ``xarray-spatial`` wheel as one archive item.

``xrspatial/datasets/sentinel-2/{blue,green,red,nir,swir1,swir2}_band.nc`` hold a 200×300 scene at
10 m (SWIR at 20 m over a larger extent), EPSG:32719 in their attributes, as L2A digital numbers
(reflectance × 10000, no baseline offset). The wheel ships no SCL layer and no acquisition date, so
the item carries an SCL *derived* from the pixels (NDVI/water rules, flagged
``lpqlc:scl_derived: true``) and a nominal date (``lpqlc:datetime_nominal: true``). Everything
else follows the same Earth Search v1 shape as the synthetic items, so real pixels run through the
same code paths.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from lpqlc.errors import SampleArchiveError
from lpqlc.sample import items as stac

__all__ = ["XRSPATIAL_ITEM_ID", "xrspatial_dataset_dir", "xrspatial_s2_item"]

XRSPATIAL_ITEM_ID = "S2A_19GEP_20190301_0_L2A"
_FILES = {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "swir16": "swir1"}
NOMINAL_DATE = datetime(2019, 3, 1, 14, 30, tzinfo=UTC)


def xrspatial_dataset_dir() -> Path:
    """Folder of the Sentinel-2 sample bands inside the installed xarray-spatial package."""
    try:
        import xrspatial
    except ImportError as exc:
        raise SampleArchiveError(
            "--import-xrspatial needs the xarray-spatial package: pip install 'lpqlc[dev]'"
        ) from exc
    folder = Path(xrspatial.__file__).parent / "datasets" / "sentinel-2"
    if not (folder / "blue_band.nc").exists():
        raise SampleArchiveError(f"xarray-spatial has no Sentinel-2 sample bands in {folder}")
    return folder


def _read(path: Path) -> tuple[np.ndarray, Affine, int]:
    import xarray as xr

    with xr.open_dataset(path, engine="scipy") as ds:
        da = ds[next(iter(ds.data_vars))]
        arr = np.asarray(da.values).squeeze()
        t = [float(v) for v in np.asarray(da.attrs["transform"])[:6]]
        crs = str(da.attrs.get("crs", ""))
    if "32719" not in crs:
        raise SampleArchiveError(f"{path}: expected EPSG:32719 in the attributes, got {crs!r}")
    dn = np.where(np.isfinite(arr), np.clip(np.rint(arr), 1, 65535), 0).astype(np.uint16)
    return dn, Affine(*t), 32719


def _derived_scl(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """SCL from the pixels at 20 m (2×2 blocks): 4 vegetation, 5 not vegetated, 6 water, 0 nodata."""
    h, w = red.shape[0] // 2 * 2, red.shape[1] // 2 * 2
    r = red[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) / 10000
    n = nir[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) / 10000
    ndvi = (n - r) / np.maximum(n + r, 1e-6)
    scl = np.where(ndvi > 0.3, 4, 5).astype(np.uint8)
    scl[(ndvi < 0) & (n < 0.05)] = 6
    scl[(r == 0) | (n == 0)] = 0
    return scl


def xrspatial_s2_item(write_cog: Any) -> dict[str, Any]:
    """Write the real bands through ``write_cog(key, data, transform, crs, **kw) -> href``; return the item."""
    folder = xrspatial_dataset_dir()
    bands = {key: _read(folder / f"{name}_band.nc") for key, name in _FILES.items()}
    epsg = bands["blue"][2]
    hrefs = {key: write_cog(key, dn, tr, f"EPSG:{epsg}", nodata=0) for key, (dn, tr, _) in bands.items()}
    t10 = bands["blue"][1]
    t20 = t10 @ Affine.scale(2)
    scl = _derived_scl(bands["red"][0], bands["nir"][0])
    hrefs["scl"] = write_cog("scl", scl, t20, f"EPSG:{epsg}", nodata=0, overview_resampling="nearest")
    valid = scl > 0
    pct = {name: float(np.isin(scl[valid], [code]).mean() * 100) for name, code in
           (("vegetation", 4), ("not_vegetated", 5), ("water", 6))}  # fmt: skip
    item = stac.s2_item(
        item_id=XRSPATIAL_ITEM_ID,
        platform="sentinel-2a",
        acquired=NOMINAL_DATE,
        processed=NOMINAL_DATE,
        baseline="02.11",
        mgrs="19GEP",
        epsg=epsg,
        grids={10: (t10, bands["blue"][0].shape), 20: (bands["swir16"][1], bands["swir16"][0].shape)},
        hrefs=hrefs,
        cloud_cover=0.0,
        scl_percentages=pct,
        sequence=0,
    )
    item["assets"]["scl"]["proj:shape"] = list(scl.shape)
    item["assets"]["scl"]["proj:transform"] = list(t20)[:6]
    item["properties"].update(
        {"lpqlc:scl_derived": True, "lpqlc:datetime_nominal": True, "lpqlc:source": "xarray-spatial wheel"}
    )
    return item
