"""Previews: decimated mosaics of tiled COGs, for quicklook PNGs (reads only what the preview needs),
and matplotlib figures saved as PNGs to any storage URL."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox

from lpqlc.storage import Store, read_bytes, write_bytes

__all__ = ["mosaic_tiles", "png_bytes", "write_png"]


def png_bytes(fig: Any, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (tight bounding box); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_png(fig: Any, url: str, store: Store | None = None) -> str:
    """Save a matplotlib figure as a PNG at ``url`` (local or ``s3://``, atomically); returns ``url``."""
    write_bytes(url, png_bytes(fig), store)
    return url


def mosaic_tiles(
    urls: dict[tuple[int, int], str], full: GeoBox, tile_size: int, store: Store | None = None, max_px: int = 1200
) -> np.ndarray:
    """(y, x) float32 mosaic of single-band tile COGs keyed by (row, column) tile index, decimated so
    its longer side is at most ``max_px``; NaN where no tile or nodata."""
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile

    step = max(1, int(np.ceil(max(full.shape.yx) / max_px)))
    ny, nx = (int(np.ceil(s / step)) for s in full.shape.yx)
    canvas = np.full((ny, nx), np.nan, np.float32)
    for (iy, ix), url in urls.items():
        with MemoryFile(read_bytes(url, store)) as mem, mem.open() as src:
            h, w = int(np.ceil(src.height / step)), int(np.ceil(src.width / step))
            data = src.read(1, out_shape=(h, w), resampling=Resampling.average, masked=True)
            data = data.astype(np.float32).filled(np.nan)
        y0, x0 = iy * tile_size // step, ix * tile_size // step
        canvas[y0 : y0 + h, x0 : x0 + w] = data[: ny - y0, : nx - x0]
    return canvas
