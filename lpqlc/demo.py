"""The offline main job on the embedded default, start to finish on a local Dask cluster:

sample archive (a static STAC catalog of synthetic Sentinel-2/Landsat/ancillary COGs) → the small
CCTS model trained on the spot (its checkpoints are reused by the next run) → ``lpqlc run``'s chain
for the chosen quarters (composite → classify → refine → publish land cover → erosion → publish
erosion → catalog, kerchunk datacubes, stac-geoparquet) → quicklooks and a small report.

No server and no network are needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lpqlc.config import load_config
from lpqlc.config.pipeline import PipelineConfig
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate

__all__ = ["DemoResult", "run_demo", "DEMO_EPOCHS"]

log = logging.getLogger(__name__)

#: A short CCTS schedule (25 steps an epoch): a couple of minutes on 2 CPU cores.
DEMO_EPOCHS = {"contrastive": 1, "supervised": 6, "refine": 2}


@dataclass
class DemoResult:
    archive: SampleArchive
    config: PipelineConfig
    model: str
    summary: Any
    report: Any
    quicklooks: list[str]
    analysis: Any = None


def demo_config(config: str | Path, out: Path, archive: SampleArchive, quarters: list[Quarter],
                epochs: dict[str, int]) -> PipelineConfig:  # fmt: skip
    """The pipeline config with the demo's catalog, storage, period (the quarters and the label year)
    and training schedule."""
    cfg = load_config(config)
    year = cfg.science.landcover.label_year
    start = min(quarters[0], Quarter(year, 1))
    end = max(quarters[-1], Quarter(year, 4))
    science = cfg.science.model_copy(update={"ccts": cfg.science.ccts.model_copy(update={"epochs": dict(epochs)})})
    return cfg.model_copy(update={
        "sources": cfg.sources.model_copy(update={"catalog": archive.catalog, "stac_api": None}),
        "storage": cfg.storage.model_copy(update={"url": str(out / "store")}),
        "period": cfg.period.model_copy(update={"start": start, "end": end}),
        "science": science,
    })  # fmt: skip


def _archive(out: Path, spec: SampleSpec) -> SampleArchive:
    """Generate the archive, or reuse the one a previous demo made with the same spec."""
    marker = out / "archive" / "lpqlc-demo-spec.json"
    key = {"seed": spec.seed, "size": spec.size, "start": str(spec.start), "end": str(spec.end)}
    if marker.exists() and (out / "archive" / "catalog.json").exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == key:
            return SampleArchive(**saved["archive"])
    archive = generate(str(out / "archive"), spec)
    marker.write_text(json.dumps({"spec": key, "archive": asdict(archive)}))
    return archive


def run_demo(config: str | Path, out: str | Path, spec: SampleSpec, quarters: list[Quarter], *,
             epochs: dict[str, int] | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> DemoResult:  # fmt: skip
    """Archive → model → chain → report under ``out``; ``quarters`` are the quarters published."""
    from lpqlc.cluster import open_client
    from lpqlc.model.jobs import train_job
    from lpqlc.pipeline import run_pipeline, work_dirs
    from lpqlc.report import make_report

    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    archive = _archive(out, spec)
    epochs = epochs or DEMO_EPOCHS
    cfg = demo_config(config, out, archive, quarters, epochs)
    tag = "-".join(f"{k}{v}" for k, v in epochs.items())
    model_dir = out / f"model-seed{spec.seed}-{tag}"
    with open_client(cfg.cluster) as client:
        trained = train_job(cfg, ("contrastive", "supervised", "refine"), str(model_dir), client=client,
                            progress=(lambda stage, e, n, loss: progress(f"train {stage}", e, n)) if progress else None)  # fmt: skip
        summary = run_pipeline(cfg, quarters, model=trained.checkpoint, client=client, progress=progress)
    from lpqlc.analysis.report import default_out
    from lpqlc.analysis.run import ANALYSES, run_analyses  # what the period allows; the rest named as skipped

    analysis = run_analyses(cfg, default_out(cfg), what=[a for a in ANALYSES if a != "control"])
    analysis.skipped["control"] = ("not run by the demo (a second erosion run of a year, kept out of its "
                                   "minutes): `lpqlc analyse --what control` on its output runs it")
    report = make_report(cfg, str(out / "report"))
    comp = work_dirs(cfg)["composites"]
    quicklooks = [f"{comp}/{q}/quicklook.png" for q in summary.quarters if (Path(comp) / str(q) / "quicklook.png").exists()]
    return DemoResult(archive=archive, config=cfg, model=trained.checkpoint, summary=summary, report=report,
                      quicklooks=quicklooks, analysis=analysis)  # fmt: skip
