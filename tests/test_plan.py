"""`lpqlc plan`: the numbers of the plan agree with the composite run that follows."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pystac
import yaml
from typer.testing import CliRunner

from lpqlc.cli import app
from lpqlc.composite.run import run_composite
from lpqlc.config import load_config
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive

from .conftest import SMALL, small_bbox

S2_Q = Quarter(2022, 1)


def test_plan_matches_the_run_that_follows(small_archive: SampleArchive, tmp_path: Path) -> None:
    doc = {
        "name": "small", "aoi": {"name": "small", "bbox": list(small_bbox())},
        "period": {"start": str(SMALL.start), "end": str(SMALL.end)},
        "grid": {"tile_size": 128, "chunk_size": 64},
        "sources": {"catalog": small_archive.catalog, "max_cloud_cover": 100},
        "storage": {"url": str(tmp_path / "out")},
    }  # fmt: skip
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(doc))
    args = ["plan", "--config", str(config), "--quarters", f"{SMALL.start}:{S2_Q}", "--json", "--graphs"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    plans = {p["quarter"]: p for p in json.loads(res.stdout)}
    assert list(plans) == [str(SMALL.start), str(S2_Q)]
    assert {p["sensor"] for p in plans.values()} == {"sentinel2"}
    plan = plans[str(S2_Q)]
    run = run_composite(load_config(config), S2_Q, str(tmp_path / "comp"))
    summary = json.loads((Path(run.prefix) / "composite.json").read_text())
    assert plan["tiles"] == len(run.tiles) > 1 and plan["items"] == len(summary["items"])
    per_tile = list(summary["tile_items"].values())
    slices = list(summary["tile_slices"].values())
    assert plan["items_per_tile"] == [min(per_tile), statistics.median(per_tile), max(per_tile)]
    assert plan["slices_per_tile"][0] == min(slices) and plan["slices_per_tile"][2] == max(slices)
    # one unit (Dask task) per tile on the client; --graphs counts the tasks each unit runs inside its worker
    assert plan["tasks"]["composite units"] == len(run.tiles)
    assert plan["tasks"]["composite graph tasks (in workers)"] > len(run.tiles)
    # output bytes: the uncompressed layers of every tile the run wrote
    pixels = sum(rasterio_pixels(Path(run.prefix) / t / "red.tif") for t in run.tiles)
    assert plan["output_bytes"] == pixels * (4 * 7 + 2)
    # input bytes: the items give no file:size, so proj:shape × dtype, each item counted at most once overall
    whole = 0
    for i in summary["items"]:
        item = pystac.Item.from_file(str(Path(small_archive.root) / "sentinel-2-l2a" / i / f"{i}.json"))
        whole += sum(math.prod(a.extra_fields["proj:shape"]) * (1 if k == "scl" else 2)
                     for k, a in item.assets.items() if k in ("blue", "green", "red", "nir", "swir16", "scl"))  # fmt: skip
    assert 0 < plan["input_bytes"] <= whole
    text = CliRunner().invoke(app, ["plan", "--config", str(config), "--quarters", str(S2_Q)])
    assert text.exit_code == 0 and "items per tile" in text.stdout and "ms per tile" in text.stdout
    assert "in workers" not in text.stdout and "graph built and run on the worker" in text.stdout


def rasterio_pixels(path: Path) -> int:
    import rasterio

    with rasterio.open(path) as src:
        return int(src.width * src.height)
