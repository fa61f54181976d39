"""Against the real local data plane: SeaweedFS (S3), PostgreSQL + pgstac, stac-fastapi-pgstac."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import s3fs
from pystac_client import Client

from lpqlc.errors import SourceError, StackError
from lpqlc.publish.stacapi import ingest
from lpqlc.sample.archive import SampleArchive
from lpqlc.sample.realpixels import XRSPATIAL_ITEM_ID
from lpqlc.stack import LocalStack, StackState
from lpqlc.stack.process import free_ports
from lpqlc.storage import Store, gdal_env, parse_storage_url

pytestmark = pytest.mark.stack

LOESS_BBOX = [110.50, 36.575, 110.53, 36.60]


def _static_items(archive: SampleArchive, collection: str) -> list[dict]:
    root = Path(archive.root) / collection
    return [json.loads((root / i / f"{i}.json").read_text()) for i in archive.items[collection]]


def test_search_by_bbox_datetime_and_cloud_cover(
    stack: StackState, s3_archive: SampleArchive, small_archive: SampleArchive
) -> None:
    api = Client.open(stack.stac_api)
    start, end = "2022-01-01T00:00:00Z", "2022-03-31T23:59:59Z"
    found = api.search(
        collections=["sentinel-2-l2a"],
        bbox=LOESS_BBOX,
        datetime=f"{start}/{end}",
        query={"eo:cloud_cover": {"lte": 30}},
        limit=7,  # forces paging
    )
    got = sorted(it.id for it in found.items())
    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    expected = sorted(
        d["id"]
        for d in _static_items(small_archive, "sentinel-2-l2a")
        if d["id"] != XRSPATIAL_ITEM_ID
        and lo <= datetime.fromisoformat(d["properties"]["datetime"]) <= hi
        and d["properties"]["eo:cloud_cover"] <= 30
    )
    assert got == expected and got
    # the real-pixel item lies in Patagonia: found by its own bbox, never by the plateau's
    real = next(d for d in _static_items(small_archive, "sentinel-2-l2a") if d["id"] == XRSPATIAL_ITEM_ID)
    assert real["bbox"][0] < -60 and real["bbox"][1] < -40  # EPSG:32719, southern Chile / Patagonia
    chile = api.search(collections=["sentinel-2-l2a"], bbox=real["bbox"])
    assert [it.id for it in chile.items()] == [XRSPATIAL_ITEM_ID]
    landsat = api.search(collections=["landsat-c2-l2"], bbox=LOESS_BBOX, datetime="2021-10-01/2021-12-31")
    assert sorted(it.id for it in landsat.items()) == sorted(
        i for i in small_archive.items["landsat-c2-l2"] if "_2021" in i
    )


def test_ingest_is_idempotent(stack: StackState, s3_archive: SampleArchive) -> None:
    api = Client.open(stack.stac_api)
    n = len(list(api.search(collections=["landsat-c2-l2"]).items()))
    assert n == len(s3_archive.items["landsat-c2-l2"])
    # generating again upserts: nothing duplicates
    from lpqlc.sample.archive import generate

    from .conftest import SMALL

    generate(f"s3://{stack.bucket}/sample", SMALL, store=Store.from_settings(stack.s3_endpoint), stac_api=stack.stac_api)
    assert len(list(api.search(collections=["landsat-c2-l2"]).items())) == n


def test_odc_stac_loads_assets_from_seaweedfs(
    stack: StackState, s3_archive: SampleArchive, small_archive: SampleArchive
) -> None:
    import odc.stac
    import xarray as xr
    from dask.distributed import Client as DaskClient
    from dask.distributed import LocalCluster

    api = Client.open(stack.stac_api)
    item = next(api.search(collections=["sentinel-2-l2a"], bbox=LOESS_BBOX, max_items=1).items())
    assert item.assets["red"].href.startswith(f"s3://{stack.bucket}/sample/")
    # a real worker process, so the GDAL environment must travel with the tasks
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, DaskClient(
        cluster
    ) as client:
        odc.stac.configure_rio(cloud_defaults=True, client=client, **gdal_env(stack.s3_endpoint))
        ds = odc.stac.load([item], bands=["red", "scl"], chunks={"x": 64, "y": 64}, resampling="nearest")
        assert hasattr(ds.red.data, "dask") and max(ds.red.chunks[1]) == 64 and max(ds.red.chunks[2]) == 64
        red = ds.red.isel(time=0).compute().values
    local = Path(small_archive.root) / "sentinel-2-l2a" / item.id / "red.tif"
    with rasterio.open(local) as src:
        assert np.array_equal(red, src.read(1))
    assert isinstance(ds, xr.Dataset) and ds.scl.shape[1:] == red.shape  # 20 m SCL onto the 10 m grid
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": stack.s3_endpoint})
    assert fs.exists(f"{stack.bucket}/sample/catalog.json")


def test_static_catalog_on_s3_reads_back(stack: StackState, s3_archive: SampleArchive) -> None:
    from lpqlc.sources.static import search_static

    items = search_static(
        s3_archive.catalog, ["landsat-c2-l2"], bbox=tuple(LOESS_BBOX), store=Store.from_settings(stack.s3_endpoint)
    )
    assert sorted(i.id for i in items) == s3_archive.items["landsat-c2-l2"]


def test_bad_stac_api_url_is_named(s3_archive: SampleArchive) -> None:
    port = free_ports(1)[0]
    with pytest.raises(SourceError, match=f"cannot reach the STAC API at http://127.0.0.1:{port}"):
        ingest(f"http://127.0.0.1:{port}", {}, {}, parse_storage_url("/tmp/x"))


def test_cli_stack_lifecycle_and_failures(stack: StackState) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lpqlc-cli-stack-"))
    os.chmod(folder, 0o755)
    cli = [sys.executable, "-m", "lpqlc.cli", "stack"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "--dir", str(folder)], capture_output=True, text=True, timeout=180)

    try:
        busy = run("up", "--s3-port", str(stack.s3_port))
        assert busy.returncode == 2 and f"ports already in use on 127.0.0.1: [{stack.s3_port}]" in busy.stderr
        up = run("up")
        assert up.returncode == 0, up.stderr
        status = run("status")
        assert status.returncode == 0
        for service in ("SeaweedFS", "pgstac", "stac-fastapi-pgstac"):
            assert service in status.stdout
        state = LocalStack(folder).load_state()
        assert state is not None
        lines = [ln for ln in status.stdout.splitlines() if "127.0.0.1" in ln]
        assert len(lines) == 3 and all(" up " in ln for ln in lines)
        for port in (state.s3_port, state.pg_port, state.api_port):
            assert f"127.0.0.1:{port}" in status.stdout
        assert run("down").returncode == 0
        after = run("status")
        assert after.returncode == 1
    finally:
        LocalStack(folder).down(purge=True)


def test_failed_service_names_its_log(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lpqlc-bad-stack-"))
    os.chmod(folder, 0o755)
    env = os.environ.copy()
    try:
        os.environ["LPQLC_PG_BINDIR"] = str(tmp_path)  # no initdb there
        with pytest.raises(StackError, match="PostgreSQL: no initdb/pg_ctl found"):
            LocalStack(folder).up()
        assert not LocalStack(folder).healthy()
    finally:
        os.environ.clear()
        os.environ.update(env)
        LocalStack(folder).down(purge=True)
