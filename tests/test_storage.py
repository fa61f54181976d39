"""The Store: one storage object made from the config — local paths and SeaweedFS S3 through the same
calls, retries of transient failures, its GDAL settings travelling into Dask tasks on other processes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpqlc.errors import ConfigError, StorageError
from lpqlc.storage import RetryPolicy, Store, transient
from tests.conftest import small_config


def _exercise(store: Store, root: str, tmp_path: Path) -> None:
    """The Store's calls against one root (local folder or s3:// prefix)."""
    url = f"{root}/a/b.json"
    assert not store.exists(url) and store.read_versioned(url) is None
    store.write_bytes(url, b"one")
    assert store.exists(url) and store.read_bytes(url) == b"one"
    local = tmp_path / f"src-{uuid.uuid4().hex[:6]}.bin"
    local.write_bytes(b"two")
    store.put_file(local, f"{root}/a/c.bin")
    assert store.list_files(root, "a/*") == [f"{root}/a/b.json", f"{root}/a/c.bin"]  # no temporary key left
    with store.open(f"{root}/a/c.bin") as fh:
        assert fh.read() == b"two"
    # conditional writes: create once, replace only the version read
    lease = f"{root}/lease.json"
    assert store.create_exclusive(lease, b"mine") and not store.create_exclusive(lease, b"theirs")
    got = store.read_versioned(lease)
    assert got is not None and got[0] == b"mine"
    assert store.replace_if_match(lease, b"next", got[1])
    assert not store.replace_if_match(lease, b"stale", got[1])  # the tag read before is outdated now
    assert store.read_bytes(lease) == b"next"
    store.remove(f"{root}/a", recursive=True)
    assert store.list_files(root, "a/*") == []
    with pytest.raises(StorageError, match="b.json"):
        store.read_bytes(url)


def test_store_on_a_local_folder(tmp_path: Path) -> None:
    cfg = small_config(str(tmp_path / "catalog.json"), storage=str(tmp_path / "store"))
    assert cfg.store.storage_options(cfg.storage.url) == {}
    _exercise(cfg.store, str(tmp_path / "store"), tmp_path)


def test_store_from_config_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lpqlc.config import config_from_dict

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    doc = small_config(str(tmp_path / "c.json"), storage="s3://lpqlc-x/run").model_dump(mode="json")
    doc["storage"] = {"url": "s3://lpqlc-x/run", "endpoint_url": "https://s3.example.org:9000",
                      "s3_options": {"client_kwargs": {"region_name": "cn-north-1"}},
                      "gdal": {"GDAL_HTTP_MAX_RETRY": "5"}, "retry_seconds": 12}  # fmt: skip
    cfg = config_from_dict(doc)
    store = cfg.store
    assert store is config_from_dict(doc).store  # made once per settings
    assert store.retry == RetryPolicy(seconds=12)
    assert store.gdal_env() == {"AWS_S3_ENDPOINT": "s3.example.org:9000", "AWS_VIRTUAL_HOSTING": "FALSE",
                                "AWS_HTTPS": "YES", "GDAL_HTTP_MAX_RETRY": "5"}  # fmt: skip
    assert store.storage_options("s3://lpqlc-x/run") == {"client_kwargs": {"region_name": "cn-north-1"},
                                                        "endpoint_url": "https://s3.example.org:9000"}  # fmt: skip
    # credentials never in the config, not even inside the s3fs options
    doc["storage"]["s3_options"] = {"secret": "x"}
    with pytest.raises(ConfigError, match="credentials do not belong"):
        config_from_dict(doc)
    # without an endpoint in the config: the environment's, resolved when the Store is made
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    doc["storage"] = {"url": "s3://lpqlc-x/run"}
    assert config_from_dict(doc).store.endpoint_url == "http://127.0.0.1:1"


def test_retry_policy_retries_transient_failures_only() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("Connection reset by peer")
        return "done"

    policy = RetryPolicy(seconds=5, first_delay=0.01, max_delay=0.02)
    assert policy.run(flaky, "flaky call") == "done" and len(calls) == 3
    missing: list[int] = []

    def gone() -> None:
        missing.append(1)
        raise FileNotFoundError("no such key")

    with pytest.raises(FileNotFoundError):
        policy.run(gone, "missing object")
    assert len(missing) == 1 and not transient(FileNotFoundError()) and transient(TimeoutError())


@pytest.mark.stack
def test_store_on_seaweedfs_and_its_gdal_env_in_dask_tasks(stack: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import rasterio
    from dask.distributed import Client, LocalCluster
    from odc.geo.geobox import GeoBox

    from lpqlc.publish.cog import cog_bytes
    from lpqlc.sources.rasters import load_files

    root = f"s3://{stack.bucket}/store-{uuid.uuid4().hex[:8]}"
    cfg = small_config(str(tmp_path / "catalog.json"), storage=root, endpoint_url=stack.s3_endpoint)
    store = cfg.store
    # the endpoint and the GDAL settings come from the Store alone, not from this process's environment
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_S3_ENDPOINT", "AWS_VIRTUAL_HOSTING", "AWS_HTTPS"):
        monkeypatch.delenv(k, raising=False)
    _exercise(store, root, tmp_path)

    gbox = GeoBox.from_bbox((500000, 4000000, 500640, 4000640), "EPSG:32649", resolution=10)
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    cog = f"{root}/tile.tif"
    store.write_bytes(cog, cog_bytes(data, gbox.transform, "EPSG:32649", nodata=0, blocksize=64))

    def read(s: Store | None, url: str) -> Any:
        env = s.rio_env() if s is not None else rasterio.Env()
        with env, rasterio.open(url) as src:
            return src.read(1)

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        # worker processes start without any S3 endpoint in their environment
        assert client.run(lambda: __import__("os").environ.get("AWS_ENDPOINT_URL")) == {a: None for a in client.run(lambda: 0)}
        assert np.array_equal(client.submit(read, store, cog).result(), data)
        with pytest.raises(Exception, match="amazonaws"):  # without the Store's settings: AWS, not SeaweedFS
            client.submit(read, None, cog).result()
        lazy = load_files([cog], gbox, name="v", chunks=32, store=store)
        assert np.array_equal(client.compute(lazy.data).result(), data)
    now = load_files([cog], gbox, name="v", chunks=None, store=store)  # read here, no Dask graph
    assert isinstance(now.data, np.ndarray) and np.array_equal(now.values, data)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included), made absolute."""
    import ast

    package = ".".join(path.relative_to(Path(__file__).parents[1]).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize(("package", "forbidden"), [("publish", "lpqlc.composite"), ("composite", "lpqlc.publish")])
def test_publish_and_composite_do_not_import_each_other(package: str, forbidden: str) -> None:
    folder = Path(__file__).parents[1] / "lpqlc" / package
    files = sorted(folder.rglob("*.py"))
    assert files
    bad = {str(f.relative_to(folder.parent)): sorted(m for m in _imports(f) if m == forbidden or m.startswith(forbidden + "."))
           for f in files}  # fmt: skip
    assert {f: m for f, m in bad.items() if m} == {}
    # the check sees imports at any depth: the composite's own modules import each other
    assert any(m.startswith("lpqlc.composite.") for m in _imports(Path(__file__).parents[1] / "lpqlc/composite/run.py"))
