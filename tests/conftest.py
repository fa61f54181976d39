"""Session fixtures: a small sample archive on disk, and the real local data plane (SeaweedFS,
PostgreSQL + pgstac, stac-fastapi-pgstac) started on free ports of 127.0.0.1 and torn down after."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpqlc.config import PipelineConfig, config_from_dict
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate
from lpqlc.sample.schedule import SampleSchedule
from lpqlc.sample.world import WorldSpec
from lpqlc.stack import LocalStack, StackState
from lpqlc.storage import Store

#: Small but telling: Landsat 7 (SLC-off), 8 and 9, Sentinel-2 A/B across the 2022-01-25 baseline change,
#: some Sentinel-2 acquisitions also served reprocessed (a newer ``_1_L2A`` item).
SMALL = SampleSpec(
    seed=7, size=192, start=Quarter(2021, 4), end=Quarter(2022, 1),
    schedule=SampleSchedule(seed=7, reprocessed_fraction=0.3),
)  # fmt: skip


def small_bbox(margin_m: float = 60.0) -> tuple[float, float, float, float]:
    """Lon/lat bbox inside the SMALL world (EPSG:32649), ``margin_m`` in from its edges."""
    from pyproj import Transformer

    w = WorldSpec(seed=SMALL.seed, size=SMALL.size)
    x0, y1 = w.transform @ (0, 0)
    x1, y0 = w.transform @ (SMALL.size, SMALL.size)
    tr = Transformer.from_crs(w.epsg, 4326, always_xy=True)
    lons, lats = tr.transform([x0 + margin_m, x1 - margin_m, x0 + margin_m, x1 - margin_m],
                              [y0 + margin_m, y0 + margin_m, y1 - margin_m, y1 - margin_m])  # fmt: skip
    return max(lons[0], lons[2]), max(lats[0], lats[1]), min(lons[1], lons[3]), min(lats[2], lats[3])


def small_config(catalog: str | None = None, *, stac_api: str | None = None, flavour: str = "earth-search",
                 storage: str = "/tmp/lpqlc-unused", endpoint_url: str | None = None, landsat_only: bool = False,
                 **science: Any) -> PipelineConfig:  # fmt: skip
    """The sample pipeline over the SMALL world, reading ``catalog`` or ``stac_api``; ``landsat_only``
    makes Landsat the sensor of every era (to composite Landsat in the Sentinel-2 years)."""
    doc: dict[str, Any] = {
        "name": "small",
        "aoi": {"name": "small", "bbox": list(small_bbox())},
        "period": {"start": str(SMALL.start), "end": str(SMALL.end)},
        "grid": {"tile_size": 128, "chunk_size": 64},
        "sources": {"catalog": catalog, "stac_api": stac_api, "flavour": flavour, "max_cloud_cover": 100,
                    **({"sensors": [{"start": "1984Q1", "sensor": "landsat"}]} if landsat_only else {})},
        "storage": {"url": storage, "endpoint_url": endpoint_url},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "memory_limit": "2GiB"},
        "science": science,
    }
    return config_from_dict(doc)


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> SampleArchive:
    return generate(str(tmp_path_factory.mktemp("archive")), SMALL, import_xrspatial=True)


@pytest.fixture(scope="session")
def small_archive_pc(tmp_path_factory: pytest.TempPathFactory) -> SampleArchive:
    """The SMALL archive with items shaped like Planetary Computer's (same pixels)."""
    return generate(str(tmp_path_factory.mktemp("archive-pc")), replace(SMALL, flavour="planetary-computer"))


@pytest.fixture(scope="session")
def stack() -> Iterator[StackState]:
    # PostgreSQL runs as the postgres user: its folder must be world-traversable (not pytest's 0700 tmp).
    folder = Path(tempfile.mkdtemp(prefix="lpqlc-stack-"))
    os.chmod(folder, 0o755)
    local = LocalStack(folder)
    state = local.up(bucket="lpqlc-test")
    mp = pytest.MonkeyPatch()
    for k, v in state.env().items():
        mp.setenv(k, v)
    try:
        yield state
    finally:
        mp.undo()
        local.down(purge=True)


@pytest.fixture(scope="session")
def s3_archive(stack: StackState) -> SampleArchive:
    """The SMALL archive written to the SeaweedFS bucket and upserted into the STAC API."""
    return generate(
        f"s3://{stack.bucket}/sample",
        SMALL,
        store=Store.from_settings(stack.s3_endpoint),
        stac_api=stack.stac_api,
        import_xrspatial=True,
    )


def tile_mosaic(folder: Path, layer: str) -> np.ndarray:
    """Mosaic of ``<folder>/x###y###/<layer>.tif`` tiles (row-major by tile index), read whole: test-sized."""
    import rasterio

    rows = {}
    for t in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("x")):
        with rasterio.open(t / f"{layer}.tif") as src:
            rows[(int(t.name[5:8]), int(t.name[1:4]))] = src.read(1)
    ny, nx = max(k[0] for k in rows) + 1, max(k[1] for k in rows) + 1
    return np.block([[rows[(iy, ix)] for ix in range(nx)] for iy in range(ny)])
