"""The ``lpqlc train`` and ``lpqlc evaluate`` jobs: composites in, checkpoints and reports out."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from lpqlc.composite.run import default_composites_dir, ensure_composites
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.grid import OutputGrid
from lpqlc.model.checkpoint import load_checkpoint
from lpqlc.model.data import load_composite, load_training_data
from lpqlc.model.evaluate import Accuracy, accuracy, confusion, flip_rate, predict_area
from lpqlc.model.train import TrainResult, pick_device, train
from lpqlc.quarter import Quarter, parse_quarters
from lpqlc.sources.rasters import load_files
from lpqlc.storage import parse_storage_url, read_bytes, write_bytes

__all__ = ["training_quarters", "train_job", "EvalReport", "evaluate_job"]

log = logging.getLogger(__name__)


def training_quarters(cfg: PipelineConfig) -> list[Quarter]:
    """The label year's quarters plus ``ccts.unlabelled_quarters``, inside the period and the label
    year's resolution era."""
    year = cfg.science.landcover.label_year
    grid = OutputGrid.from_config(cfg).grid
    res = grid.resolution_for(Quarter(year, 1))
    qs = set(parse_quarters(f"{year}Q1:{year}Q4")) | set(parse_quarters(cfg.science.ccts.unlabelled_quarters))
    return sorted(q for q in qs if q in set(cfg.quarters) and grid.resolution_for(q) == res)


def train_job(cfg: PipelineConfig, stages: tuple[str, ...], out: str, *, composites: str | None = None,
              device: str | None = None, client: Any = None, progress: Any = None) -> TrainResult:  # fmt: skip
    """Composites of the training quarters (made if missing), then the CCTS stages."""
    prefix = parse_storage_url(out, what="--out").url.rstrip("/")
    comp_dir = composites or default_composites_dir(cfg)
    quarters = training_quarters(cfg)
    ensure_composites(cfg, comp_dir, quarters, client)
    data = load_training_data(cfg, comp_dir, quarters)
    log.info("training on %d quarters (%d labelled), %s px", len(quarters), len(data.labelled), data.labels.shape)
    return train(cfg, data, prefix, stages=stages, device=device, progress=progress)


@dataclass
class EvalReport:
    overall: Accuracy
    per_quarter: dict[str, float]
    flip_rate: float
    flip_pixels: int
    names: dict[int, str]

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(), "oa_per_quarter": self.per_quarter,
                "flip_rate_unchanged": self.flip_rate, "flip_pixels": self.flip_pixels,
                "class_names": {str(k): v for k, v in self.names.items()}}  # fmt: skip


def _in_quarter(time: str, q: Quarter) -> bool:
    """A point's time: a quarter label (2021Q3) or an ISO date inside the quarter."""
    if "Q" in time:
        return time.strip() == str(q)
    from datetime import date

    d = date.fromisoformat(time[:10])
    return Quarter.of(d) == q


def _points(url: str, endpoint: str | None) -> list[dict[str, str]]:
    """Reference points from CSV or (Geo)Parquet: columns x, y (lon/lat) — or a WKB point ``geometry``
    in EPSG:4326 — plus time (a quarter label or a date) and class (the class code)."""
    import pandas as pd

    blob = read_bytes(url, endpoint)
    if url.endswith((".parquet", ".geoparquet")):
        table = pd.read_parquet(io.BytesIO(blob))
        if {"x", "y"} - set(table.columns) and "geometry" in table.columns:
            import shapely

            pts = shapely.from_wkb(table["geometry"].to_numpy())
            table = table.assign(x=shapely.get_x(pts), y=shapely.get_y(pts))
    else:
        table = pd.read_csv(io.BytesIO(blob), dtype={"time": str})
    need = {"x", "y", "time", "class"}
    if table.empty or not need <= set(table.columns):
        raise LpqlcError(f"{url}: reference points need the columns {sorted(need)} (x, y in lon/lat, or a geometry)")
    return [{k: str(v) for k, v in r.items()} for r in table[sorted(need)].to_dict("records")]


def evaluate_job(cfg: PipelineConfig, model_url: str, quarters: list[Quarter], *, truth: str | None = None,
                 points: str | None = None, composites: str | None = None, device: str | None = None,
                 client: Any = None) -> EvalReport:  # fmt: skip
    """Predict ``quarters`` with the model and score them against truth rasters or reference points."""
    if (truth is None) == (points is None):
        raise LpqlcError("give exactly one of --truth (raster template with {quarter}) or --points (CSV)")
    if truth is not None and "{quarter}" not in truth:
        raise LpqlcError(f"--truth {truth!r} must hold {{quarter}}")
    endpoint = cfg.storage.endpoint_url
    ck = load_checkpoint(model_url, endpoint)
    dev = pick_device(device)
    model = ck.model.to(dev)
    comp_dir = composites or default_composites_dir(cfg)
    ensure_composites(cfg, comp_dir, quarters, client)
    grid = OutputGrid.from_config(cfg)
    cc = cfg.science.ccts
    preds, truths, per_q = [], [], {}
    cm = np.zeros((len(ck.classes), len(ck.classes)), np.int64)
    pts = _points(points, endpoint) if points else []
    for q in quarters:
        raw = load_composite(cfg, comp_dir, q)
        valid = np.isfinite(raw).all(0)
        img = ck.norm.normalise(np.nan_to_num(raw), ck.bands)
        img[:, ~valid] = 0
        pred, _ = predict_area(model, img, valid, ck.classes, tile=cc.predict_tile, overlap=cc.predict_overlap, device=dev)
        gbox = grid.geobox(q)
        if truth is not None:
            ref = load_files([truth.format(quarter=q)], gbox, name="truth", resampling="mode", endpoint_url=endpoint).values
            c = confusion(ref, pred, ck.classes)
            preds.append(pred)
            truths.append(ref)
        else:
            from pyproj import Transformer

            to_grid = Transformer.from_crs("EPSG:4326", gbox.crs.to_wkt(), always_xy=True)
            t_ref, t_pred = [], []
            for r in pts:
                if not _in_quarter(str(r["time"]), q):
                    continue
                gx, gy = to_grid.transform(float(r["x"]), float(r["y"]))
                col, row = ~gbox.transform @ (gx, gy)
                iy, ix = int(np.floor(row)), int(np.floor(col))
                if 0 <= iy < pred.shape[0] and 0 <= ix < pred.shape[1]:
                    t_ref.append(int(r["class"]))
                    t_pred.append(int(pred[iy, ix]))
            c = confusion(np.asarray(t_ref, np.uint8), np.asarray(t_pred, np.uint8), ck.classes)
        cm += c
        per_q[str(q)] = accuracy(c, ck.classes).oa if c.sum() else float("nan")
    names = dict(cfg.science.landcover.classes)
    fr, n = flip_rate(np.stack(truths), np.stack(preds)) if len(truths) > 1 else (float("nan"), 0)
    return EvalReport(overall=accuracy(cm, ck.classes), per_quarter=per_q, flip_rate=fr, flip_pixels=n, names=names)


def write_report(report: EvalReport, url: str, endpoint: str | None) -> None:
    write_bytes(url, (json.dumps(report.to_dict(), indent=2) + "\n").encode(), endpoint)
