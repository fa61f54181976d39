"""Chunk-wise Dask inference against a bare torch forward loop over the same tiles.

Input: a seeded normalised image (5 bands, N×N) and a `small` HRFormer checkpoint (random weights:
speed does not depend on them). Baseline: a plain loop over the global tiling (tile, overlap), batched,
softmax, centres pasted into the class map. Ours: `lpqlc.classify.classify_array` over the Dask array
(chunked), computed with the threaded scheduler (one Dask thread; torch uses its own intra-op threads
in both). Labels are checked equal before timing. On CUDA it also reports tiles/s per GPU and the
GPU utilisation sampled by NVML during the run.

    python benchmarks/inference.py [--size 2048] [--chunk 1024] [--tile 256] [--overlap 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch


def bare_loop(model: Any, img: np.ndarray, classes: list[int], tile: int, overlap: int, batch: int,
              dev: torch.device) -> tuple[np.ndarray, int]:  # fmt: skip
    """The plain baseline: global tiles, batched forward, centres kept."""
    _, h, w = img.shape
    stride = tile - 2 * overlap
    pad = np.pad(img, ((0, 0), (tile, tile), (tile, tile)))
    probs = np.zeros((len(classes), h, w), np.float32)
    origins = [(ky * stride - overlap, kx * stride - overlap) for ky in range(-(-h // stride)) for kx in range(-(-w // stride))]
    with torch.no_grad():
        for i in range(0, len(origins), batch):
            group = origins[i : i + batch]
            x = np.stack([pad[:, oy + tile : oy + 2 * tile, ox + tile : ox + 2 * tile] for oy, ox in group])
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                p = torch.softmax(model(torch.from_numpy(x).to(dev)).float(), 1).cpu().numpy()
            for (oy, ox), pt in zip(group, p, strict=True):
                y0, x0 = oy + overlap, ox + overlap
                hh, ww = min(stride, h - y0), min(stride, w - x0)
                probs[:, y0 : y0 + hh, x0 : x0 + ww] = pt[:, overlap : overlap + hh, overlap : overlap + ww]
    return np.asarray(classes, np.uint8)[probs.argmax(0)], len(origins)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from lpqlc.classify.inference import classify_array, get_model
    from lpqlc.composite.normalise import NormStats
    from lpqlc.model import Checkpoint, HRFormer, hrformer_config, save_checkpoint

    torch.manual_seed(0)
    bands = ["blue", "green", "red", "nir", "swir1"]
    classes = [10, 20, 30, 40, 50, 60, 80, 90]
    norm = NormStats(mean=dict.fromkeys(bands, 0.0), std=dict.fromkeys(bands, 1.0), n=dict.fromkeys(bands, 1))
    url = os.path.join(tempfile.mkdtemp(prefix="lpqlc-bench-"), "small.pt")
    save_checkpoint(Checkpoint(model=HRFormer(hrformer_config("small")), classes=classes, bands=bands, norm=norm), url)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ck, _ = get_model(url)  # the process-wide copy the Dask tasks use
    ck.model.to(dev).eval()
    from lpqlc.classify import inference

    inference._LOCAL[url] = (ck, dev)
    img = np.random.default_rng(0).normal(0, 1, (5, args.size, args.size)).astype(np.float32)

    def ours() -> np.ndarray:
        arr = classify_array(da.from_array(img, chunks=(5, args.chunk, args.chunk), name=False), url=url,
                             store=None, classes=classes, tile=args.tile, overlap=args.overlap, batch=args.batch)  # fmt: skip
        with dask.config.set(scheduler="threads", num_workers=1):
            return arr.compute()[0]

    ref, n_tiles = bare_loop(ck.model, img, classes, args.tile, args.overlap, args.batch, dev)
    assert np.array_equal(ours(), ref), "chunk-wise labels differ from the bare loop"

    def best(fn: Any) -> float:
        b = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            b = min(b, time.perf_counter() - t)
        return b

    util: list[float] = []
    stop = threading.Event()
    if dev.type == "cuda":
        def sample() -> None:
            try:
                import pynvml  # type: ignore[import-not-found]

                pynvml.nvmlInit()
                h = pynvml.nvmlDeviceGetHandleByIndex(dev.index or 0)
                while not stop.is_set():
                    util.append(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
                    time.sleep(0.05)
            except Exception:  # noqa: BLE001 — utilisation is optional
                pass

        threading.Thread(target=sample, daemon=True).start()
    t_bare = best(lambda: bare_loop(ck.model, img, classes, args.tile, args.overlap, args.batch, dev))
    t_ours = best(ours)
    stop.set()
    cores = os.cpu_count() or 1
    print(f"machine: {platform.processor() or platform.machine()}, {cores} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {dev}")  # fmt: skip
    print(f"image {args.size}², chunk {args.chunk}, tile {args.tile}, overlap {args.overlap}, batch {args.batch}: {n_tiles} tiles")
    print(f"bare torch loop:      {t_bare:7.3f} s  {n_tiles / t_bare / cores:7.2f} tiles/s/core")
    print(f"dask chunk-wise:      {t_ours:7.3f} s  {n_tiles / t_ours / cores:7.2f} tiles/s/core")
    if dev.type == "cuda":
        print(f"tiles/s per GPU: {n_tiles / t_ours:.1f}; GPU utilisation: "
              f"{np.mean(util) if util else float('nan'):.0f} % mean over the runs")  # fmt: skip
    print(f"ratio (dask chunk-wise / bare loop): {t_ours / t_bare:.3f}  (target ≤ 1.15)")


if __name__ == "__main__":
    main()
