"""Incremental updates: what one new quarter costs as the archive grows, and what it saves.

``--mode catalog`` (default; deliverable 7 of issue 16): the publish side against the real SeaweedFS
server (started here, as the tests do), on synthetic published archives of 16, 32, 64 and 100
quarters (2 × 2 tiles, the three quarterly products; items made by the real item builder, COGs real
and small). The measured step is what ``lpqlc update`` does after imagery for one new quarter lands:
publish the new quarter's items, republish the changed items of the refined window (the previous
quarter's land cover and erosion), refresh the catalog for those outcomes. Counted: wall time, S3
requests and bytes read (every S3 call of the process, kerchunk's COG scans included: a counting hook
on aiobotocore). Baseline, same archive, same run: the full catalog rebuild every update did before
(``refresh_catalog`` without outcomes: list and read every item, scan every COG, rewrite every index).
Then the datacube: open time and bytes downloaded to open one year vs the whole series.

``--mode datacube`` (deliverable 2): the per-year kerchunk JSON references we publish against one
kerchunk parquet reference store of the whole series (``kerchunk.df.refs_to_dataframe``, opened lazily
through fsspec's ``reference://`` filesystem), built from the same COG scans, on archives of 16 and 100
quarters: open time, requests and bytes downloaded for one year and for all years, then the same for
a first read (one pixel per time step: every chunk reference of the selection is needed, the COG bytes
read are the same for both formats).

``--mode pipeline``: ``lpqlc update`` of one new quarter against a full ``lpqlc run`` of the whole
period on the seeded sample archive (the earlier benchmark; docs/performance.md).

    python benchmarks/incremental.py [--mode catalog] [--quarters 16,32,64,100]
    python benchmarks/incremental.py --mode datacube [--quarters 16,100]
    python benchmarks/incremental.py --mode pipeline [--start 2020Q1] [--end 2021Q4] [--size 384]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Counter:
    """S3 requests and bytes read by this process (a hook on aiobotocore's API call)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_read = 0
        self.ops: dict[str, int] = {}

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        import aiobotocore.client as ac

        original = ac.AioBaseClient._make_api_call
        me = self

        async def counted(client: Any, operation: str, params: Any) -> Any:
            out = await original(client, operation, params)
            me.requests += 1
            me.ops[operation] = me.ops.get(operation, 0) + 1
            if operation == "GetObject":
                me.bytes_read += int(out.get("ContentLength") or 0)
            return out

        ac.AioBaseClient._make_api_call = counted  # type: ignore[method-assign]
        try:
            yield self
        finally:
            ac.AioBaseClient._make_api_call = original  # type: ignore[method-assign]


def _config(bucket: str, prefix: str, endpoint: str, first: str, last: str) -> Any:
    from lpqlc.config import config_from_dict

    return config_from_dict({
        "name": "bench", "aoi": {"name": "bench", "bbox": [109.0, 36.0, 109.008, 36.008]},
        "period": {"start": first, "end": last},
        "grid": {"tile_size": 128, "chunk_size": 64, "resolutions": [{"start": "2000Q1", "resolution": 10.0}]},
        "sources": {"catalog": "/nonexistent/catalog.json"},
        "storage": {"url": f"s3://{bucket}/{prefix}", "endpoint_url": endpoint},
    })  # fmt: skip


PRODUCTS = {"landcover": "landcover", "landcover-confidence": "confidence", "erosion": "erosion"}


def _blob(gbox: Any, asset: str, seed: int) -> bytes:
    import numpy as np

    from lpqlc.publish.cog import cog_bytes

    rng = np.random.default_rng(seed)
    if asset == "landcover":
        data = rng.choice(np.array([10, 20, 30, 40, 50, 60, 80, 90], "uint8"), size=gbox.shape)
        return cog_bytes(data, gbox.affine, gbox.crs.to_wkt(), nodata=0, overview_resampling="mode", blocksize=64)
    data = rng.random(gbox.shape).astype("float32")
    return cog_bytes(data, gbox.affine, gbox.crs.to_wkt(), nodata=float("nan"), overview_resampling="average", blocksize=64)


def _maker(cfg: Any, key: str, q: Any, tile: str, gbox: Any, inputs: list[str]) -> Any:
    from lpqlc.publish.collections import collection_id, item_assets
    from lpqlc.publish.items import Period, build_item

    def make(version: int, assets: Any, created: datetime, updated: datetime) -> dict[str, Any]:
        return build_item(collection=collection_id(cfg, key), period=Period.of(q), tile=tile, gbox=gbox, assets=assets,
                          item_assets=item_assets(cfg, key), version=version, created=created, updated=updated,
                          lineage=f"synthetic {key} {q}", inputs=inputs, software={"lpqlc": "bench"})  # fmt: skip

    return make


def _seed_archive(cfg: Any, quarters: list[Any]) -> None:
    """Write ``quarters`` of published items straight to S3 (bulk PUTs: setup, not measured)."""
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid
    from lpqlc.publish.catalog import _item_links, _lineage_link, item_url, lineage_document, to_json
    from lpqlc.publish.collections import collection_id
    from lpqlc.publish.items import Period, cog_info, item_id

    fs = cfg.store.filesystem(cfg.publish_url)
    root = cfg.publish_url.rstrip("/")
    tiles = list(OutputGrid.from_config(cfg).iter_tiles(quarters[0]))
    now = datetime.now(UTC)
    blobs = {(k, t): _blob(g, a, hash((k, t)) % 1000) for k, a in PRODUCTS.items() for t, g in tiles}
    infos = {kt: cog_info(b, str(kt)) for kt, b in blobs.items()}
    batch: dict[str, bytes] = {}
    for q in quarters:
        for key, asset in PRODUCTS.items():
            cid = collection_id(cfg, key)
            for index, gbox in tiles:
                t = tile_id(index)
                iid = item_id(cid, Period.of(q), t)
                inputs = [f"S2_{q}_{i:04d}" for i in range(40)]
                doc = _maker(cfg, key, q, t, gbox, inputs)(1, {asset: (f"./v1/{asset}.tif", infos[(key, index)])}, now, now)
                url = item_url(root, cid, iid)
                folder = url.rsplit("/", 1)[0]
                doc["links"] = _item_links(cid, iid) + [_lineage_link("./v1/lineage.json")]
                batch[f"{folder}/v1/{asset}.tif"] = blobs[(key, index)]
                batch[f"{folder}/v1/lineage.json"] = to_json(lineage_document(doc, inputs))
                batch[url] = to_json(doc)
    fs.pipe({k.removeprefix("s3://"): v for k, v in batch.items()})


def _publish_step(cfg: Any, new_q: Any, prev_q: Any) -> list[Any]:
    """What ``lpqlc update`` publishes for one new quarter: its items, and the refined window's changes."""
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid
    from lpqlc.publish.catalog import publish_item
    from lpqlc.publish.collections import collection_id
    from lpqlc.publish.items import Period, item_id

    root = cfg.publish_url.rstrip("/")
    outcomes = []
    tiles = list(OutputGrid.from_config(cfg).iter_tiles(new_q))
    for q, keys, seed in ((new_q, PRODUCTS, 7), (prev_q, ("landcover", "erosion"), 8)):  # new quarter; refined window
        for key in keys:
            cid = collection_id(cfg, key)
            for index, gbox in tiles:
                t = tile_id(index)
                make = _maker(cfg, key, q, t, gbox, [f"S2_{q}_{i:04d}" for i in range(41)])
                blob = _blob(gbox, PRODUCTS[key], seed)
                outcomes.append(publish_item(root, cid, item_id(cid, Period.of(q), t), {PRODUCTS[key]: blob}, make,
                                             inputs=[f"S2_{q}_{i:04d}" for i in range(41)], store=cfg.store))  # fmt: skip
    return outcomes


def _start_stack() -> tuple[Any, Path, Any]:
    """The local SeaweedFS + STAC API servers (as the tests start them), their variables in the env."""
    from lpqlc.stack import LocalStack

    folder = Path(tempfile.mkdtemp(prefix="lpqlc-bench-stack-"))
    os.chmod(folder, 0o755)
    local = LocalStack(folder)
    state = local.up(bucket="lpqlc-bench")
    os.environ.update(state.env())
    return local, folder, state


def _stop_stack(local: Any, folder: Path) -> None:
    local.down(purge=True)
    shutil.rmtree(folder, ignore_errors=True)


def catalog_main(args: argparse.Namespace) -> None:
    """``--mode catalog``: see the module doc."""
    from lpqlc.publish.datacube import open_datacube
    from lpqlc.publish.refresh import refresh_catalog
    from lpqlc.quarter import Quarter

    sizes = [int(n) for n in args.quarters.split(",")]
    local, folder, state = _start_stack()
    rows = []
    try:
        for n in sizes:
            first = Quarter(2000, 1)
            quarters = [first + i for i in range(n)]
            new_q = quarters[-1] + 1
            cfg = _config(state.bucket, f"bench-{n}", state.s3_endpoint, str(first), str(new_q))
            t0 = time.perf_counter()
            _seed_archive(cfg, quarters)
            setup = time.perf_counter() - t0
            b = Counter()  # baseline: the full rebuild every update did before (it also makes the catalog)
            with b.counting():
                t0 = time.perf_counter()
                refresh_catalog(cfg, tuple(PRODUCTS))
                base_wall = time.perf_counter() - t0
            p = Counter()  # publishing the new quarter and the window: the same cost either way
            with p.counting():
                t0 = time.perf_counter()
                outcomes = _publish_step(cfg, new_q, quarters[-1])
                pub_wall = time.perf_counter() - t0
            c = Counter()
            with c.counting():
                t0 = time.perf_counter()
                idx = refresh_catalog(cfg, tuple(PRODUCTS), outcomes=outcomes)
                wall = time.perf_counter() - t0
            cube = f"{cfg.publish_url}/lpqlc-landcover/datacube-10m.json"
            opened = {}
            for label, years in (("1 year", (new_q.year, new_q.year)), ("all years", None)):
                o = Counter()
                with o.counting():
                    t0 = time.perf_counter()
                    ds = open_datacube(cube, cfg.store, years=years)
                    opened[label] = (time.perf_counter() - t0, o.bytes_read, o.requests, ds.sizes["time"])
            rows.append((n, wall, c, pub_wall, p))
            print(f"{n:3d} quarters (+1 new): seed {setup:.1f} s | publish step {pub_wall:.2f} s, {p.requests} requests, "
                  f"{p.bytes_read / 1e3:.1f} kB read | catalog refresh, ours (incremental): {wall:.2f} s, {c.requests} "
                  f"requests, {c.bytes_read / 1e3:.1f} kB read, {len(idx.written)} documents written | baseline (full "
                  f"rebuild): {base_wall:.2f} s, {b.requests} requests, {b.bytes_read / 1e3:.1f} kB read", flush=True)  # fmt: skip
            print(f"    ratio ours/baseline, catalog refresh: time {wall / base_wall:.3f}, requests {c.requests / b.requests:.3f}, "
                  f"bytes {c.bytes_read / max(1, b.bytes_read):.3f}; whole update step (publish + refresh): requests "
                  f"{(p.requests + c.requests) / (p.requests + b.requests):.3f}, bytes "
                  f"{(p.bytes_read + c.bytes_read) / max(1, p.bytes_read + b.bytes_read):.3f}", flush=True)  # fmt: skip
            for label, (t, nbytes, reqs, steps) in opened.items():
                print(f"    datacube open, {label}: {t:.2f} s, {reqs} requests, {nbytes / 1e3:.1f} kB downloaded, {steps} time steps",
                      flush=True)  # fmt: skip
    finally:
        _stop_stack(local, folder)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs: "
          "absolute times are disturbed, request and byte counts are exact)")  # fmt: skip
    r0 = rows[0]
    for n, wall, c, pub_wall, p in rows:
        print(f"update step (publish + incremental refresh) at {n} quarters / at {r0[0]}: time "
              f"{(wall + pub_wall) / (r0[1] + r0[3]):.2f}, requests {(c.requests + p.requests) / (r0[2].requests + r0[4].requests):.2f}, "
              f"bytes read {(c.bytes_read + p.bytes_read) / max(1, r0[2].bytes_read + r0[4].bytes_read):.2f}")  # fmt: skip


