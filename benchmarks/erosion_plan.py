"""Client CPU to plan one erosion tile: the tile's graph built on the client (as before) vs the tile task.

Old: ``_quarter_layers`` for each quarter of the tile on the client (~15 odc-stac loads per quarter).
New: the tile's :class:`lpqlc.erosion.tile_task.TileSpec` (the files meeting it), its unit key and one
``dask.delayed`` of :func:`lpqlc.erosion.tile_task.erosion_tile`. Both after the run's footprints are
read (once per run). Best of three passes, CPU seconds of this process.

    python benchmarks/erosion_plan.py ARCHIVE OUT
      ARCHIVE: a sample archive of 2021 (``lpqlc sample-archive --start 2021Q1 --end 2021Q4``)
      OUT: the folder of a finished erosion run on it (its composites and static layers are reused)
"""

import platform
import sys
import time
from pathlib import Path

import dask

from lpqlc.erosion.inputs import r_quarters
from lpqlc.erosion.run import (
    Footprints,
    _fvc_urls,
    _input_key,
    _quarter_layers,
    fvc_neighbours,
    landcover_neighbours,
    landcover_urls,
)
from lpqlc.erosion.static import static_layers
from lpqlc.erosion.tile_task import erosion_tile, tile_spec
from lpqlc.grid import OutputGrid
from lpqlc.quarter import quarter_range
from lpqlc.units import unit_key
from tests.conftest import small_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.conftest: the sample configuration
Q = quarter_range("2021Q1", "2021Q4")
arch = Path(sys.argv[1])
out = sys.argv[2]
cfg = small_config(str(arch / "catalog.json"), storage=out)
lc = str(arch / "truth" / "landcover" / "{quarter}.tif")
grid = OutputGrid.from_config(cfg)
static = static_layers(cfg, out, grid)
comp = f"{out}/composites"
own = {q: _fvc_urls(cfg, comp, q, None) for q in Q}
nbs = {q: fvc_neighbours(cfg, comp, q, own) for q in Q}
lcn = {q: landcover_neighbours(lc, q, cfg) for q in Q}
qlc = {q: landcover_urls(lc, q, cfg) for q in Q}
r_all = r_quarters(cfg, [2021])
r_year = r_all.sel(quarter=[str(q) for q in Q])
tiles = list(grid.iter_tiles(Q[0]))
fp = Footprints(cfg.store)
for _, g in tiles:  # the footprints, read once per run
    tile_spec(fp, g, Q, static, qlc, lcn, own, nbs)
def new():
    for i, g in tiles:
        key = unit_key("erosion", "v", [str(q) for q in Q], str(i), [_input_key(qlc[Q[0]], "t", cfg.store)])
        spec = tile_spec(fp, g, Q, static, qlc, lcn, own, nbs)
        dask.delayed(erosion_tile)(cfg, spec, r_year, lc, ("erosion", "quality"), 2021, out, "t", False, [], (1.0,),
                                   None, None, dask_key_name=f"e-{key}")  # fmt: skip
def old():
    for _, g in tiles:
        {str(q): _quarter_layers(cfg, q, g, static, r_all, lc, own[q], nbs[q], lcn[q], fp) for q in Q}
        fp.loads.clear()
best = {}
for name, fn in (("old", old), ("new", new)) * 3:
    t = time.process_time()
    fn()
    d = (time.process_time() - t) / len(tiles)
    best[name] = min(best.get(name, 1e9), d)
print(f"machine: {platform.machine()}, shared 2-CPU machine (CPU time is the robust figure)")
print(f"{len(tiles)} tiles x {len(Q)} quarters: client CPU per tile: graph on the client {best['old']*1e3:.1f} ms, "
      f"tile task {best['new']*1e3:.1f} ms, ratio {best['old']/best['new']:.0f}x (best of 3)")
