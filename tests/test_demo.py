"""The README's main job, run as a user would, on a short period and a short training schedule."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lpqlc.publish.validate import validate_stac

ARGS = ["--start", "2020Q4", "--end", "2021Q4", "--quarters", "2021Q1:2021Q4", "--epochs",
        "contrastive=1,supervised=2,refine=1"]  # fmt: skip


def _lpqlc(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lpqlc.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = _lpqlc("demo", "--out", str(out), *ARGS)
    assert res.returncode == 0, res.stderr[-3000:]
    catalog = out / "store" / "stac" / "catalog.json"
    assert f"published catalog: {catalog}" in res.stdout and "failures: 0" in res.stdout
    for cid, n in (("lpqlc-landcover", 4), ("lpqlc-landcover-confidence", 4), ("lpqlc-erosion", 4), ("lpqlc-erosion-annual", 1)):
        assert f"{cid}: {n} items ({n} new" in res.stdout
        validate_stac(json.loads((out / "store" / "stac" / cid / "collection.json").read_text()))
    # the model was trained on the spot
    assert list(out.glob("model-*/refine.pt")) and (out / "store" / "composites" / "2021Q3" / "quicklook.png").exists()
    # the report: area per class over time, erosion per year, transitions, maps
    area = pd.read_csv(out / "report" / "landcover_area.csv", index_col=0)
    assert list(area.index) == ["2021Q1", "2021Q2", "2021Q3", "2021Q4"] and "Forest" in area.columns
    totals = area.sum(axis=1)  # the AOI less the pixels with no clear observation that quarter
    assert (totals > 0.9 * totals.max()).all() and totals.max() < 16.0
    erosion = pd.read_csv(out / "report" / "erosion_annual.csv", index_col=0)
    assert list(erosion.index) == [2021] and erosion["mean_erosion_t_hm2_a"].iloc[0] > 0
    transitions = pd.read_csv(out / "report" / "transitions.csv", index_col=0)
    assert 0 < transitions.values.sum() <= min(totals.iloc[0], totals.iloc[-1]) + 1e-6
    for png in ("landcover_area.png", "transitions.png", "erosion_annual.png", "maps.png"):
        with Image.open(out / "report" / png) as img:
            assert img.width > 300 and len(np.unique(np.asarray(img.convert("L")))) > 20, png
    md = (out / "report" / "report.md").read_text()
    assert "![maps](maps.png)" in md and "Land-cover area per class" in md
    # the analyses the period allows ran; the others are named as skipped (issue 18)
    assert (out / "store" / "analysis" / "areas.csv").exists() and "analysis skipped: trends:" in res.stdout
    assert "analysis skipped: areas" not in res.stdout and "skipped trends" in md
    assert "analysis skipped: control:" in res.stdout
    # the printed search command finds the first quarter's land-cover items
    line = next(x for x in res.stdout.splitlines() if x.startswith("search it: "))
    cmd = shlex.split(line.removeprefix("search it: "))
    assert cmd[0] == "lpqlc"
    found = _lpqlc(*cmd[1:], timeout=120)
    lines = found.stdout.splitlines()
    assert found.returncode == 0 and len(lines) == 1 and lines[0].startswith("lpqlc-landcover-2021Q1-x000y000 "), found.stdout
    # a second run reuses the archive and the model, and republishes nothing
    again = _lpqlc("demo", "--out", str(out), *ARGS)
    assert again.returncode == 0 and "lpqlc-landcover: 4 items (0 new, 0 updated, 4 unchanged)" in again.stdout
    bad = _lpqlc("demo", "--out", str(out), "--start", "2020Q4", "--end", "2021Q4", "--quarters", "2023Q1", timeout=120)
    assert bad.returncode == 2 and "2023Q1 lie outside" in bad.stderr