def _parquet_refs(cfg: Any, cid: str, res: float, record_size: int) -> str:
    """All years' references of ``cid`` at ``res`` as one kerchunk parquet store beside the per-year JSON,
    built from the COG scans the catalog refresh cached (``datacube/<year>-<res>m.scans.json``)."""
    from kerchunk.df import refs_to_dataframe

    from lpqlc.publish.datacube import build_references

    store = cfg.store
    base = f"{cfg.publish_url.rstrip('/')}/{cid}"
    items: list[dict[str, Any]] = []
    scans: dict[tuple[str, str], Any] = {}
    for url in store.list_files(f"{base}/datacube", f"*-{res:g}m.scans.json"):
        for iid, entry in json.loads(store.read_bytes(url)).items():
            items.append(entry["item"])
            scans.update({(iid, a): sc for a, sc in entry["scans"].items()})
    assets = sorted({a for _, a in scans})
    refs = build_references(sorted(items, key=lambda i: i["id"]), scans, assets, title=f"{cid} at {res:g} m")
    url = f"{base}/datacube-{res:g}m.parq"
    refs_to_dataframe(refs, url, storage_options=store.storage_options(url), record_size=record_size)
    return url


def _open_parquet(url: str, store: Any, years: tuple[int, int] | None) -> Any:
    """The parquet reference store as a lazy dataset, cut to ``years``: fsspec loads reference records
    only when a chunk of theirs is read."""
    import xarray as xr

    from lpqlc.publish.datacube import register_codecs

    register_codecs()
    opts = store.storage_options(url)
    ds = xr.open_dataset("reference://", engine="zarr", chunks={}, mask_and_scale=False, backend_kwargs={
        "consolidated": False,
        "storage_options": {"fo": url, "target_protocol": "s3", "target_options": opts, "remote_protocol": "s3",
                            "remote_options": {**opts, "asynchronous": True}, "asynchronous": True, "lazy": True},
    })  # fmt: skip
    if years is not None:
        ds = ds.sel(time=slice(f"{years[0]}-01-01", f"{years[1]}-12-31"))
    return ds


