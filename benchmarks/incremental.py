"""The cost of an incremental quarterly update against a full rerun of the same period.

Input: the offline sample archive (seeded) over ``--start``…``--end`` and a `small` HRFormer checkpoint
(random weights: cost does not depend on them). Setup (not timed): the period is published with the
last quarter's imagery withheld from the source catalog. Then the last quarter's items land and

- ours: ``lpqlc update`` (plan from the published catalog, composite + classify the new quarter,
  re-refine its window, recompute its year's erosion, republish what changed);
- baseline: a full ``lpqlc run`` of the whole period into empty storage, as a pipeline without
  incremental state would have to do.

Both on the same local Dask cluster. Prints both times and the ratio update / full rerun.

    python benchmarks/incremental.py [--start 2020Q1] [--end 2021Q4] [--size 384] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch


def _model(path: Path) -> str:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2020Q1")
    ap.add_argument("--end", default="2021Q4")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

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
