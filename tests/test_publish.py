"""Publishing: COGs, STAC items/collections, kerchunk datacubes, stac-geoparquet, the STAC API, and
``lpqlc run`` end to end on the SMALL sample archive (a seeded random model: the labels need not be
good, only published faithfully)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import torch
import yaml

from lpqlc.composite.normalise import NormStats
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.model.checkpoint import Checkpoint, save_checkpoint
from lpqlc.model.hrformer import HRFormer, hrformer_config
from lpqlc.pipeline import RunSummary, run_pipeline
from lpqlc.podenv import MALLOC_ENV
from lpqlc.publish.catalog import item_url, list_items, publish_item, read_inputs
from lpqlc.publish.datacube import open_datacube
from lpqlc.publish.items import build_item, inputs_digest, item_id
from lpqlc.publish.validate import validate_stac
from lpqlc.sample.archive import SampleArchive
from lpqlc.stack import StackState
from tests.conftest import SMALL, small_bbox, small_config

BANDS = ["blue", "green", "red", "nir", "swir1"]
CLASSES = [10, 20, 30, 40, 50, 60, 80, 90]
SCIENCE = {"ccts": {"predict_tile": 64, "predict_overlap": 8}}


def _model(path: Path) -> str:
    torch.manual_seed(3)
    norm = NormStats(mean={b: 0.1 for b in BANDS}, std={b: 0.05 for b in BANDS}, n={b: 100 for b in BANDS})
    save_checkpoint(Checkpoint(model=HRFormer(hrformer_config("small")), classes=CLASSES, bands=BANDS, norm=norm), str(path))
    return str(path)


@dataclass
class Published:
    cfg: PipelineConfig
    model: str
    summary: RunSummary
    root: Path


@pytest.fixture(scope="module")
def published(small_archive: SampleArchive, tmp_path_factory: pytest.TempPathFactory) -> Published:
    tmp = tmp_path_factory.mktemp("publish")
    cfg = small_config(small_archive.catalog, storage=str(tmp / "store"), **SCIENCE)
    model = _model(tmp / "model.pt")
    summary = run_pipeline(cfg, model=model)
    return Published(cfg, model, summary, Path(cfg.publish_url))


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_run_publishes_every_product_quarter_and_tile(published: Published) -> None:
    s = published.summary
    assert not s.failures and [str(q) for q in s.quarters] == ["2021Q4", "2022Q1"]
    tiles = 4  # the SMALL grid: 2×2 tiles of 128 px at 10 m
    assert {cid: sum(c.values()) for cid, c in s.items.items()} == {
        "lpqlc-landcover": 2 * tiles, "lpqlc-landcover-confidence": 2 * tiles, "lpqlc-erosion": 2 * tiles,
    }  # fmt: skip
    assert all(c["new"] == sum(c.values()) for c in s.items.values())
    assert set(s.timings) >= {"composite", "classify + refine", "publish land cover", "erosion", "publish erosion", "catalog"}
    cat = json.loads((published.root / "catalog.json").read_text())
    assert sorted(link["href"] for link in cat["links"] if link["rel"] == "child") == [
        "./lpqlc-erosion/collection.json", "./lpqlc-landcover-confidence/collection.json", "./lpqlc-landcover/collection.json"]  # fmt: skip


def test_every_output_cog_passes_rio_cogeo_validate(published: Published) -> None:
    tifs = sorted(published.root.rglob("*.tif"))
    assert len(tifs) == 32  # 24 + the erosion items' quality layers (8 quarterly items)
    rio = Path(sys.executable).parent / "rio"
    res = subprocess.run([str(rio), "cogeo", "validate", "--strict", *map(str, tifs[:1])], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    for tif in tifs:
        res = subprocess.run([str(rio), "cogeo", "validate", str(tif)], capture_output=True, text=True)
        assert res.returncode == 0 and "is a valid cloud optimized GeoTIFF" in res.stdout, (tif, res.stdout, res.stderr)
        with rasterio.open(tif) as src:
            assert src.profile["blockxsize"] == published.cfg.grid.cog_blocksize and src.nodata is not None
            assert src.compression is not None and src.compression.name in ("deflate", "zstd")
            if tif.parts[-4] == "lpqlc-landcover":
                assert src.colormap(1)[10][:3] == (0, 100, 0)  # the WorldCover forest colour, embedded


def test_items_and_collections_validate_offline_with_their_extensions(published: Published) -> None:
    docs = [json.loads(p.read_text()) for p in published.root.rglob("*.json")
            if not p.name.startswith(("datacube", "_")) and p.parent.name != "datacube" and p.name != "lineage.json"]  # fmt: skip
    kinds: dict[str, int] = {}
    for doc in docs:
        checked = validate_stac(doc)
        kinds[doc["type"]] = kinds.get(doc["type"], 0) + 1
        if doc["type"] == "Feature":
            assert any("projection/v1.2.0" in c for c in checked) and any("processing" in c for c in checked)
            assert any("file/v2.1.0" in c for c in checked) and any("raster/v1.1.0" in c for c in checked)
    assert kinds == {"Catalog": 1 + 3 * 2, "Collection": 3, "Feature": 24}  # the root and a sub-catalog per year
    item = json.loads(Path(item_url(str(published.root), "lpqlc-landcover", "lpqlc-landcover-2021Q4-x000y000")).read_text())
    p = item["properties"]
    assert p["version"] == "1" and p["created"] == p["updated"] and p["start_datetime"] == "2021-10-01T00:00:00Z"
    assert p["proj:code"] == "EPSG:10594" and p["proj:epsg"] == 10594 and "proj:wkt2" not in p  # stackstac reads proj:epsg
    url = item_url(str(published.root), "lpqlc-landcover", item["id"])
    inputs = read_inputs(url, item)  # the ids are in the lineage document beside the item, the digest in it
    assert p["processing:software"]["lpqlc"] and inputs and p["lpqlc:inputs_count"] == len(inputs)
    assert p["lpqlc:inputs_digest"] == inputs_digest(inputs) and f"{len(inputs)} source items" in p["processing:lineage"]
    asset = item["assets"]["landcover"]
    blob = (Path(item_url(str(published.root), "lpqlc-landcover", item["id"])).parent / asset["href"]).read_bytes()
    assert asset["file:checksum"] == "1220" + hashlib.sha256(blob).hexdigest() and asset["file:size"] == len(blob)
    assert [c["value"] for c in asset["classification:classes"]] == CLASSES
    ero_url = next((published.root / "lpqlc-erosion").glob("*/lpqlc-*.json"))
    ero = json.loads(ero_url.read_text())
    assert ero["assets"]["erosion"]["raster:bands"][0]["unit"] == "t hm-2 q-1"
    assert any(i.startswith("lpqlc-landcover-") for i in read_inputs(str(ero_url), ero))


def test_kerchunk_datacube_equals_the_cogs_pixel_for_pixel(published: Published) -> None:
    for cid, var in (("lpqlc-landcover", "landcover"), ("lpqlc-landcover-confidence", "confidence"), ("lpqlc-erosion", "erosion")):
        ds = open_datacube(str(published.root / cid / "datacube-10m.json"))
        assert ds[var].dims == ("time", "y", "x") and ds[var].chunks is not None  # lazy
        assert "PROJCRS" in ds["spatial_ref"].attrs["crs_wkt"] and ds.sizes["time"] == 2
        cube = ds[var].values
        items = list_items(str(published.root), cid)
        times = [np.datetime64(i["properties"]["datetime"].replace("Z", "")) for i in items]
        for it, t in zip(items, times, strict=True):
            path = Path(item_url(str(published.root), cid, it["id"])).parent / it["assets"][var]["href"]
            with rasterio.open(path) as src:
                tile, tr = src.read(1), src.transform
            ti = int(np.flatnonzero(ds["time"].values == t)[0])
            col = int(round((tr.c - float(ds.x[0]) + tr.a / 2) / tr.a))
            row = int(round((tr.f - float(ds.y[0]) + tr.e / 2) / tr.e))
            np.testing.assert_array_equal(cube[ti, row : row + tile.shape[0], col : col + tile.shape[1]], tile)
            assert tile.dtype == cube.dtype


def test_the_datacube_of_one_year_reads_only_that_years_references(published: Published,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import lpqlc.publish.datacube as dc

    read: list[str] = []
    real = dc.read_bytes
    monkeypatch.setattr(dc, "read_bytes", lambda url, endpoint=None: read.append(url) or real(url, endpoint))
    cid = "lpqlc-landcover"
    index = str(published.root / cid / "datacube-10m.json")
    ds = open_datacube(index, years=(2022, 2022))
    assert read == [index, str(published.root / cid / "datacube" / "2022-10m.json")]  # the index and one year
    assert ds.sizes["time"] == 1 and str(ds["time"].values[0]).startswith("2022-02") and ds["landcover"].chunks is not None
    cube = ds["landcover"].values
    items = [i for i in list_items(str(published.root), cid) if i["properties"]["lpqlc:period"] == "2022Q1"]
    assert len(items) == 4
    for it in items:
        with rasterio.open(Path(item_url(str(published.root), cid, it["id"])).parent / it["assets"]["landcover"]["href"]) as src:
            tile, tr = src.read(1), src.transform
        col = int(round((tr.c - float(ds.x[0]) + tr.a / 2) / tr.a))
        row = int(round((tr.f - float(ds.y[0]) + tr.e / 2) / tr.e))
        np.testing.assert_array_equal(cube[0, row : row + tile.shape[0], col : col + tile.shape[1]], tile)
    with pytest.raises(LpqlcError, match="no published year in 2030–2031"):
        open_datacube(index, years=(2030, 2031))


def test_stackstac_stacks_the_published_landcover_items(published: Published) -> None:
    """stackstac reads only proj:epsg: the EPSG-coded default grid (EPSG:10594) puts it in our items, so
    their JSON (pystac-client's ``items_as_dicts()``) stacks as is. pystac 1.12+ drops proj:epsg when it
    reads them into Items (projection v2): ``with_epsg`` puts it back from proj:code."""
    import pystac
    import stackstac

    from lpqlc.composite.stackstac_loader import with_epsg

    cid = "lpqlc-landcover"
    docs = list_items(str(published.root), cid)
    for doc in docs:
        href = Path(item_url(str(published.root), cid, doc["id"])).parent / doc["assets"]["landcover"]["href"]
        doc["assets"]["landcover"]["href"] = str(href.resolve())
    band = docs[0]["assets"]["landcover"]["raster:bands"][0]
    kw = {"assets": ["landcover"], "dtype": np.dtype(band["data_type"]), "fill_value": np.dtype(band["data_type"]).type(band["nodata"]),
          "rescale": False}  # fmt: skip
    whole = stackstac.stack(docs, **kw)
    assert whole.attrs["crs"] == "epsg:10594" and whole.sizes["time"] == len(docs) == 8
    for doc in docs[:2]:  # each item, stacked on its own grid, reads back its COG exactly
        p = doc["properties"]
        item = with_epsg(pystac.Item.from_dict(doc))
        one = stackstac.stack([item], bounds=p["proj:bbox"], resolution=p["proj:transform"][0], snap_bounds=False, **kw)
        with rasterio.open(doc["assets"]["landcover"]["href"]) as src:
            np.testing.assert_array_equal(one.values[0, 0], src.read(1))


def test_geoparquet_export_holds_every_item(published: Published) -> None:
    import pyarrow.parquet as pq
    from stac_geoparquet.arrow import stac_table_to_items

    parts = sorted((published.root / "lpqlc-landcover" / "geoparquet").glob("year=*/items.parquet"))
    assert [p.parent.name for p in parts] == ["year=2021", "year=2022"]  # partitioned by year
    items = [i for p in parts for i in stac_table_to_items(pq.read_table(p))]
    assert sorted(i["id"] for i in items) == [i["id"] for i in list_items(str(published.root), "lpqlc-landcover")]
    assert all(i["assets"]["landcover"]["href"].startswith(str(published.root)) for i in items)  # absolute hrefs


def test_republishing_is_idempotent(published: Published) -> None:
    before = _tree_digest(published.root)
    summary = run_pipeline(published.cfg, model=published.model)
    assert all(c["unchanged"] == sum(c.values()) for c in summary.items.values())
    after = _tree_digest(published.root)
    items = {k: v for k, v in before.items() if "/lpqlc-" in "/" + k and k.count("/") >= 2}
    assert items and all(after[k] == v for k, v in items.items())  # items and COGs byte-identical
    assert sorted(after) == sorted(before)


def _publish_args(published: Published, tile: str = "x001y001") -> tuple[str, dict[str, bytes], Any]:
    cfg = published.cfg
    from lpqlc.grid import OutputGrid
    from lpqlc.publish.collections import item_assets
    from lpqlc.publish.items import Period

    gbox = dict(OutputGrid.from_config(cfg).iter_tiles(SMALL.start))[(int(tile[5:8]), int(tile[1:4]))]
    src = Path(cfg.storage.url) / "classify" / "refined" / "2021Q4" / tile / "class.tif"
    blob = src.read_bytes()

    def make(version: int, assets: Any, created: Any, updated: Any) -> dict[str, Any]:
        return build_item(collection="test-landcover", period=Period("2021Q4"), tile=tile, gbox=gbox, assets=assets,
                          item_assets=item_assets(cfg, "landcover"), version=version, created=created,
                          updated=updated, lineage="test", inputs=["a"], software={"lpqlc": "test"})  # fmt: skip

    return item_id("test-landcover", Period("2021Q4"), tile), {"landcover": blob}, make


def test_interrupted_publish_leaves_no_visible_item(published: Published, tmp_path: Path) -> None:
    root = str(tmp_path / "stac")
    iid, blobs, make = _publish_args(published)
    calls = []

    def dies_before_commit(version: int, assets: Any, created: Any, updated: Any) -> dict[str, Any]:
        calls.append(version)
        if len(calls) == 1:  # the document is built after the assets are written, before the item
            raise KeyboardInterrupt("killed between assets and item")
        return make(version, assets, created, updated)

    with pytest.raises(KeyboardInterrupt):
        publish_item(root, "test-landcover", iid, blobs, dies_before_commit, inputs=["a"])
    assert (tmp_path / "stac" / "test-landcover" / iid / "v1" / "landcover.tif").exists()  # assets got written
    assert not Path(item_url(root, "test-landcover", iid)).exists() and list_items(root, "test-landcover") == []
    assert not list((tmp_path / "stac").rglob("*.tmp"))
    out = publish_item(root, "test-landcover", iid, blobs, make, inputs=["a"])  # the rerun writes the same version
    assert (out.status, out.version) == ("new", 1) and [i["id"] for i in list_items(root, "test-landcover")] == [iid]


def test_changed_content_bumps_the_version_and_keeps_the_predecessor(published: Published, tmp_path: Path) -> None:
    from rasterio.io import MemoryFile

    from lpqlc.publish.cog import cog_bytes

    root = str(tmp_path / "stac")
    iid, blobs, make = _publish_args(published)
    first = publish_item(root, "test-landcover", iid, blobs, make, inputs=["a"])
    doc1 = json.loads(Path(first.url).read_text())
    with MemoryFile(blobs["landcover"]) as mem, mem.open() as src:
        data, transform, crs = src.read(1), src.transform, src.crs.to_wkt()
    data[:10, :10] = 60
    changed = {"landcover": cog_bytes(data, transform, crs, nodata=0, overview_resampling="mode", blocksize=128)}
    second = publish_item(root, "test-landcover", iid, changed, make, inputs=["a"])
    doc2 = json.loads(Path(second.url).read_text())
    assert (second.status, second.version) == ("updated", 2) and doc2["properties"]["version"] == "2"
    assert doc2["properties"]["created"] == doc1["properties"]["created"]
    assert doc2["assets"]["landcover"]["href"] == "./v2/landcover.tif"
    assert doc2["assets"]["landcover"]["file:checksum"] != doc1["assets"]["landcover"]["file:checksum"]
    pred = next(link for link in doc2["links"] if link["rel"] == "predecessor-version")
    old = json.loads((Path(second.url).parent / pred["href"]).read_text())
    assert old["properties"]["version"] == "1" and (Path(second.url).parent / "v1" / "landcover.tif").exists()
    assert publish_item(root, "test-landcover", iid, changed, make, inputs=["a"]).status == "unchanged"


def test_a_bad_asset_is_refused_before_anything_is_written(published: Published, tmp_path: Path) -> None:
    from lpqlc.errors import LpqlcError

    root = str(tmp_path / "stac")
    iid, _, make = _publish_args(published)
    with pytest.raises(LpqlcError, match=f"test-landcover/{iid} asset 'landcover'"):
        publish_item(root, "test-landcover", iid, {"landcover": b"not a tiff"}, make, inputs=["a"])
    assert not (tmp_path / "stac").exists()


@pytest.mark.stack
def test_run_cli_on_s3_ingests_into_the_stac_api(small_archive: SampleArchive, stack: StackState, tmp_path: Path) -> None:
    from pystac_client import Client

    cfg = small_config(small_archive.catalog, storage=f"s3://{stack.bucket}/run", endpoint_url=stack.s3_endpoint, **SCIENCE)
    doc = json.loads(cfg.model_dump_json())
    doc["publish"] = {"stac_api": stack.stac_api}
    doc["model"] = {"checkpoint": _model(tmp_path / "model.pt")}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    res = subprocess.run([sys.executable, "-m", "lpqlc.cli", "run", "--config", str(config)], capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "lpqlc-landcover: 8 items (8 new" in res.stdout and "failures: 0" in res.stdout
    client = Client.open(stack.stac_api)
    w, s, e, n = small_bbox()
    found = list(client.search(collections=["lpqlc-landcover"], bbox=[w, s, (w + e) / 2, (s + n) / 2],
                               datetime="2022-01-01/2022-03-31").items())  # fmt: skip
    assert [i.id for i in found] and all(i.id.startswith("lpqlc-landcover-2022Q1-") for i in found)
    assert len(found) < 4  # only the tiles under the bbox
    href = found[0].assets["landcover"].href
    assert href.startswith(f"s3://{stack.bucket}/run/stac/lpqlc-landcover/")
    from lpqlc.storage import gdal_env

    with rasterio.Env(**gdal_env(stack.s3_endpoint)), rasterio.open(href) as src:  # an output COG tile from SeaweedFS
        block = src.read(1, window=((0, 64), (0, 64)))
        assert src.driver == "GTiff" and set(np.unique(block)) <= {0, *CLASSES}
    ds = open_datacube(f"s3://{stack.bucket}/run/stac/lpqlc-landcover/datacube-10m.json", stack.s3_endpoint)
    one = subprocess.run([sys.executable, "-m", "lpqlc.cli", "datacube", f"s3://{stack.bucket}/run/stac/lpqlc-landcover/datacube-10m.json",
                          "--years", "2022", "--endpoint-url", stack.s3_endpoint], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0 and "time: 1" in one.stdout, one.stdout[-2000:] + one.stderr[-2000:]
    with rasterio.Env(**gdal_env(stack.s3_endpoint)), rasterio.open(href) as src:
        tile, tr = src.read(1), src.transform
    ti = int(np.flatnonzero(ds["time"].values == np.datetime64(found[0].properties["datetime"].replace("Z", "")))[0])
    col = int(round((tr.c - float(ds.x[0]) + tr.a / 2) / tr.a))
    row = int(round((tr.f - float(ds.y[0]) + tr.e / 2) / tr.e))
    np.testing.assert_array_equal(ds["landcover"].values[ti, row : row + tile.shape[0], col : col + tile.shape[1]], tile)
    coll = client.get_collection("lpqlc-landcover")
    assert coll.extra_fields["item_assets"]["landcover"]["classification:classes"][0]["value"] == 10
    again = subprocess.run([sys.executable, "-m", "lpqlc.cli", "run", "--config", str(config)], capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0 and "lpqlc-landcover: 8 items (0 new, 0 updated, 8 unchanged)" in again.stdout


class _KillOnce:
    """Kills its worker's process (as an OOM kill or a lost node would) when the first task whose key
    holds ``match`` starts executing, once per ``marker`` file; the nanny starts a fresh worker."""

    name = "kill-once"

    def __init__(self, marker: str, match: str):
        self.marker, self.match = marker, match

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        import os

        if finish == "executing" and self.match in str(key) and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


@pytest.mark.stack
def test_losing_a_worker_mid_run_changes_no_output(published: Published, s3_archive: SampleArchive, stack: StackState,
                                                   tmp_path: Path) -> None:  # fmt: skip
    from distributed.diagnostics.plugin import WorkerPlugin

    from lpqlc.cluster import open_client

    plugin = type("KillOnce", (_KillOnce, WorkerPlugin), {})(str(tmp_path / "killed"), "_write_tile")
    cfg = small_config(stac_api=stack.stac_api, storage=f"s3://{stack.bucket}/worker-loss", endpoint_url=stack.s3_endpoint,
                       **SCIENCE)  # fmt: skip
    with open_client(cfg.cluster) as client:
        # the workers' malloc: the nanny's trim threshold, and our mmap threshold (lpqlc.podenv.MALLOC_ENV)
        envs = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")})
        trim = str(dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"])
        assert envs and all(e == {"MALLOC_TRIM_THRESHOLD_": trim, **MALLOC_ENV} for e in envs.values())
        client.register_plugin(plugin)
        summary = run_pipeline(cfg, model=published.model, client=client)
    assert (tmp_path / "killed").exists() and not summary.failures  # a worker died during classification

    def checksums(root: str, endpoint: str | None) -> dict[str, str]:
        return {i["id"]: a["file:checksum"] for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion")
                for i in list_items(root, cid, endpoint) for a in i["assets"].values()}  # fmt: skip

    # the same pixels as the undisturbed run on local files (the archive's S3 copy, found through the STAC API)
    assert checksums(cfg.publish_url, stack.s3_endpoint) == checksums(str(published.root), None)


@pytest.mark.stack
def test_restarting_the_s3_server_mid_run_the_run_completes(published: Published, s3_archive: SampleArchive,
                                                            stack: StackState, tmp_path: Path) -> None:  # fmt: skip
    import time

    from lpqlc.stack.local import LocalStack
    from lpqlc.storage import exists

    prefix = f"s3://{stack.bucket}/restart"
    cfg = small_config(stac_api=stack.stac_api, storage=prefix, endpoint_url=stack.s3_endpoint, **SCIENCE)
    doc = json.loads(cfg.model_dump_json())
    doc["model"] = {"checkpoint": published.model}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(doc))
    proc = subprocess.Popen([sys.executable, "-m", "lpqlc.cli", "run", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    # once the composites are on S3, and before anything is classified, the S3 server goes away for 3 s
    while proc.poll() is None and not exists(f"{prefix}/composites/2022Q1/composite.json", stack.s3_endpoint):
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the restart"
    old_pid = stack.s3_pid
    assert LocalStack(stack.dir).restart_s3(downtime=3.0).s3_pid != old_pid  # a new server process
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    assert "failures: 0" in stdout and "lpqlc-landcover: 8 items (8 new" in stdout

    def checksums(items: list[dict[str, Any]]) -> dict[str, str]:
        return {i["id"]: a["file:checksum"] for i in items for a in i["assets"].values()}

    from lpqlc.publish.catalog import list_items as listed

    for cid in ("lpqlc-landcover", "lpqlc-landcover-confidence", "lpqlc-erosion"):
        assert checksums(listed(f"{prefix}/stac", cid, stack.s3_endpoint)) == checksums(list_items(str(published.root), cid))
