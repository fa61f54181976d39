"""The ``lpqlc train`` and ``lpqlc evaluate`` jobs: composites in, checkpoints and reports out."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpqlc.composite.run import default_composites_dir, ensure_composites
from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.grid import OutputGrid
from lpqlc.model.checkpoint import era_key, load_checkpoint
from lpqlc.model.data import load_training_data
from lpqlc.model.evaluate import Accuracy, accuracy, confusion, flip_rate
from lpqlc.model.train import TrainResult, train
from lpqlc.quarter import Quarter, parse_quarters
from lpqlc.sources.rasters import load_files
from lpqlc.storage import Store, parse_storage_url, read_bytes, write_bytes

__all__ = ["training_quarters", "train_job", "EvalReport", "evaluate_job"]

log = logging.getLogger(__name__)


def training_quarters(cfg: PipelineConfig) -> list[Quarter]:
    """The label year's quarters plus ``ccts.unlabelled_quarters``, inside the period; of every sensor
    era (``ccts.unlabelled_eras: all``, the paper's D^u) or the label year's only (``label``)."""
    year = cfg.science.landcover.label_year
    grid = OutputGrid.from_config(cfg).grid
    res = grid.resolution_for(Quarter(year, 1))
    both = cfg.science.ccts.unlabelled_eras == "all"
    qs = set(parse_quarters(f"{year}Q1:{year}Q4")) | set(parse_quarters(cfg.science.ccts.unlabelled_quarters))
    return sorted(q for q in qs if q in set(cfg.quarters) and (both or grid.resolution_for(q) == res))


def train_job(cfg: PipelineConfig, stages: tuple[str, ...], out: str, *, composites: str | None = None,
              device: str | None = None, client: Any = None, progress: Any = None) -> TrainResult:  # fmt: skip
    """Composites of the training quarters (made if missing), then the CCTS stages."""
    prefix = parse_storage_url(out, what="--out").url.rstrip("/")
    comp_dir = composites or default_composites_dir(cfg)
    quarters = training_quarters(cfg)
    ensure_composites(cfg, comp_dir, quarters, client)
    data = load_training_data(cfg, comp_dir, quarters, index_url=f"{prefix}/tiles.json")
    log.info("training on %d quarters (%d labelled), %d tiles of %d px over %s px", len(quarters), len(data.labelled),
             len(data.index.tiles), data.index.size, data.reader.shape)  # fmt: skip
    return train(cfg, data, prefix, stages=stages, device=device, progress=progress)


@dataclass
class EvalReport:
    overall: Accuracy
    per_quarter: dict[str, float]
    flip_rate: float
    flip_pixels: int
    names: dict[int, str]
    #: Per sensor era (pixel size in metres, ``"30"``/``"10"``): its quarters, accuracy and flip rate
    #: (consecutive quarters within the era; the overall flip rate pools the eras' pixel-steps).
    per_era: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per quarter: OA, Kappa, FWIoU, PA/UA/IoU per class and the confusion matrix.
    quarters: dict[str, Accuracy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(), "oa_per_quarter": self.per_quarter,
                "per_quarter": {q: a.to_dict() for q, a in self.quarters.items()},
                "flip_rate_unchanged": self.flip_rate, "flip_pixels": self.flip_pixels,
                "per_era": {k: {**v, "overall": v["overall"].to_dict()} for k, v in self.per_era.items()},
                "class_names": {str(k): v for k, v in self.names.items()}}  # fmt: skip


def _in_quarter(time: str, q: Quarter) -> bool:
    """A point's time: a quarter label (2021Q3) or an ISO date inside the quarter."""
    if "Q" in time:
        return time.strip() == str(q)
    from datetime import date

    d = date.fromisoformat(time[:10])
    return Quarter.of(d) == q


def _points(url: str, store: Store | None) -> list[dict[str, str]]:
    """Reference points from CSV or (Geo)Parquet: columns x, y (lon/lat) — or a WKB point ``geometry``
    in EPSG:4326 — plus time (a quarter label or a date) and class (the class code)."""
    import pandas as pd

    blob = read_bytes(url, store)
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
    from lpqlc.classify.inference import ModelPlugin
    from lpqlc.classify.run import predict_quarter
    from lpqlc.cluster import has_gpu_workers

    store = cfg.store
    ck = load_checkpoint(model_url, store)
    if client is not None:
        client.register_plugin(ModelPlugin(model_url, store, device))
    comp_dir = composites or default_composites_dir(cfg)
    ensure_composites(cfg, comp_dir, quarters, client)
    grid = OutputGrid.from_config(cfg)
    preds: dict[str, list[np.ndarray]] = {}
    truths: dict[str, list[np.ndarray]] = {}
    per_q: dict[str, float] = {}
    acc_q: dict[str, Accuracy] = {}
    cms: dict[str, np.ndarray] = {}
    era_qs: dict[str, list[str]] = {}
    pts = _points(points, store) if points else []
    for q in quarters:
        res = grid.grid.resolution_for(q)
        lazy = predict_quarter(cfg, comp_dir, q, ck, model_url, gpu=has_gpu_workers(client))[0]
        gbox = grid.geobox(q)
        era = era_key(res)
        era_qs.setdefault(era, []).append(str(q))
        if truth is not None:
            ref = load_files([truth.format(quarter=q)], gbox, name="truth", resampling="mode", store=store).values
            pred = _compute(lazy, client)
            c = confusion(ref, pred, ck.classes)
            preds.setdefault(era, []).append(pred)
            truths.setdefault(era, []).append(ref)
        else:
            from pyproj import Transformer

            to_grid = Transformer.from_crs("EPSG:4326", gbox.crs.to_wkt(), always_xy=True)
            t_ref, iys, ixs = [], [], []
            for r in pts:
                if not _in_quarter(str(r["time"]), q):
                    continue
                gx, gy = to_grid.transform(float(r["x"]), float(r["y"]))
                col, row = ~gbox.transform @ (gx, gy)
                iy, ix = int(np.floor(row)), int(np.floor(col))
                if 0 <= iy < lazy.shape[0] and 0 <= ix < lazy.shape[1]:
                    t_ref.append(int(r["class"]))
                    iys.append(iy)
                    ixs.append(ix)
            # only the blocks holding points (and their halo) are read and classified
            t_pred = _compute(lazy.vindex[np.asarray(iys, int), np.asarray(ixs, int)], client) if iys else []
            c = confusion(np.asarray(t_ref, np.uint8), np.asarray(t_pred, np.uint8), ck.classes)
        cms[era] = cms.get(era, 0) + c
        acc_q[str(q)] = accuracy(c, ck.classes)
        per_q[str(q)] = acc_q[str(q)].oa if c.sum() else float("nan")
    names = dict(cfg.science.landcover.classes)
    per_era: dict[str, dict[str, Any]] = {}
    flips, steps = 0.0, 0
    for era, cm in cms.items():
        t, p = truths.get(era, []), preds.get(era, [])
        fr, n = flip_rate(np.stack(t), np.stack(p)) if len(t) > 1 else (float("nan"), 0)
        flips, steps = flips + (fr * n if n else 0.0), steps + n
        per_era[era] = {"quarters": era_qs[era], "overall": accuracy(cm, ck.classes), "flip_rate_unchanged": fr, "flip_pixels": n}
    total = sum(cms.values(), np.zeros((len(ck.classes), len(ck.classes)), np.int64))
    return EvalReport(overall=accuracy(total, ck.classes), per_quarter=per_q, flip_rate=flips / steps if steps else float("nan"),
                      flip_pixels=steps, names=names, per_era=per_era, quarters=acc_q)  # fmt: skip


def _compute(x: Any, client: Any) -> np.ndarray:
    return np.asarray(client.compute(x).result() if client is not None else x.compute())


def write_report(report: EvalReport, url: str, store: Store | None) -> None:
    write_bytes(url, (json.dumps(report.to_dict(), indent=2) + "\n").encode(), store)
