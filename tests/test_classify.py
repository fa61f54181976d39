"""Chunk-wise inference and temporal refinement: chunking invariance, the refinement against a plain
reference, the model loaded once per worker, CPU fallback, and the classify job."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
import torch

from lpqlc.classify import (
    ModelPlugin,
    classify_array,
    get_model,
    refine_window,
    temporal_mode,
    temporal_mode_numpy,
)
from lpqlc.cluster import cluster_spec, gpu_worker_group_spec, has_gpu_workers
from lpqlc.composite.normalise import NormStats
from lpqlc.config.pipeline import ClusterConfig
from lpqlc.model import Checkpoint, HRFormer, hrformer_config, save_checkpoint
from lpqlc.sample.archive import SampleArchive

from .conftest import small_config

CLASSES = [10, 20, 30, 40, 50, 60, 80, 90]
BANDS = ["blue", "green", "red", "nir", "swir1"]


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(5)
    norm = NormStats(mean={b: 0.1 for b in BANDS}, std={b: 0.05 for b in BANDS}, n={b: 100 for b in BANDS})
    ck = Checkpoint(model=HRFormer(hrformer_config("small")), classes=CLASSES, bands=BANDS, norm=norm)
    url = str(tmp_path_factory.mktemp("model") / "random.pt")
    save_checkpoint(ck, url)
    return url


def _image(h: int = 150, w: int = 130) -> np.ndarray:
    rng = np.random.default_rng(2)
    img = rng.normal(0, 1, (5, h, w)).astype(np.float32)
    img[:, 40:60, 10:30] = 0  # a hole of missing data
    return img


# ------------------------------------------------------------------------------ chunking invariance
def test_labels_do_not_depend_on_chunking(model_url: str) -> None:
    img = _image()
    kw: dict[str, Any] = dict(url=model_url, store=None, classes=CLASSES, tile=32, overlap=8, batch=3)
    with dask.config.set(scheduler="threads"):
        a = classify_array(da.from_array(img, chunks=(5, 64, 64)), **kw).compute()
        b = classify_array(da.from_array(img, chunks=(5, 75, 130)), **kw).compute()
        c = classify_array(da.from_array(img, chunks=(5, 150, 130)), **kw).compute()
    assert a.shape == (2, 150, 130) and a.dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[0], c[0])
    assert np.abs(a[1].astype(int) - c[1].astype(int)).max() <= 1  # confidence: rounding of float sums only
    assert (a[0][40:60, 10:30] == 0).all() and set(np.unique(a[0])) - {0} <= set(CLASSES)
    assert a[1].max() <= 100 and (a[1][a[0] > 0] >= 100 / len(CLASSES) - 1).all()
    p = classify_array(da.from_array(img, chunks=(5, 64, 64)), probabilities=True, **kw).compute()
    assert p.shape == (2 + len(CLASSES), 150, 130) and np.array_equal(p[0], a[0])


# ----------------------------------------------------------------------------- temporal refinement
def _reference_mode(series: list[int], window: int = 5) -> list[int]:
    """Plain Python: most frequent non-zero class in the truncated window; ties keep the centre, else
    the tied class nearest in time (earlier first); nodata centre stays 0."""
    r = window // 2
    out = []
    for i, centre in enumerate(series):
        if centre == 0:
            out.append(0)
            continue
        lo, hi = max(0, i - r), min(len(series), i + r + 1)
        counts = Counter(v for v in series[lo:hi] if v)
        best = max(counts.values())
        if counts[centre] == best:
            out.append(centre)
            continue
        for j in sorted(range(lo, hi), key=lambda j: (abs(j - i), j)):
            if series[j] and counts[series[j]] == best:
                out.append(series[j])
                break
    return out


def test_refinement_matches_reference_with_ties_and_ends() -> None:
    cases = [
        [10, 30, 10, 30, 40],  # ties everywhere: centre kept
        [30, 10, 10, 40, 40, 10, 30],  # a window without the centre among the most frequent
        [10, 10, 30, 10, 10],  # a single-quarter flip is removed
        [40, 30, 30],  # series shorter than the window
        [0, 30, 0, 30, 10],  # nodata neither votes nor changes
        [20, 30, 40, 50, 60, 80],  # all different: centre kept
    ]
    for series in cases:
        got = temporal_mode_numpy(np.asarray(series, np.uint8)[:, None, None])[:, 0, 0].tolist()
        assert got == _reference_mode(series), series
    rng = np.random.default_rng(0)
    stack = rng.choice(np.asarray([0, 10, 30, 40], np.uint8), size=(9, 12, 11), p=[0.05, 0.4, 0.3, 0.25])
    ref = np.array([[_reference_mode(stack[:, y, x].tolist()) for x in range(11)] for y in range(12)]).transpose(2, 0, 1)
    lazy = temporal_mode(da.from_array(stack, chunks=(3, 5, 4)))
    assert np.array_equal(lazy.compute(), ref)
    # a window of quarters re-refines exactly what the whole series gives there
    assert np.array_equal(refine_window(da.from_array(stack, chunks=(9, 6, 6)), 3, 5).compute(), ref[3:6])
    assert np.array_equal(refine_window(da.from_array(stack, chunks=(9, 6, 6)), 7, 8).compute(), ref[7:9])


def test_refinement_across_the_sensor_switch(tmp_path: Path) -> None:
    """2015Q3–2016Q2 straddles the 30 m → 10 m switch: each refined quarter votes with the other era's
    labels, 30 m ones repeated onto the nested 10 m pixels, 10 m ones aggregated to 30 m by mode."""
    from lpqlc.classify.run import _write_tile, refine_quarters
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid
    from lpqlc.quarter import Quarter

    cfg = small_config(str(tmp_path / "unused-catalog.json"), storage=str(tmp_path / "store"))
    grid = OutputGrid.from_config(cfg)
    coarse, fine = grid.geobox(30.0), grid.geobox(10.0)
    assert (fine.shape[0], fine.shape[1]) == (3 * coarse.shape[0], 3 * coarse.shape[1])
    rng = np.random.default_rng(3)
    old = [Quarter(2015, 3), Quarter(2015, 4)]
    new = [Quarter(2016, 1), Quarter(2016, 2)]
    codes = np.asarray([10, 30, 40], np.uint8)
    base = {q: rng.choice(codes, size=coarse.shape) for q in old + new}
    labels: dict[Quarter, np.ndarray] = {q: base[q] for q in old}
    for q in new:  # 10 m: the 30 m base with at most 4 of 9 pixels per block changed (a clear block mode)
        up = np.repeat(np.repeat(base[q], 3, 0), 3, 1)
        blocks = up.reshape(coarse.shape[0], 3, coarse.shape[1], 3).transpose(0, 2, 1, 3).reshape(*coarse.shape, 9).copy()
        blocks[..., :4] = rng.choice(codes, size=(*coarse.shape, 4))
        labels[q] = blocks.reshape(coarse.shape[0], coarse.shape[1], 3, 3).transpose(0, 2, 1, 3).reshape(fine.shape)
    out = tmp_path / "lc"
    colours = dict(cfg.science.landcover.colours)
    for q, arr in labels.items():
        tiles = grid.tiles(q)
        for index, tgbox in grid.iter_tiles(q):
            ys, xs = tiles.roi[index]
            _write_tile(arr[None, ys, xs], ["class"], tgbox, str(out / "raw" / str(q) / tile_id(index)), None, colours)
    refine_quarters(cfg, str(out), old + new, old + new)

    def read(q: Quarter) -> np.ndarray:
        from lpqlc.sources.rasters import load_files

        return load_files([str(out / "refined" / str(q) / tile_id(i) / "class.tif") for i, _ in grid.iter_tiles(q)],
                          grid.geobox(q), name="class").values  # fmt: skip

    want_coarse = temporal_mode_numpy(np.stack([labels[q] for q in old] + [base[q] for q in new]))
    want_fine = temporal_mode_numpy(np.stack([np.repeat(np.repeat(labels[q], 3, 0), 3, 1) for q in old]
                                             + [labels[q] for q in new]))  # fmt: skip
    for i, q in enumerate(old):
        assert np.array_equal(read(q), want_coarse[i]), q
    for i, q in enumerate(new):
        assert np.array_equal(read(q), want_fine[2 + i]), q
    # block_mode: nodata does not vote, ties go to the first class in row order
    from lpqlc.classify.run import block_mode

    blocks = np.array([[10, 30, 0, 0], [30, 10, 0, 40], [0, 0, 20, 20], [0, 0, 20, 10]], np.uint8)
    assert block_mode(da.from_array(blocks, chunks=2), 2).compute().tolist() == [[10, 40], [0, 20]]
    # the switch changes the result: refined per era alone, 2015Q4 would differ somewhere
    assert not np.array_equal(want_coarse[1], temporal_mode_numpy(np.stack([labels[q] for q in old]))[1])


# ---------------------------------------------------------------------- workers, GPU and fallbacks
def test_model_loaded_once_per_worker_and_same_labels(model_url: str) -> None:
    from dask.distributed import Client, LocalCluster

    img = _image()
    kw: dict[str, Any] = dict(url=model_url, store=None, classes=CLASSES, tile=32, overlap=8, batch=4)
    with dask.config.set(scheduler="threads"):
        local = classify_array(da.from_array(img, chunks=(5, 64, 64)), **kw).compute()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.register_plugin(ModelPlugin(model_url))
        assert not has_gpu_workers(client)
        got = client.compute(classify_array(da.from_array(img, chunks=(5, 40, 40)), **kw)).result()
        loads = client.run(lambda dask_worker: getattr(dask_worker, "lpqlc_model_loads", 0))
        tasks_per_worker = client.run(lambda dask_worker: len(dask_worker.state.log) > 0)
    assert sorted(loads.values()) == [1, 1], loads  # once per worker, not per task (16 blocks ran)
    assert all(tasks_per_worker.values())
    assert np.array_equal(got[0], local[0])


def test_cpu_fallback_without_gpu(model_url: str) -> None:
    ck, dev = get_model(model_url)
    if not torch.cuda.is_available():
        assert dev.type == "cpu" and next(ck.model.parameters()).device.type == "cpu"
    assert has_gpu_workers(None) is False


def test_cluster_specs_declare_gpu_resources() -> None:
    cfg = ClusterConfig(kind="kubernetes")
    gpu = gpu_worker_group_spec(cfg)
    c = gpu["spec"]["worker"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" and "GPU=1" in c["args"]
    assert gpu["spec"]["worker"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    spec = cluster_spec(cfg)
    w = spec["spec"]["worker"]["spec"]["containers"][0]
    assert spec["kind"] == "DaskCluster" and "nvidia.com/gpu" not in w["resources"]["limits"]
    assert w["resources"]["requests"]["memory"] == cfg.kubernetes.cpu_workers.memory


# ------------------------------------------------------------------------------------- the job
def test_classify_job_writes_raw_refined_and_confidence(small_archive: SampleArchive, model_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lpqlc.cli import app

    cfg = small_config(small_archive.catalog, storage=str(tmp_path / "store"), ccts={"predict_tile": 64, "predict_overlap": 8})
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "lc"
    res = CliRunner().invoke(app, ["classify", "--config", str(path), "--model", model_url, "--quarters", "2021Q4:2022Q1",
                                   "--out", str(out), "--probabilities"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "CPU workers" in res.output
    raws, refined = [], []
    for q in ("2021Q4", "2022Q1"):
        tiles = sorted(p.name for p in (out / "raw" / q).iterdir())
        assert len(tiles) == 4
        with rasterio.open(out / "raw" / q / tiles[0] / "class.tif") as src:
            raws.append(src.read(1))
            assert src.colormap(1)[10][:3] == (0, 100, 0)
        with rasterio.open(out / "raw" / q / tiles[0] / "confidence.tif") as src:
            conf = src.read(1)
            assert conf.max() <= 100
        with rasterio.open(out / "raw" / q / tiles[0] / "probabilities.tif") as src:
            probs = src.read()
            assert src.count == len(CLASSES) and np.array_equal(probs.max(0)[conf > 0], conf[conf > 0])
        with rasterio.open(out / "refined" / q / tiles[0] / "class.tif") as src:
            refined.append(src.read(1))
    assert np.array_equal(np.stack(refined), temporal_mode_numpy(np.stack(raws)))
