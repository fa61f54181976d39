"""Chunk-wise model inference on Dask: the model loaded once per worker, results independent of chunks.

The area is covered by ONE global tiling, anchored to the grid's origin: tiles of ``tile`` pixels at
a stride of ``tile − 2·overlap``; each tile's prediction is kept in its centre (``overlap`` pixels
trimmed on every side), so the centres partition the area and no seam shows. Every Dask block is
given a halo of ``tile`` pixels (zeros beyond the area, as missing data is after normalisation), which
holds every global tile whose centre touches the block: a pixel's label therefore never depends on
how the area is chunked. Tiles are batched inside each block.

The model comes from :class:`ModelPlugin`, a Dask ``WorkerPlugin`` that loads the checkpoint once per
worker (on its GPU if it has one); tasks look it up by URL and never carry it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dask.array as da
import numpy as np
import torch
from distributed.diagnostics.plugin import WorkerPlugin

from lpqlc.storage import Store

__all__ = ["ModelPlugin", "get_model", "predict_blocks", "classify_array", "PLUGIN_NAME"]

log = logging.getLogger(__name__)

PLUGIN_NAME = "lpqlc-model"
_LOCAL: dict[str, Any] = {}
_LOCK = threading.Lock()


def _load(url: str, store: Store | None, device: str | None) -> Any:
    from lpqlc.model.checkpoint import load_checkpoint

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ck = load_checkpoint(url, store, map_location=dev)
    ck.model.to(dev).eval()
    return ck, dev


class ModelPlugin(WorkerPlugin):
    """Dask WorkerPlugin: loads a checkpoint once when a worker starts (or when registered).

    ``worker.lpqlc_model_loads`` counts the loads on that worker (tests and logs read it).
    """

    name = PLUGIN_NAME

    def __init__(self, url: str, store: Store | None = None, device: str | None = None):
        self.url, self.store, self.device = url, store, device
        self.name = f"{PLUGIN_NAME}:{url}"

    def setup(self, worker: Any) -> None:
        ck, dev = _load(self.url, self.store, self.device)
        worker.lpqlc_models = {**getattr(worker, "lpqlc_models", {}), self.url: (ck, dev)}
        worker.lpqlc_model_loads = getattr(worker, "lpqlc_model_loads", 0) + 1
        log.info("worker %s loaded %s on %s", getattr(worker, "address", "?"), self.url, dev)

    def teardown(self, worker: Any) -> None:
        getattr(worker, "lpqlc_models", {}).pop(self.url, None)


def get_model(url: str, store: Store | None = None) -> tuple[Any, torch.device]:
    """The (checkpoint, device) for ``url``: the worker plugin's copy inside a Dask worker, else a
    process-wide cache (local schedulers load it once per process)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    if worker is not None:
        models = getattr(worker, "lpqlc_models", {})
        if url in models:
            return models[url]  # type: ignore[no-any-return]
        raise RuntimeError(f"worker {worker.address} has no model {url}: register ModelPlugin first")
    with _LOCK:
        if url not in _LOCAL:
            _LOCAL[url] = _load(url, store, None)
    return _LOCAL[url]  # type: ignore[no-any-return]


def _tile_origins(start: int, stop: int, tile: int, stride: int, overlap: int) -> range:
    """Global origins o = k·stride − overlap of the tiles whose centre [o + overlap, o + overlap + stride)
    meets [start, stop)."""
    k0 = (start) // stride
    k1 = (stop - 1) // stride
    return range(k0 * stride - overlap, k1 * stride - overlap + 1, stride)


