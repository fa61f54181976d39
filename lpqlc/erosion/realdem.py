"""A real DEM for tests and benchmarks: the Jacksboro fault DEM that ships with matplotlib
(``mpl-data/sample_data/jacksboro_fault_dem.npz``, 3″ geographic, 344 × 403 px, ≈ 30 × 32 km in
Tennessee), optionally reprojected to a metric grid (UTM 17N) at a given resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["jacksboro_dem"]


def jacksboro_dem(resolution_m: float | None = None, *, crs: str = "EPSG:32617") -> xr.DataArray:
    """Elevation (m, float32, (y, x), north up) of the Jacksboro DEM: geographic (EPSG:4326) as shipped,
    or reprojected bilinear to ``crs`` at ``resolution_m`` metres (30 m ≈ 1.1 Mpx, 10 m ≈ 9.6 Mpx)."""
    import matplotlib
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import assign_crs

    path = Path(matplotlib.get_data_path()) / "sample_data" / "jacksboro_fault_dem.npz"
    with np.load(path) as npz:
        z = npz["elevation"].astype(np.float32)
        xmin = float(npz["xmin"])
        ymin, ymax = sorted((float(npz["ymin"]), float(npz["ymax"])))  # the file swaps them
        dx, dy = float(npz["dx"]), float(npz["dy"])
    ny, nx = z.shape
    ys = ymax - dy * (np.arange(ny) + 0.5)
    xs = xmin + dx * (np.arange(nx) + 0.5)
    # row 0 of the array is the southern edge (imshow origin 'lower'): flip to north-up
    dem = assign_crs(xr.DataArray(z[::-1], dims=("y", "x"), coords={"y": ys, "x": xs}, name="elevation"), "EPSG:4326")
    if resolution_m is None:
        return dem
    from odc.geo.geom import BoundingBox

    src = dem.odc.geobox
    # the largest axis-aligned box inside the (slightly rotated) source extent: no empty corners
    xy = np.asarray(src.extent.to_crs(crs, resolution=np.inf).geom.exterior.coords)[:4]
    xs_, ys_ = np.sort(xy[:, 0]), np.sort(xy[:, 1])
    box = BoundingBox(xs_[1], ys_[1], xs_[2], ys_[2], crs)
    dst = GeoBox.from_bbox(box, crs=crs, resolution=resolution_m, tight=True)
    return dem.odc.reproject(dst, resampling="bilinear", dst_nodata=np.nan).astype(np.float32)
