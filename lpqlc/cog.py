"""Cloud-Optimized GeoTIFF writing: tiled 512, DEFLATE with a predictor, overviews, nodata, colours.

Files are built in memory by GDAL's COG driver and written to any storage URL atomically
(:func:`lpqlc.storage.write_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from lpqlc.storage import Store, write_bytes

__all__ = ["cog_bytes", "write_cog", "hex_to_rgba"]

Resampling = Literal["nearest", "mode", "average", "bilinear"]


def hex_to_rgba(colour: str) -> tuple[int, int, int, int]:
    """``'#006400'`` → ``(0, 100, 0, 255)``."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def cog_bytes(
    data: np.ndarray,
    transform: Affine,
    crs: str | rasterio.crs.CRS,
    *,
    nodata: float | int | None = None,
    overview_resampling: Resampling = "average",
    colormap: Mapping[int, str] | None = None,
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    blocksize: int = 512,
    compress: Literal["DEFLATE", "ZSTD"] = "DEFLATE",
    level: int | None = None,
    overviews: bool = True,
    predictor: bool = True,
) -> bytes:
    """Encode a (bands, y, x) or (y, x) array as COG bytes.

    ``transform``/``crs`` place the pixels; ``colormap`` (class code → ``#rrggbb``) is embedded for
    single-band uint8 class rasters; ``overview_resampling`` is ``mode``/``nearest`` for classes and
    ``average`` for continuous layers. ``compress``/``level``: the codec and its level (GDAL's default
    level when None: 6 for DEFLATE, 9 for ZSTD). ``overviews=False``: full resolution only (still a COG:
    header first, tiles in order), for caches that are only ever read at full resolution.
    ``predictor=False``: no horizontal predictor (faster to write and read, some more bytes).
    """
    arr = data[np.newaxis] if data.ndim == 2 else data
    if arr.ndim != 3:
        raise ValueError(f"expected a (y, x) or (band, y, x) array, got shape {data.shape}")
    count, height, width = arr.shape
    is_float = np.issubdtype(arr.dtype, np.floating)
    profile = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "BLOCKSIZE": blocksize,
        "COMPRESS": compress,
        "PREDICTOR": "3" if is_float else "2",
        "OVERVIEW_RESAMPLING": overview_resampling.upper(),
        "BIGTIFF": "IF_SAFER",
    }
    if level is not None:
        profile["LEVEL"] = int(level)
    if not overviews:
        profile["OVERVIEWS"] = "NONE"
    if colormap is not None or not predictor:
        profile["PREDICTOR"] = "NO"  # paletted data gains nothing from a horizontal predictor; caches opt out
    # GDAL's COG driver builds the overviews in a temporary file it compresses with ZSTD (level 9) and
    # then decompresses to copy them: uncompressed, that file costs a third of the tile's bytes in
    # memory and saves 7-44 % of the CPU (more with more bands), for the same output bytes
    # (docs/performance.md, *Terrain*, round 5)
    with rasterio.Env(COG_TMP_COMPRESSION="NONE"), MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(arr)
            if descriptions:
                for i, d in enumerate(descriptions, start=1):
                    dst.set_band_description(i, d)
            if tags:
                dst.update_tags(**tags)
            if colormap is not None:
                cmap = {int(k): hex_to_rgba(v) for k, v in colormap.items()}
                if nodata is not None:
                    cmap.setdefault(int(nodata), (0, 0, 0, 0))
                dst.write_colormap(1, cmap)
        return mem.read()


def write_cog(
    url: str, data: np.ndarray, transform: Affine, crs: str, *, store: Store | None = None, **kwargs: object
) -> int:
    """Write a COG to a storage URL atomically; returns its size in bytes. See :func:`cog_bytes`."""
    blob = cog_bytes(data, transform, crs, **kwargs)  # type: ignore[arg-type]
    write_bytes(url, blob, store)
    return len(blob)
