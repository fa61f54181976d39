"""``lpqlc scenario``: the restoration scenario of one quarter (registered in :mod:`lpqlc.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["scenario"]


def scenario(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarter: Annotated[
        str | None,
        typer.Option(
            help="Quarter whose land cover is reallocated (default science.analysis.scenario.quarter)."
        ),
    ] = None,
    out_url: Annotated[
        str | None, typer.Option("--out", help="Output folder (default <storage.url>/scenario/<quarter>).")
    ] = None,
    landcover: Annotated[
        str | None,
        typer.Option(
            help="Baseline land cover: a path/URL template with {quarter} (default: the published items)."
        ),
    ] = None,
    composites: Annotated[
        str | None, typer.Option(help="Folder of composites (default <storage.url>/composites).")
    ] = None,
    erosion: Annotated[
        str | None,
        typer.Option(help="Erosion job folder holding static/ layers (default <storage.url>/erosion)."),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish/--no-publish", help="Publish the scenario collection.")
    ] = True,
) -> None:
    """Optimised land cover by suitability and its RUSLE erosion: COGs, CSVs, PNGs, a report section, and
    the scenario collection with lineage to the baseline items."""
    from lpqlc.analysis.scenario_run import run_scenario
    from lpqlc.cli import _progress, _quarters, _ticker, out
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config
    from lpqlc.errors import ConfigError

    cfg = load_config(config)
    qs = _quarters(quarter or cfg.science.analysis.scenario.quarter, "--quarter")
    if len(qs) != 1:
        raise ConfigError(f"--quarter takes one quarter, got {quarter!r}")
    with open_client(cfg.cluster) as client, _progress() as bar:
        run = run_scenario(
            cfg,
            qs[0],
            out_url,
            landcover=landcover,
            composites=composites,
            erosion=erosion,
            publish=publish,
            client=client,
            progress=_ticker(bar, "scenario"),
        )
    whole = run.summary[run.summary.subregion == "ALL"].iloc[0]
    out.print(
        f"scenario {run.quarter} ({run.period}): mean soil loss {whole.mean_erosion_baseline:.4g} → "
        f"{whole.mean_erosion_scenario:.4g} {whole.unit} ({whole.change_pct:+.1f} %), "
        f"{whole.converted_km2:.4g} km² converted, {len(run.tiles)} tile(s) under {run.prefix}",
        soft_wrap=True,
    )
    for f in (run.summary_csv, run.matrix_csv, run.report, *run.plots):
        out.print(f"wrote: {f}", soft_wrap=True)
    if run.collection:
        out.print(f"published: {run.collection} ({len(run.items)} item(s))", soft_wrap=True)
