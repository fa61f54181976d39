"""Refinement during an update reads only the raw tiles of the window it redoes, not every raw tile of
the context (the published quarters of the era)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpqlc.classify import temporal_mode_numpy
from tests.conftest import small_config


def test_refinement_opens_only_the_tiles_of_its_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lpqlc.classify.run as run
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid
    from lpqlc.quarter import Quarter
    from lpqlc.sources.rasters import load_files

    cfg = small_config(str(tmp_path / "unused-catalog.json"), storage=str(tmp_path / "store"))
    grid = OutputGrid.from_config(cfg)
    qs = [Quarter(2017, 1) + i for i in range(8)]  # one era (10 m): 2017Q1 … 2018Q4
    gbox = grid.geobox(qs[0])
    rng = np.random.default_rng(5)
    labels = {q: rng.choice(np.asarray([10, 30, 40], np.uint8), size=gbox.shape) for q in qs}
    out = tmp_path / "lc"
    colours = dict(cfg.science.landcover.colours)
    n_tiles = 0
    for q, arr in labels.items():
        tiles = grid.tiles(q)
        n_tiles = 0
        for index, tgbox in grid.iter_tiles(q):
            ys, xs = tiles.roi[index]
            run._write_tile(arr[None, ys, xs], ["class"], tgbox, str(out / "raw" / str(q) / tile_id(index)), None, colours)
            n_tiles += 1
    assert n_tiles > 1

    opened: list[str] = []

    def counting(urls: list[str], *args: Any, **kwargs: Any) -> Any:  # the real loader, its files counted
        opened.extend(urls)
        return load_files(urls, *args, **kwargs)

    monkeypatch.setattr(run, "load_files", counting)
    write = [qs[5]]  # 2018Q2: a 5-quarter window 2017Q4 … 2018Q4
    assert run.refine_quarters(cfg, str(out), write, qs) == write
    seen = sorted({u.split("/raw/")[1].split("/")[0] for u in opened})
    assert seen == [str(q) for q in qs[3:8]], seen
    assert len(opened) == 5 * n_tiles  # each tile of the window once, none of the 3 quarters before it

    got = load_files([str(out / "refined" / str(qs[5]) / tile_id(i) / "class.tif") for i, _ in grid.iter_tiles(qs[5])],
                     gbox, name="class").values  # fmt: skip
    want = temporal_mode_numpy(np.stack([labels[q] for q in qs]))[5]  # the whole series: same result
    assert np.array_equal(got, want)
    assert not (out / "refined" / str(qs[4])).exists()
