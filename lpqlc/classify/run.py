"""The ``lpqlc classify`` job: composites → chunk-wise inference on Dask → raw class and confidence
COGs per quarter → 5-quarter temporal refinement → refined class COGs.

Layout under the output URL::

    raw/<YYYYQn>/<tile>/{class,confidence}.tif     per-quarter prediction (confidence: max probability, %)
    raw/<YYYYQn>/<tile>/probabilities.tif          optional: one band per class, %
    refined/<YYYYQn>/<tile>/class.tif               after the temporal mode filter
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from lpqlc import __version__
from lpqlc.classify.inference import ModelPlugin, classify_array
from lpqlc.classify.temporal import refine_window
from lpqlc.cluster import has_gpu_workers
from lpqlc.cog import cog_bytes
from lpqlc.composite.run import ensure_composites
from lpqlc.config import PipelineConfig
from lpqlc.grid import OutputGrid
from lpqlc.model.checkpoint import checkpoint_from_bytes
from lpqlc.quarter import Quarter
from lpqlc.sources.rasters import load_files
from lpqlc.storage import Store, parse_storage_url, read_bytes, write_bytes
from lpqlc.tiling import composite_layer, default_composites_dir, tile_id
from lpqlc.units import Unit, marker_key, run_units, unit_key

__all__ = ["ClassifyRun", "run_classify", "refine_quarters", "normalised_composite", "predict_quarter"]

log = logging.getLogger(__name__)


@dataclass
class ClassifyRun:
    prefix: str
    quarters: list[Quarter]
    tiles: dict[str, list[str]] = field(default_factory=dict)
    gpu: bool = False


def normalised_composite(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, ck: Any) -> da.Array:
    """Lazy (bands, y, x) float32 composite of a quarter, normalised by the checkpoint's statistics of
    the quarter's sensor era (missing pixels 0), chunked by ``grid.chunk_size``."""
    layers = []
    norm = ck.norm_for(OutputGrid.from_config(cfg).grid.resolution_for(quarter))
    for b in ck.bands:
        x = composite_layer(cfg, comp_dir, quarter, b, chunks=cfg.grid.chunk_size).data
        layers.append((x - np.float32(norm.mean[b])) / np.float32(norm.std[b] or 1.0))
    img = da.stack(layers)
    missing = da.isnan(img).any(axis=0)
    return da.where(missing[None], np.float32(0), img).astype(np.float32)


