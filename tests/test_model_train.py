"""CCTS training and evaluation: metrics on known matrices, and a tiny end-to-end run with resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lpqlc.model.evaluate import accuracy, confusion, flip_rate, format_breakdown, format_table
from lpqlc.sample.archive import SampleArchive

from .conftest import small_config


def test_accuracy_on_a_known_confusion_matrix() -> None:
    cm = np.array([[50, 10], [5, 35]])
    acc = accuracy(cm, [10, 30])
    assert acc.oa == pytest.approx(0.85)
    pe = (60 * 55 + 40 * 45) / 100**2
    assert acc.kappa == pytest.approx((0.85 - pe) / (1 - pe))
    iou = np.array([50 / (60 + 55 - 50), 35 / (40 + 45 - 35)])
    assert np.allclose(acc.iou, iou) and acc.fwiou == pytest.approx(0.6 * iou[0] + 0.4 * iou[1])
    assert np.allclose(acc.pa, [50 / 60, 35 / 40]) and np.allclose(acc.ua, [50 / 55, 35 / 45])
    assert "OA 0.8500" in format_table(acc, {10: "Forest", 30: "Grassland"})


def test_confusion_ignores_nodata_and_flip_rate_counts_unchanged_only() -> None:
    truth = np.array([10, 10, 30, 0, 30], np.uint8)
    pred = np.array([10, 30, 30, 10, 0], np.uint8)
    assert confusion(truth, pred, [10, 30]).tolist() == [[1, 1], [0, 1]]
    t = np.array([[10, 10, 30], [10, 30, 30]], np.uint8)[:, None]  # (T=2, 1, 3)
    p = np.array([[10, 30, 30], [30, 30, 30]], np.uint8)[:, None]
    rate, n = flip_rate(t, p)
    assert n == 2 and rate == pytest.approx(0.5)  # pixel 0 unchanged & flipped, pixel 2 unchanged & stable


def test_breakdown_prints_each_scope_with_pa_ua_iou() -> None:
    q1 = accuracy(np.array([[50, 10], [5, 35]]), [10, 30])
    q2 = accuracy(np.array([[0, 0], [4, 6]]), [10, 30])
    era = accuracy(q1.confusion + q2.confusion, [10, 30])
    text = format_breakdown({"10 m era": era, "2016Q1": q1, "2016Q2": q2}, {10: "Forest", 30: "Grassland"})
    lines = text.splitlines()
    assert "Forest" in lines[0] and "PA/UA/IoU" in lines[1] and len(lines) == 5
    assert lines[3].split() == ["2016Q1", "100", "0.85", f"{q1.kappa:.2f}", f"{q1.fwiou:.2f}",
                                "0.83/0.91/0.77", "0.88/0.78/0.70"]  # fmt: skip
    assert lines[4].split()[5] == "–/0.00/0.00"  # no Forest in the reference: no PA; 4 predicted, none right


def _tiny_config(archive: SampleArchive, tmp_path: Path, epochs: tuple[int, int, int],
                 unlabelled: str = "2022Q1:2022Q1", label_year: int = 2021) -> Any:
    """The sample config with a CCTS small enough to train in seconds: 32 px tiles, batches of 2, 2 steps
    per epoch, ``epochs`` (contrastive, supervised, refine), every pixel past the confidence threshold."""
    c, s, r = epochs
    return small_config(archive.catalog, storage=str(tmp_path / "store"),
                        ccts={"tile_size": 32, "batch_size": 2, "steps_per_epoch": 2, "size": "small",
                              "epochs": {"contrastive": c, "supervised": s, "refine": r},
                              "unlabelled_quarters": unlabelled, "confidence_threshold": 0.0},
                        landcover={"label_year": label_year})  # fmt: skip


def test_two_step_training_resume_and_evaluation(small_archive: SampleArchive, tmp_path: Path) -> None:
    from lpqlc.model.checkpoint import load_checkpoint
    from lpqlc.model.jobs import evaluate_job, train_job, write_report

    cfg = _tiny_config(small_archive, tmp_path, (1, 2, 1))
    out = str(tmp_path / "model")
    ticks: list[Any] = []
    res = train_job(cfg, ("contrastive", "supervised", "refine"), out, progress=lambda *a: ticks.append(a))
    assert res.checkpoint.endswith("refine.pt") and res.device == "cpu"
    assert [t[0] for t in ticks] == ["contrastive", "supervised", "supervised", "refine"]
    rows = list(csv.DictReader(open(tmp_path / "model" / "losses.csv")))
    assert [r["stage"] for r in rows] == ["contrastive", "supervised", "supervised", "refine"]
    assert all(np.isfinite(float(r["loss"])) for r in rows) and rows[-1]["ic"] != ""
    assert (tmp_path / "model" / "losses.png").read_bytes()[:4] == b"\x89PNG"
    # one optimiser and one cosine across the stages (ccts.schedule continuous, the default): the rate falls
    # from epoch to epoch over the stage boundaries, and AdamW's step count at the end is every step of all stages
    # (8) for the encoder, every step of stages 2-3 (6) for the decoder, which stage 1 does not use
    lrs = [float(r["lr"]) for r in rows]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)), lrs
    opt = load_checkpoint(str(tmp_path / "model" / "latest.pt")).optimizer
    assert opt is not None and {int(v["step"]) for v in opt["state"].values()} == {8, 6}
    ck = load_checkpoint(res.checkpoint)
    assert ck.provenance["stage"] == "refine" and ck.provenance["labelled"] == ["2021Q4"] and ck.optimizer is None
    assert ck.classes == [10, 20, 30, 40, 50, 60, 80, 90] and set(ck.norm.mean) == set(ck.bands)
    # a rerun finds every stage done and trains nothing more
    before = (tmp_path / "model" / "refine.pt").stat().st_mtime_ns
    again = train_job(cfg, ("contrastive", "supervised", "refine"), out)
    assert again.checkpoint == res.checkpoint and (tmp_path / "model" / "refine.pt").stat().st_mtime_ns == before
    assert len(again.losses) == 4
    # evaluation against the truth rasters, then against points taken from them
    truth = str(Path(small_archive.truth) / "landcover" / "{quarter}.tif")
    from lpqlc.quarter import Quarter

    quarters = [Quarter(2021, 4), Quarter(2022, 1)]
    rep = evaluate_job(cfg, res.checkpoint, quarters, truth=truth)
    d = rep.to_dict()
    assert d["overall"]["n"] > 1000 and set(d["oa_per_quarter"]) == {"2021Q4", "2022Q1"}
    # evaluate scores exactly what classify writes: the same labels, so the same matrix and flip rate
    from lpqlc.classify.run import run_classify
    from lpqlc.composite.run import tile_id
    from lpqlc.grid import OutputGrid
    from lpqlc.sources.rasters import load_files

    run_classify(cfg, res.checkpoint, quarters, str(tmp_path / "lc"), refine=False)
    grid = OutputGrid.from_config(cfg)
    written, refs = [], []
    for q in quarters:
        written.append(load_files([str(tmp_path / "lc" / "raw" / str(q) / tile_id(i) / "class.tif") for i, _ in grid.iter_tiles(q)],
                                  grid.geobox(q), name="class").values)  # fmt: skip
        refs.append(load_files([truth.format(quarter=q)], grid.geobox(q), name="truth", resampling="mode").values)
    cm = sum(confusion(r, w, ck.classes) for r, w in zip(refs, written, strict=True))
    for q, r, w in zip(quarters, refs, written, strict=True):  # per quarter: that quarter's full accuracy
        a = accuracy(confusion(r, w, ck.classes), ck.classes)
        got = d["per_quarter"][str(q)]
        assert got["confusion"] == a.confusion.tolist() and got["kappa"] == pytest.approx(a.kappa)
        assert got["fwiou"] == pytest.approx(a.fwiou) and got["oa"] == d["oa_per_quarter"][str(q)]
        iou = [x if x is not None else -1 for x in got["iou"]]
        assert iou == pytest.approx(np.nan_to_num(a.iou, nan=-1), abs=1e-6)
    assert rep.overall.confusion.tolist() == cm.tolist()
    assert rep.overall.oa == pytest.approx(np.trace(cm) / cm.sum())
    fr, n = flip_rate(np.stack(refs), np.stack(written))
    assert (rep.flip_rate, rep.flip_pixels) == (pytest.approx(fr), n) and n > 0
    assert d["per_era"]["10"]["quarters"] == ["2021Q4", "2022Q1"] and d["per_era"]["10"]["flip_pixels"] == n
    write_report(rep, str(tmp_path / "report.json"), None)
    assert json.loads((tmp_path / "report.json").read_text())["overall"]["confusion"]
    pts = tmp_path / "points.csv"
    pts.write_text("x,y,time,class\n110.505,36.595,2022Q1,30\n110.506,36.594,2022-02-10,40\n0,0,2022Q1,10\n")
    rep2 = evaluate_job(cfg, res.checkpoint, [Quarter(2022, 1)], points=str(pts))
    assert rep2.overall.n == 2  # the third point lies outside the area
    # the same points as GeoParquet (WKB point geometry)
    import pandas as pd
    import shapely

    table = pd.read_csv(pts, dtype={"time": str})
    geo = table.assign(geometry=shapely.to_wkb(shapely.points(table.x, table.y))).drop(columns=["x", "y"])
    geo.to_parquet(tmp_path / "points.parquet")
    rep3 = evaluate_job(cfg, res.checkpoint, [Quarter(2022, 1)], points=str(tmp_path / "points.parquet"))
    assert rep3.overall.confusion.tolist() == rep2.overall.confusion.tolist()


def test_learning_rate_continues_across_stages_or_restarts_per_stage() -> None:
    from lpqlc.config.science import CCTSConfig
    from lpqlc.model.train import learning_rate

    cc = CCTSConfig(learning_rate=1e-3, steps_per_epoch=5, epochs={"contrastive": 2, "supervised": 4, "refine": 2})
    n = 8 * 5
    assert learning_rate(cc, "contrastive", 0) == pytest.approx(1e-3)
    # the refine stage starts where the supervised stage's cosine left off: steps 30.. of 40
    last_sup, first_ref = learning_rate(cc, "supervised", 19), learning_rate(cc, "refine", 0)
    assert first_ref == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 30 / n))) and first_ref < last_sup
    per = CCTSConfig(**{**cc.model_dump(), "schedule": "per-stage"})
    assert learning_rate(per, "refine", 0) == pytest.approx(1e-3)  # restarts at the full rate
    assert learning_rate(per, "supervised", 10) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 10 / 20)))


def test_unlabelled_passes_leave_batchnorm_running_statistics_alone() -> None:
    import torch

    from lpqlc.model.hrformer import HRFormer, hrformer_config
    from lpqlc.model.train import _KeepBNStats

    torch.manual_seed(0)
    model = HRFormer(hrformer_config("small", in_channels=5, num_classes=4, window=7, mlp_ratio=4)).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in bns]
    x = torch.randn(2, 5, 32, 32) * 3 + 1
    with torch.no_grad(), _KeepBNStats(model):
        model(x)
    after = [(m.running_mean, m.running_var, m.momentum) for m in bns]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2] for a, b in zip(before, after, strict=True))
    with torch.no_grad(), _KeepBNStats(model, active=False):  # refine_bn_stats: all — the statistics move
        model(x)
    assert any(not torch.equal(a[0], m.running_mean) for a, m in zip(before, bns, strict=True))


def test_refine_continues_the_supervised_optimiser_in_a_later_call(small_archive: SampleArchive, tmp_path: Path) -> None:
    """Stage 2 in one call, stage 3 in the next: the second call takes AdamW's moments and the rate where the
    first left them (from latest.pt), not a fresh optimiser at the full rate."""
    from lpqlc.model.checkpoint import load_checkpoint
    from lpqlc.model.jobs import train_job
    from lpqlc.model.train import learning_rate

    cfg = _tiny_config(small_archive, tmp_path, (0, 2, 1))
    out = str(tmp_path / "model")
    train_job(cfg, ("supervised",), out)
    after_sup = load_checkpoint(f"{out}/latest.pt").optimizer
    assert after_sup is not None and {int(v["step"]) for v in after_sup["state"].values()} == {4}
    train_job(cfg, ("supervised", "refine"), out)
    end = load_checkpoint(f"{out}/latest.pt").optimizer
    assert end is not None and {int(v["step"]) for v in end["state"].values()} == {6}  # 4 carried + 2
    rows = list(csv.DictReader(open(tmp_path / "model" / "losses.csv")))
    assert [r["stage"] for r in rows] == ["supervised", "supervised", "refine"]
    assert float(rows[-1]["lr"]) == pytest.approx(learning_rate(cfg.science.ccts, "refine", 1))
    assert float(rows[-1]["lr"]) < float(rows[1]["lr"])


def test_landsat_era_quarter_enters_both_stages_with_its_own_normalisation(small_archive: SampleArchive,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    """A grid whose 30 m era runs to 2021Q4: that quarter is Landsat-era D^u (label year 2022, 10 m).
    Its tiles are drawn in stage 1 (pairs) and stage 3 (unlabelled); the checkpoint carries both eras'
    statistics, and classify normalises the 30 m quarter by the 30 m ones and upsamples it ×3."""
    from lpqlc.classify.run import normalised_composite
    from lpqlc.composite.run import composite_layer, default_composites_dir
    from lpqlc.model.checkpoint import load_checkpoint
    from lpqlc.model.jobs import train_job, training_quarters
    from lpqlc.quarter import Quarter

    cfg = _tiny_config(small_archive, tmp_path, (1, 1, 1), unlabelled="2021Q4:2021Q4", label_year=2022)
    doc = cfg.model_dump(mode="json", exclude_none=True)
    doc["grid"]["resolutions"] = [{"start": "2000Q1", "resolution": 30}, {"start": "2022Q1", "resolution": 10}]
    from lpqlc.config import config_from_dict

    cfg = config_from_dict(doc)
    assert training_quarters(cfg) == [Quarter(2021, 4), Quarter(2022, 1)]
    only_label = config_from_dict({**doc, "science": {**doc["science"], "ccts": {**doc["science"]["ccts"], "unlabelled_eras": "label"}}})
    assert training_quarters(only_label) == [Quarter(2022, 1)]
    res = train_job(cfg, ("contrastive", "supervised", "refine"), str(tmp_path / "model"))
    # stage 1: 1 epoch × 2 steps × 2 pairs of 2 tiles from two different quarters of the two
    assert res.draws[("pairs", "2021Q4")] == 4 and res.draws[("pairs", "2022Q1")] == 4
    # stage 3: 1 epoch × 2 steps × batch 2, all from the only unlabelled quarter
    assert res.draws[("unlabelled", "2021Q4")] == 4 and ("labelled", "2021Q4") not in res.draws
    ck = load_checkpoint(res.checkpoint)
    assert set(ck.era_norms) == {"30", "10"} and ck.norm == ck.era_norms["10"]
    assert ck.era_norms["30"].mean != ck.era_norms["10"].mean
    assert ck.norm_for(30.0) is ck.era_norms["30"] and ck.upsample_for(30.0) == 3 and ck.upsample_for(10.0) == 1
    comp = default_composites_dir(cfg)
    q = Quarter(2021, 4)
    got = normalised_composite(cfg, comp, q, ck).compute()
    red = composite_layer(cfg, comp, q, "red").values
    want = (red - ck.era_norms["30"].mean["red"]) / ck.era_norms["30"].std["red"]
    ok = np.isfinite(red)
    assert np.allclose(got[ck.bands.index("red")][ok], want[ok], atol=1e-5)
