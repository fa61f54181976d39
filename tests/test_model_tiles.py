"""Training tiles: per-tile histograms as a Dask reduction, class-balanced selection, the tile index on
disk, windowed reads bounded by the batch whatever the area, and seeded, repeatable draws."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from lpqlc.composite.normalise import NormStats
from lpqlc.model.data import Sampler, TrainingData
from lpqlc.model.losses import IGNORE
from lpqlc.model.tiles import TileIndex, WindowReader, select_tiles, tile_histograms, tile_index
from lpqlc.quarter import Quarter

N_CLASSES, BANDS = 4, ["blue", "green", "red", "nir", "swir1"]


def _labels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, N_CLASSES, (n, n))
    lab[: n // 8] = IGNORE  # a strip outside the AOI
    lab[n // 8 :, : n // 4][lab[n // 8 :, : n // 4] == 3] = 1  # class 3 only on the right
    return lab


def test_histograms_are_per_tile_bincounts_and_selection_is_balanced() -> None:
    lab = _labels(96)
    hist = tile_histograms(da.from_array(lab, chunks=40), 16, N_CLASSES)
    assert hist.shape == (6, 6, N_CLASSES)
    for r in range(6):
        for c in range(6):
            block = lab[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16]
            assert hist[r, c].tolist() == [int((block == k).sum()) for k in range(N_CLASSES)]
    tiles, by_class = select_tiles(hist, per_class=5, seed=1)
    assert all(len(ix) == 5 for ix in by_class.values()) and set(by_class) == set(range(N_CLASSES))
    assert all(hist[tiles[i]][c] > 0 for c, ix in by_class.items() for i in ix)
    assert all(r >= 1 for r, _ in tiles)  # the first tile row is all IGNORE (outside the AOI): never chosen
    # class 3 takes the tiles holding most of it
    best = sorted(range(36), key=lambda t: -hist.reshape(36, -1)[t, 3])[:5]
    assert min(hist[tiles[i]][3] for i in by_class[3]) == hist.reshape(36, -1)[best[-1], 3]
    assert select_tiles(hist, 5, 1) == (tiles, by_class)


def test_tile_index_is_kept_on_disk_and_remade_for_other_inputs(tmp_path: Path) -> None:
    url = str(tmp_path / "tiles.json")
    first = tile_index(da.from_array(_labels(64), chunks=32), 16, N_CLASSES, 3, 0, url, "key-a")
    # a rerun with the same key reads the file, whatever the labels now say
    again = tile_index(da.from_array(np.full((64, 64), IGNORE), chunks=32), 16, N_CLASSES, 3, 0, url, "key-a")
    assert again == first and TileIndex.from_json(Path(url).read_bytes(), url) == first
    other = tile_index(da.from_array(_labels(64, seed=5), chunks=32), 16, N_CLASSES, 3, 0, url, "key-b")
    assert other.key == "key-b" and other != first


def _data(n: int, tile: int, seed: int = 0) -> TrainingData:
    """Lazy synthetic composites of three quarters (one of them labelled) over an n×n area."""
    rng = np.random.default_rng(seed)
    images = [da.from_array(rng.random((5, n, n), dtype=np.float32), chunks=(5, tile * 2, tile * 2)) for _ in range(3)]
    lab = da.from_array(_labels(n), chunks=tile * 2)
    norm = NormStats(mean={b: 0.5 for b in BANDS}, std={b: 0.3 for b in BANDS}, n={b: 1 for b in BANDS})
    norms = [(np.full(5, 0.5, np.float32), np.full(5, 0.3, np.float32))] * 3
    tiles, by_class = select_tiles(tile_histograms(lab, tile, N_CLASSES), 4, seed)
    return TrainingData(quarters=[Quarter(2020, 4), Quarter(2021, 1), Quarter(2021, 2)],
                        reader=WindowReader(images, lab, norms, cache_mb=0), labelled=[1], classes=[10, 20, 30, 40],
                        bands=BANDS, norm=norm, index=TileIndex(tile, tiles, by_class, "k"))  # fmt: skip


def _draw(s: Sampler) -> list[np.ndarray]:
    x, y = s.labelled(3)
    u, v = s.unlabelled_batch(2)
    p, loc = s.pairs(2)
    return [x, y, u, v, p, loc]


def test_sampling_reads_windows_only_and_repeats_for_a_seed() -> None:
    tile = 32
    peaks, largest = [], []
    for n in (128, 256, 512):  # ×1, ×4, ×16 the area
        d = _data(n, tile)
        tracemalloc.start()
        out = _draw(Sampler(d, tile, seed=3))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        largest.append(d.reader.largest)
        assert out[0].shape == (3, 5, tile, tile) and out[4].shape == (4, 5, tile, tile)
        assert set(np.unique(out[1])) <= {0, 1, 2, 3, IGNORE}
    # the largest array a read allocates is one window, whatever the area; peak memory does not grow
    # with it (an AOI-sized read of the ×16 area would be 5 MB per quarter)
    assert largest == [5 * tile * tile * 4] * 3
    assert max(peaks) < 2 * 2**20 and peaks[2] < 2 * peaks[0]
    a, b = _draw(Sampler(_data(128, tile), tile, seed=3)), _draw(Sampler(_data(128, tile), tile, seed=3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = _draw(Sampler(_data(128, tile), tile, seed=4))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_sampler_refuses_an_index_of_another_tile_size() -> None:
    from lpqlc.errors import LpqlcError

    with pytest.raises(LpqlcError, match="32 px tiles"):
        Sampler(_data(128, 32), 64, seed=0)


def test_unlabelled_pairs_are_one_tile_at_two_unlabelled_quarters() -> None:
    tile = 32
    d = _data(128, tile)
    s = Sampler(d, tile, seed=2)
    xa, va, xb, vb = s.unlabelled_pairs(3)
    assert xa.shape == xb.shape == (3, 5, tile, tile) and va.shape == vb.shape == (3, tile, tile)
    # the two unlabelled quarters (2020Q4, 2021Q2), one of each per pair; never the labelled 2021Q1
    assert dict(s.draws) == {("unlabelled", "2020Q4"): 3, ("unlabelled", "2021Q2"): 3}
    origins = [(r * tile, c * tile) for r, c in d.index.tiles]
    for i in range(3):
        where = [(q, o) for q in (0, 2) for o in origins
                 if np.array_equal(d.reader.read(q, *o, tile)[0], xa[i])]  # fmt: skip
        assert len(where) == 1
        (qa, o) = where[0]
        assert np.array_equal(d.reader.read(2 - qa, *o, tile)[0], xb[i])  # the same ground, the other quarter


@pytest.mark.parametrize("consistency", ["perturbed", "cross-time"])
def test_refine_step_second_view_and_diagnostics(consistency: str) -> None:
    import torch

    from lpqlc.config.science import CCTSConfig
    from lpqlc.model.hrformer import HRFormer, hrformer_config
    from lpqlc.model.train import _refine_step

    torch.manual_seed(0)
    cfg = CCTSConfig(consistency=consistency, confidence_threshold=0.0, perturbations=("radiometric",))
    model = HRFormer(hrformer_config("small", in_channels=5, num_classes=4))
    s = Sampler(_data(128, 32), 32, seed=1)
    parts = _refine_step(model, s, 2, cfg, torch.device("cpu"), torch.Generator().manual_seed(0), False)
    # cross-time reads each unlabelled tile at two quarters
    n_unlabelled = sum(v for (use, _), v in s.draws.items() if use == "unlabelled")
    assert n_unlabelled == (4 if consistency == "cross-time" else 2)
    assert float(parts["kept"]) == 1.0  # λ = 0: every valid pixel carries a pseudo-label
    assert 0.0 < float(parts["agree"]) <= 1.0 and torch.isfinite(parts["loss"])
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad and p.dim() > 1)


def test_refine_warns_when_no_pixel_reaches_the_confidence_threshold(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """An untrained model is nowhere 99.99 % sure: stage 3's consistency terms are then inert, and the log says so."""
    import logging

    from lpqlc.model.train import train

    from .conftest import small_config

    rows = {}
    for lam in (0.9999, 0.0):
        cfg = small_config(str(tmp_path / "unused.json"), storage=str(tmp_path), ccts={"tile_size": 32, "batch_size": 2, "steps_per_epoch": 1,
                                                        "epochs": {"refine": 1}, "confidence_threshold": lam})  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lpqlc.model.train"):
            res = train(cfg, _data(64, 32), str(tmp_path / f"m{lam}"), stages=("refine",))
        rows[lam] = (res.losses[-1], [r.getMessage() for r in caplog.records])
    assert rows[0.9999][0]["kept"] == 0.0 and rows[0.9999][0]["ic"] == 0.0
    assert any("reach the confidence threshold" in m for m in rows[0.9999][1])
    assert rows[0.0][0]["kept"] == 1.0 and rows[0.0][0]["ic"] > 0 and not rows[0.0][1]
