"""Training-data memory: windowed tile draws against loading every quarter of the area.

Baseline: what ``load_training_data`` did before issue 21 — every training quarter's composite of the
whole area computed into one (Q, B, H, W) float32 array. Ours: the tile index (per-tile class
histograms, a Dask reduction) and a batch of draws from lazy composites through ``WindowReader``
(cache off). Both on the same lazy synthetic composites (dask, generated chunk by chunk, so making
them costs no memory), for areas ×1, ×4 and ×16. Peak memory is tracemalloc's (Python + numpy
allocations in this process); times are wall-clock on a shared machine (indicative only).

    python benchmarks/tile_sampling.py [--base 512] [--quarters 8] [--tile 64] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import dask
import dask.array as da
import numpy as np


def _images(n: int, quarters: int, chunk: int) -> tuple[list[da.Array], da.Array]:
    imgs = [da.random.default_rng(q).random((5, n, n), dtype=np.float32, chunks=(5, chunk, chunk)) for q in range(quarters)]
    labels = (da.random.default_rng(99).random((n, n), chunks=chunk) * 8).astype(np.int64)
    return imgs, labels


def _peak(fn: object) -> tuple[float, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, dt


def main() -> None:
    from lpqlc.composite.normalise import NormStats
    from lpqlc.model.data import Sampler, TrainingData
    from lpqlc.model.tiles import TileIndex, WindowReader, select_tiles, tile_histograms
    from lpqlc.quarter import Quarter

    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=int, default=512)
    ap.add_argument("--quarters", type=int, default=8)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    dask.config.set(scheduler="synchronous")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), python {platform.python_version()}")
    print(f"{a.quarters} quarters × 5 bands, {a.tile} px tiles, batch {a.batch}; peak = tracemalloc peak (MiB)")
    print(f"{'area':>12} {'baseline MiB':>13} {'ours MiB':>9} {'ours/baseline':>14} {'baseline s':>11} {'ours s':>7}")
    bands = ["blue", "green", "red", "nir", "swir1"]
    for scale in (1, 2, 4):  # ×1, ×4, ×16 the area
        n = a.base * scale
        imgs, labels = _images(n, a.quarters, 2 * a.tile)

        def baseline(imgs: list[da.Array] = imgs) -> None:
            np.stack([np.asarray(x.compute()) for x in imgs])

        def ours(imgs: list[da.Array] = imgs, labels: da.Array = labels) -> None:
            tiles, by_class = select_tiles(tile_histograms(labels, a.tile, 8), 1800, 0)
            norm = NormStats(mean={b: 0.5 for b in bands}, std={b: 0.3 for b in bands}, n={b: 1 for b in bands})
            norms = [(np.full(5, 0.5, np.float32), np.full(5, 0.3, np.float32))] * a.quarters
            d = TrainingData(quarters=[Quarter(2021, 1)] + [Quarter(2020, 1)] * (a.quarters - 1),
                             reader=WindowReader(imgs, labels, norms, cache_mb=0), labelled=[0], classes=list(range(8)),
                             bands=bands, norm=norm, index=TileIndex(a.tile, tiles, by_class, "bench"))  # fmt: skip
            s = Sampler(d, a.tile, 0)
            s.labelled(a.batch)
            s.unlabelled_batch(a.batch)
            s.pairs(a.batch // 2)

        bm, bt = _peak(baseline)
        om, ot = _peak(ours)
        print(f"{f'{n}² (×{scale * scale})':>12} {bm:>13.1f} {om:>9.1f} {om / bm:>14.3f} {bt:>11.2f} {ot:>7.2f}")


if __name__ == "__main__":
    main()