def predict_quarter(cfg: PipelineConfig, comp_dir: str, quarter: Quarter, ck: Any, model_url: str, *,
                    gpu: bool = False, probabilities: bool = False) -> da.Array:  # fmt: skip
    """Lazy (2 [+ C], y, x) uint8 class/confidence[/probabilities] of a quarter on its era's grid: what
    ``lpqlc classify`` writes and ``lpqlc evaluate`` scores. A quarter of a coarser era than the
    network was trained at (30 m Landsat, model trained on 10 m tiles) is upsampled onto the nested
    grid (k×k repeats), classified there, and each coarse pixel takes its centre fine pixel's result."""
    cc = cfg.science.ccts
    img = normalised_composite(cfg, comp_dir, quarter, ck)
    k = ck.upsample_for(OutputGrid.from_config(cfg).grid.resolution_for(quarter))
    if k > 1:
        img = da.repeat(da.repeat(img, k, axis=1), k, axis=2)
    pred = classify_array(img, url=model_url, store=cfg.store, classes=ck.classes,
                          tile=cc.predict_tile, overlap=cc.predict_overlap, batch=cc.batch_size, gpu=gpu,
                          probabilities=probabilities)  # fmt: skip
    return pred[:, k // 2 :: k, k // 2 :: k] if k > 1 else pred


def _write_tile(block: np.ndarray, names: list[str], gbox: Any, prefix: str, store: Store | None,
                colours: dict[int, str], blocksize: int = 512) -> int:
    crs = gbox.crs.to_wkt()
    if len(block) > len(names):  # class probabilities follow: one multi-band COG, a band per class
        probs = block[len(names):].astype(np.uint8)
        write_bytes(f"{prefix}/probabilities.tif", cog_bytes(probs, gbox.transform, crs, nodata=0, blocksize=blocksize), store)
    for i, name in enumerate(names):
        kw: dict[str, Any] = {"nodata": 0, "overview_resampling": "mode" if name == "class" else "average",
                              "blocksize": blocksize}
        if name == "class":
            kw["colormap"] = colours
        write_bytes(f"{prefix}/{name}.tif", cog_bytes(block[i].astype(np.uint8), gbox.transform, crs, **kw), store)
    return int(block.shape[-1] * block.shape[-2])


def run_classify(cfg: PipelineConfig, model_url: str, quarters: list[Quarter], out: str, *,
                 composites: str | None = None, client: Any = None, probabilities: bool = False,
                 progress: Callable[[str, int, int], None] | None = None, refine: bool = True) -> ClassifyRun:  # fmt: skip
    """Classify ``quarters`` and refine them temporally; writes under ``out`` (see the module doc).
    ``probabilities`` also writes ``raw/<quarter>/<tile>/probabilities.tif`` (a band per class, %);
    ``refine=False`` writes the raw predictions only (see :func:`refine_quarters`)."""
    store = cfg.store
    prefix = parse_storage_url(out, what="--out").url.rstrip("/")
    comp_dir = composites or default_composites_dir(cfg)
    quarters = sorted(quarters)
    ensure_composites(cfg, comp_dir, quarters, client)
    blob = read_bytes(model_url, store)
    ck = checkpoint_from_bytes(blob, model_url)  # metadata (bands, norm, classes); the workers load their own
    model_sum = hashlib.sha256(blob).hexdigest()
    gpu = has_gpu_workers(client)
    if client is not None:
        client.register_plugin(ModelPlugin(model_url, store))
    cc = cfg.science.ccts
    colours = dict(cfg.science.landcover.colours)
    grid = OutputGrid.from_config(cfg)
    run = ClassifyRun(prefix=prefix, quarters=quarters, gpu=gpu)
    units = []
    for q in quarters:
        comp_sum = hashlib.sha256(read_bytes(f"{comp_dir}/{q}/composite.json", store)).hexdigest()
        pred = predict_quarter(cfg, comp_dir, q, ck, model_url, gpu=gpu, probabilities=probabilities)
        tiles = grid.tiles(q)
        run.tiles[str(q)] = []
        for index, tgbox in grid.iter_tiles(q):
            ys, xs = tiles.roi[index]
            folder = f"{prefix}/raw/{q}/{tile_id(index)}"
            key = unit_key("classify", __version__, model_sum, comp_sum, cc.model_dump(mode="json"), probabilities,
                           cfg.grid.model_dump(mode="json"), tile_id(index))  # fmt: skip
            units.append(Unit(dask.delayed(_write_tile, pure=True)(
                pred[:, ys, xs], ["class", "confidence"], tgbox, folder, store, colours, cfg.grid.cog_blocksize), folder, key))  # fmt: skip
            run.tiles[str(q)].append(tile_id(index))
    run_units(units, client, "classify", store=store, progress=progress)
    if refine:
        refine_quarters(cfg, prefix, quarters, quarters, client=client, progress=progress)
    return run


def _mode_of_blocks(x: np.ndarray, axis: tuple[int, int] | None = None) -> np.ndarray:
    if axis is None:  # dask's probe for the output type
        return x
    h, k, w, _ = x.shape
    v = x.transpose(0, 2, 1, 3).reshape(h, w, k * k).astype(np.int32)
    votes = np.where(v > 0, v, -1)
    counts = (votes[..., :, None] == votes[..., None, :]).sum(-1) * (v > 0)
    best = counts.argmax(-1)  # the first most frequent in row order
    return np.take_along_axis(v, best[..., None], -1)[..., 0].astype(x.dtype)


def block_mode(labels: da.Array, k: int) -> da.Array:
    """(y/k, x/k) mode of each k×k block of a (y, x) class raster (0 = nodata does not vote; a block
    without votes is 0; ties go to the class met first in row order). Hand-written: GDAL's ``mode``
    resampling works file by file, so a block straddling two tiles would take one tile's pixels only."""
    h, w = labels.shape
    if h % k or w % k:
        raise ValueError(f"a {h}×{w} raster does not split into {k}×{k} blocks")
    cy, cx = (max(k, c // k * k) for c in labels.chunksize)
    return da.coarsen(_mode_of_blocks, labels.rechunk((cy, cx)), {0: k, 1: k})


def refine_quarters(cfg: PipelineConfig, out: str, write: Sequence[Quarter], context: Sequence[Quarter], *,
                    client: Any = None, progress: Callable[[str, int, int], None] | None = None) -> list[Quarter]:  # fmt: skip
    """Temporal refinement of the quarters ``write`` from the raw classes under ``out/raw`` of the
    quarters ``context`` (which must include ``write``; those within ``temporal_window // 2`` of a
    written quarter are read). The window runs across the sensor switch: on a quarter's own grid, the
    labels of a coarser era (30 m Landsat) are mapped onto the nested finer pixels (nearest: each
    coarse pixel covers an exact block), those of a finer era are aggregated by mode (GDAL's ``mode``,
    nodata not voting); ties in time as :func:`temporal_mode`. Returns what was written."""
    store = cfg.store
    prefix = parse_storage_url(out, what="--out").url.rstrip("/")
    grid = OutputGrid.from_config(cfg)
    colours = dict(cfg.science.landcover.colours)
    window = cfg.science.landcover.temporal_window
    todo = set(write)
    qs = sorted(set(context) | todo)
    eras: dict[float, list[int]] = {}
    for i, q in enumerate(qs):
        if q in todo:
            eras.setdefault(grid.grid.resolution_for(q), []).append(i)
    units = []
    for res, idx in eras.items():
        gbox = grid.geobox(res)
        half = window // 2
        # the quarters some written quarter's window sees: only their raw tiles are opened (on the client,
        # for their metadata) and read; the others of the context are never opened
        needed = {qs[j] for i in idx for j in range(max(0, i - half), min(len(qs), i + half + 1))}

        def layer(q: Quarter, res: float = res, gbox: Any = gbox, needed: set[Quarter] = needed) -> da.Array:
            if q not in needed:  # outside every written quarter's window: a placeholder, never computed into
                return da.zeros(tuple(gbox.shape), np.uint8, chunks=cfg.grid.chunk_size)  # a written tile
            own = grid.grid.resolution_for(q)
            urls = [f"{prefix}/raw/{q}/{tile_id(i)}/class.tif" for i, _ in grid.iter_tiles(q)]
            if own < res:  # finer era: mosaic on its own grid, then the mode of each nested block
                k = round(res / own)
                fine = load_files(urls, grid.geobox(own), name="class", chunks=cfg.grid.chunk_size * k, store=store)
                return block_mode(fine.data, k)
            return load_files(urls, gbox, name="class", chunks=cfg.grid.chunk_size, store=store).data

        raw = da.stack([layer(q) for q in qs])
        first, last = idx[0], idx[-1]
        refined = refine_window(raw, first, last, window)  # reads only the context the written quarters need
        tiles = grid.tiles(res)
        raw_keys: dict[tuple[Quarter, str], str] = {}  # each raw marker is read once, not once per window
        for i in idx:
            q = qs[i]
            span = qs[max(0, i - half) : i + half + 1]  # the quarters the mode filter sees (fewer at the ends)
            for index, tgbox in grid.iter_tiles(q):
                ys, xs = tiles.roi[index]
                t = tile_id(index)
                # a refined tile depends on the same tile's raw classes in its window (on another era's
                # grid, whose tiles cover other ground, on all that quarter's tiles)
                deps = []
                for w in span:
                    same = grid.grid.resolution_for(w) == res
                    for wt in [t] if same else [tile_id(j) for j, _ in grid.iter_tiles(w)]:
                        if (w, wt) not in raw_keys:
                            raw_keys[(w, wt)] = marker_key(f"{prefix}/raw/{w}/{wt}", store)
                        deps.append(raw_keys[(w, wt)])
                key = unit_key("refine", __version__, window, str(q), [str(w) for w in span], deps)
                folder = f"{prefix}/refined/{q}/{t}"
                units.append(Unit(dask.delayed(_write_tile, pure=True)(
                    refined[i - first : i - first + 1, ys, xs], ["class"], tgbox, folder, store, colours,
                    cfg.grid.cog_blocksize), folder, key))  # fmt: skip
    run_units(units, client, "refine", store=store, progress=progress)
    return sorted(todo)