@torch.no_grad()
def predict_blocks(block: np.ndarray, y0: int, x0: int, halo: int, out_shape: tuple[int, int], *, url: str,
                   store: Store | None, tile: int, overlap: int, batch: int, classes: list[int],
                   probabilities: bool) -> np.ndarray:  # fmt: skip
    """Classify the interior of one haloed block.

    ``block`` (bands, h + 2·halo, w + 2·halo) normalised input, missing = 0; (y0, x0) the global pixel
    of its interior's first pixel. Returns (2 [+ classes], h, w) uint8: class code, confidence (max
    probability, 0–100 %) [, probabilities 0–100 %]. Pixels where every band is 0 get class 0.
    """
    ck, dev = get_model(url, store)
    model = ck.model
    h, w = out_shape
    stride = tile - 2 * overlap
    probs = np.zeros((len(classes), h, w), np.float32)
    origins = [(oy, ox) for oy in _tile_origins(y0, y0 + h, tile, stride, overlap)
               for ox in _tile_origins(x0, x0 + w, tile, stride, overlap)]  # fmt: skip
    for i in range(0, len(origins), batch):
        group = origins[i : i + batch]
        tiles = np.stack([block[:, oy - y0 + halo : oy - y0 + halo + tile, ox - x0 + halo : ox - x0 + halo + tile]
                          for oy, ox in group])  # fmt: skip
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            p = torch.softmax(model(torch.from_numpy(tiles).to(dev)).float(), 1).cpu().numpy()
        for (oy, ox), pt in zip(group, p, strict=True):
            cy0, cx0 = oy + overlap, ox + overlap  # the tile's centre, global
            ya, yb = max(cy0, y0), min(cy0 + stride, y0 + h)
            xa, xb = max(cx0, x0), min(cx0 + stride, x0 + w)
            probs[:, ya - y0 : yb - y0, xa - x0 : xb - x0] = pt[:, ya - oy : yb - oy, xa - ox : xb - ox]
    interior = block[:, halo : halo + h, halo : halo + w]
    missing = ~np.any(interior != 0, axis=0)
    out = np.empty((2 + (len(classes) if probabilities else 0), h, w), np.uint8)
    out[0] = np.asarray(classes, np.uint8)[probs.argmax(0)]
    out[1] = np.rint(probs.max(0) * 100)
    if probabilities:
        out[2:] = np.rint(probs * 100)
    out[:, missing] = 0
    return out


def classify_array(image: da.Array, *, url: str, store: Store | None, classes: list[int], tile: int = 256,
                   overlap: int = 32, batch: int = 8, probabilities: bool = False,
                   gpu: bool = False) -> da.Array:  # fmt: skip
    """Lazy (2 [+ C], y, x) uint8 class/confidence[/probabilities] of a normalised (bands, y, x) image.

    Each chunk must be at least ``tile`` pixels (the halo); ``gpu`` asks the scheduler for a worker
    with the Dask resource ``GPU``.
    """
    import dask

    if tile <= 2 * overlap:
        raise ValueError(f"tile {tile} must exceed twice the overlap {overlap}")
    h, w = image.shape[1:]
    if h < tile or w < tile:
        # smaller than one window: pad with missing pixels (as the edge halo would) and crop back
        padded = da.pad(image, ((0, 0), (0, max(0, tile - h)), (0, max(0, tile - w))))
        return classify_array(padded, url=url, store=store, classes=classes, tile=tile, overlap=overlap,
                              batch=batch, probabilities=probabilities, gpu=gpu)[:, :h, :w]  # fmt: skip
    halo = tile
    # Chunks: multiples of the stride, so no tile centre straddles two blocks (no tile runs twice),
    # and at least as deep as the halo (dask's overlap would otherwise rechunk on its own).
    stride = tile - 2 * overlap
    image = image.rechunk({1: _stride_chunks(image.chunks[1], stride, halo), 2: _stride_chunks(image.chunks[2], stride, halo)})
    image = image.rechunk({0: -1})
    g = da.overlap.overlap(image, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: 0, 2: 0})
    ystarts = np.cumsum((0, *image.chunks[1][:-1]))
    xstarts = np.cumsum((0, *image.chunks[2][:-1]))
    nout = 2 + (len(classes) if probabilities else 0)

    def fn(block: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        assert block_info is not None
        _, iy, ix = block_info[None]["chunk-location"]
        h, w = image.chunks[1][iy], image.chunks[2][ix]
        return predict_blocks(block, int(ystarts[iy]), int(xstarts[ix]), halo, (h, w), url=url,
                              store=store, tile=tile, overlap=overlap, batch=batch,
                              classes=classes, probabilities=probabilities)  # fmt: skip

    with dask.annotate(resources={"GPU": 1}) if gpu else _nullcontext():
        return g.map_blocks(fn, dtype=np.uint8, chunks=((nout,), image.chunks[1], image.chunks[2]))


def _stride_chunks(chunks: tuple[int, ...], stride: int, halo: int) -> tuple[int, ...]:
    """Chunks of about the current size, rounded to a multiple of ``stride`` and at least ``halo``;
    the last takes the remainder (merged into its neighbour if smaller than ``halo``)."""
    total = sum(chunks)
    size = max(stride, int(round(max(chunks) / stride)) * stride)
    while size < halo:
        size += stride
    out = [size] * (total // size)
    rest = total - size * len(out)
    if rest:
        if out and rest < halo:
            out[-1] += rest
        else:
            out.append(rest)
    return tuple(out) or (total,)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