def datacube_main(args: argparse.Namespace) -> None:
    """``--mode datacube``: see the module doc."""
    from lpqlc.publish.datacube import open_datacube
    from lpqlc.publish.refresh import refresh_catalog
    from lpqlc.quarter import Quarter

    sizes = [int(n) for n in args.quarters.split(",")]
    local, folder, state = _start_stack()
    try:
        for n in sizes:
            first = Quarter(2000, 1)
            quarters = [first + i for i in range(n)]
            cfg = _config(state.bucket, f"cube-{n}", state.s3_endpoint, str(first), str(quarters[-1]))
            _seed_archive(cfg, quarters)
            refresh_catalog(cfg, ("landcover",))
            parquet = _parquet_refs(cfg, "lpqlc-landcover", 10.0, args.record_size)
            index = f"{cfg.publish_url}/lpqlc-landcover/datacube-10m.json"
            last = quarters[-1].year
            for label, years in (("1 year", (last, last)), ("all years", None)):
                for fmt in ("per-year JSON", "parquet"):
                    o, r = Counter(), Counter()
                    with o.counting():
                        t0 = time.perf_counter()
                        ds = (open_datacube(index, cfg.store, years=years) if fmt == "per-year JSON"
                              else _open_parquet(parquet, cfg.store, years))  # fmt: skip
                        t_open = time.perf_counter() - t0
                    with r.counting():
                        t0 = time.perf_counter()
                        px = ds["landcover"][:, 0, 0].values
                        t_read = time.perf_counter() - t0
                    print(f"{n:3d} quarters, {label:9s}, {fmt:13s}: open {t_open:6.2f} s, {o.requests:3d} requests, "
                          f"{o.bytes_read / 1e3:7.1f} kB | first read of {px.size:3d} time steps {t_read:6.2f} s, "
                          f"{r.requests:3d} requests, {r.bytes_read / 1e3:7.1f} kB", flush=True)  # fmt: skip
    finally:
        _stop_stack(local, folder)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs: "
          "absolute times are disturbed, request and byte counts are exact)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("catalog", "datacube", "pipeline"), default="catalog")
    ap.add_argument("--record-size", type=int, default=10_000, help="parquet references per record file")
    ap.add_argument("--quarters", default="16,32,64,100")
    ap.add_argument("--start", default="2020Q1")
    ap.add_argument("--end", default="2021Q4")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    {"catalog": catalog_main, "datacube": datacube_main, "pipeline": pipeline_main}[args.mode](args)


