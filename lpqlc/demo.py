"""The offline main job on the embedded default: sample archive → static-catalog search → lazy odc-stac
load onto the equal-area grid on a local Dask cluster → quicklooks and a summary.

No server is needed. Later stages (composites, classification, erosion, publishing) join this job as
they land; today it proves the archive, the search and the lazy load end to end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lpqlc.config import PipelineConfig, load_config
from lpqlc.grid import OutputGrid
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate
from lpqlc.sources.static import search_static
from lpqlc.storage import gdal_env

__all__ = ["DemoResult", "run_demo", "quicklook_quarter"]

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    archive: SampleArchive
    quarter: Quarter
    n_items: int
    pngs: list[str]
    grid_shape: tuple[int, int]


def _scaled(da: Any, item: Any, key: str) -> Any:
    """Digital numbers → reflectance with the item's own raster:bands scale/offset."""
    rb = item.assets[key].extra_fields.get("raster:bands", [{}])[0]
    return da.where(da != rb.get("nodata", 0)) * rb.get("scale", 1.0) + rb.get("offset", 0.0)


def quicklook_quarter(cfg: PipelineConfig, quarter: Quarter, out_dir: Path, client: Any) -> tuple[int, str, tuple[int, int]]:
    """Load the quarter's clearest Sentinel-2 / Landsat scene lazily on the output grid; write an RGB PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import odc.stac

    grid = OutputGrid.from_config(cfg)
    gbox = grid.geobox(quarter)
    sensor = cfg.sources.sensor_for(quarter)
    coll = cfg.sources.collections.sentinel2 if sensor == "sentinel2" else cfg.sources.collections.landsat
    assert cfg.sources.catalog is not None
    items = search_static(
        cfg.sources.catalog,
        [coll],
        bbox=cfg.aoi.bbox,
        start=quarter.start,
        end=quarter.end,
        max_cloud_cover=cfg.sources.max_cloud_cover,
        endpoint_url=cfg.storage.endpoint_url,
    )
    if not items:
        raise RuntimeError(f"no {coll} item in {quarter} under {cfg.sources.max_cloud_cover}% cloud")
    best = min(items, key=lambda it: (it.properties.get("eo:cloud_cover", 100.0), it.id))
    odc.stac.configure_rio(cloud_defaults=True, client=client, **gdal_env(cfg.storage.endpoint_url))
    chunk = cfg.grid.chunk_size
    ds = odc.stac.load([best], bands=["red", "green", "blue"], geobox=gbox, chunks={"x": chunk, "y": chunk},
                       resampling="bilinear")  # fmt: skip
    rgb = np.stack([_scaled(ds[b].isel(time=0), best, b).compute().values for b in ("red", "green", "blue")], -1)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{coll}_{quarter}.png"
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(np.clip(np.nan_to_num(rgb) / 0.3, 0, 1))
    ax.set_title(f"{best.id}\n{quarter}, cloud {best.properties.get('eo:cloud_cover', float('nan')):.1f}% — "
                 f"{gbox.shape[1]}×{gbox.shape[0]} px at {gbox.resolution.x:g} m (equal-area)", fontsize=8)  # fmt: skip
    ax.axis("off")
    fig.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return len(items), str(png), (int(gbox.shape[0]), int(gbox.shape[1]))


def run_demo(config: str | Path, out: str | Path, spec: SampleSpec, quarters: list[Quarter]) -> DemoResult:
    """Generate the archive under ``out`` and preview ``quarters`` from it on a local Dask cluster."""
    from dask.distributed import Client, LocalCluster

    out = Path(out).absolute()
    archive = generate(str(out / "archive"), spec)
    cfg = load_config(config)
    cfg = cfg.model_copy(
        update={
            "sources": cfg.sources.model_copy(update={"catalog": archive.catalog, "stac_api": None}),
        }
    )
    pngs: list[str] = []
    n_items = 0
    shape = (0, 0)
    with LocalCluster(
        n_workers=cfg.cluster.n_workers,
        threads_per_worker=cfg.cluster.threads_per_worker,
        memory_limit=cfg.cluster.memory_limit,
        processes=True,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:  # fmt: skip
        for q in quarters:
            n, png, shape = quicklook_quarter(cfg, q, out / "quicklooks", client)
            n_items += n
            pngs.append(png)
    return DemoResult(archive=archive, quarter=quarters[-1], n_items=n_items, pngs=pngs, grid_shape=shape)
