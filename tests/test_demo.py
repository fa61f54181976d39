"""The README's main job, run as a user would, on a short period."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import rasterio
from PIL import Image


def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, "-m", "lpqlc.cli", "demo", "--out", str(out), "--start", "2015Q3", "--end", "2016Q3",
         "--quarters", "2015Q3,2016Q3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    catalog = out / "archive" / "catalog.json"
    assert f"static catalog: {catalog}" in res.stdout
    n_items = sum(1 for _ in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True))
    assert n_items > 20
    pngs = sorted((out / "composites").glob("*/quicklook.png"))
    # the previewed quarters, plus the rest of 2016 that the erosion stage composited for its FVC
    assert [p.parent.name for p in pngs] == ["2015Q3", "2016Q1", "2016Q2", "2016Q3"]
    for q, res_m in (("2015Q3", 30.0), ("2016Q3", 10.0)):
        tif = next((out / "composites" / q).glob("*/red.tif"))
        with rasterio.open(tif) as src:
            assert src.res == (res_m, res_m) and np.isfinite(src.read(1)).mean() > 0.1  # 2016Q3: S2A only, cloudy
        assert (out / "composites" / q / "norm_stats.json").exists()
    assert (out / "erosion" / "2016Q3").is_dir() and (out / "erosion" / "summary.csv").exists()
    assert "erosion summary:" in res.stdout and (out / "erosion" / "plots" / "map_2016Q3.png").exists()
    with Image.open(pngs[-1]) as img:
        assert img.width > 200 and len(np.unique(np.asarray(img.convert("L")))) > 50  # a picture, not a blank
    bad = subprocess.run(
        [sys.executable, "-m", "lpqlc.cli", "demo", "--out", str(out), "--start", "2015Q3", "--end", "2016Q3",
         "--quarters", "2020Q1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "2020Q1 lie outside" in bad.stderr