def _model(path: Path) -> str:
    import torch

    from lpqlc.composite.normalise import NormStats
    from lpqlc.model.checkpoint import Checkpoint, save_checkpoint
    from lpqlc.model.hrformer import HRFormer, hrformer_config

    bands = ["blue", "green", "red", "nir", "swir1"]
    torch.manual_seed(0)
    norm = NormStats(mean={b: 0.1 for b in bands}, std={b: 0.05 for b in bands}, n={b: 100 for b in bands})
    save_checkpoint(Checkpoint(model=HRFormer(hrformer_config("small")), classes=[10, 20, 30, 40, 50, 60, 80, 90],
                               bands=bands, norm=norm), str(path))  # fmt: skip
    return str(path)


def _withhold(catalog: Path, collection: str, quarter: str) -> list[dict]:
    """Drop ``collection``'s item links in ``quarter`` from the static catalog; return them."""
    from lpqlc.quarter import Quarter

    q = Quarter.parse(quarter)
    f = catalog.parent / collection / "collection.json"
    doc = json.loads(f.read_text())
    out, kept = [], []
    for link in doc["links"]:
        if link["rel"] == "item":
            item = json.loads((f.parent / link["href"]).read_text())
            when = item["properties"].get("datetime") or item["properties"]["start_datetime"]
            if Quarter.of(datetime.fromisoformat(when.replace("Z", "+00:00"))) == q:
                out.append(link)
                continue
        kept.append(link)
    f.write_text(json.dumps({**doc, "links": kept}))
    return out


def pipeline_main(args: argparse.Namespace) -> None:
    """``--mode pipeline``: update vs full rerun on the sample archive (see the module doc)."""
    import torch

    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.pipeline import run_pipeline
    from lpqlc.quarter import Quarter
    from lpqlc.sample.archive import SampleSpec, generate
    from lpqlc.update import plan_update, run_update

    out = Path(args.out or tempfile.mkdtemp(prefix="lpqlc-incremental-"))
    spec = SampleSpec(seed=42, size=args.size, start=Quarter.parse(args.start), end=Quarter.parse(args.end))
    archive = generate(str(out / "archive"), spec)
    catalog = Path(archive.catalog)
    last = str(spec.end)
    model = _model(out / "model.pt")
    base = load_config(Path(__file__).resolve().parent.parent / "pipelines" / "sample.yaml")

    def config(storage: Path):  # type: ignore[no-untyped-def]
        return base.model_copy(update={
            "sources": base.sources.model_copy(update={"catalog": str(catalog), "stac_api": None}),
            "storage": base.storage.model_copy(update={"url": str(storage)}),
            "period": base.period.model_copy(update={"start": spec.start, "end": spec.end}),
        })  # fmt: skip

    held = {c: _withhold(catalog, c, last) for c in ("sentinel-2-l2a", "landsat-c2-l2")}
    inc = config(out / "incremental")
    with open_client(inc.cluster) as client:
        t0 = time.perf_counter()
        run_pipeline(inc, model=model, client=client)
        setup = time.perf_counter() - t0
        for c, links in held.items():  # the last quarter's imagery lands
            f = catalog.parent / c / "collection.json"
            doc = json.loads(f.read_text())
            f.write_text(json.dumps({**doc, "links": doc["links"] + links}))
        t0 = time.perf_counter()
        plan = plan_update(inc)
        summary = run_update(inc, plan, model=model, client=client)
        t_update = time.perf_counter() - t0
        assert [str(q) for q in plan.process] == [last], plan.lines()
        full = config(out / "full")
        shutil.rmtree(out / "full", ignore_errors=True)
        t0 = time.perf_counter()
        run_pipeline(full, model=model, client=client)
        t_full = time.perf_counter() - t0
    n = len(spec.quarters)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"local Dask {inc.cluster.n_workers}×{inc.cluster.threads_per_worker}")  # fmt: skip
    print(f"sample archive {spec.start}–{spec.end} ({n} quarters), world {args.size}² px at 10 m")
    print(f"setup: publish {n - 1} quarters: {setup:.1f} s")
    print(f"update: 1 new quarter ({last}), refine {', '.join(map(str, plan.refine))}, erosion {plan.years}: "
          f"{t_update:.1f} s  [{'; '.join(summary.lines()[2:6])}]")  # fmt: skip
    print(f"full rerun of {n} quarters: {t_full:.1f} s")
    print(f"ratio update / full rerun: {t_update / t_full:.3f}")



if __name__ == "__main__":
    main()
