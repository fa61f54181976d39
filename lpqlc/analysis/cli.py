"""``lpqlc analyse``: the paper's analyses on the published products (registered in lpqlc/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lpqlc.analysis.run import ANALYSES

__all__ = ["analyse"]


def analyse(
    config: Annotated[Path, typer.Option(help="Pipeline YAML (its publish root holds the products).")],
    what: Annotated[
        str, typer.Option(help=f"Comma-separated analyses: {','.join(ANALYSES)} (default: all).")
    ] = "",
    out_url: Annotated[
        str | None, typer.Option("--out", help="Output folder (default <storage>/analysis).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            help="CSV (year, eroded_pct) to compare the eroded share with, e.g. the "
            "bulletin table lpqlc/data/bulletin_eroded.csv."
        ),
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Datacube resolution in m (default: finest).")
    ] = None,
) -> None:
    """Areas, transitions + Sankey + when maps, trends (published as STAC), cumulative erosion, terrain,
    attribution and reference comparison, as CSV/PNG/COG and a markdown section."""
    from lpqlc.analysis.report import default_out
    from lpqlc.analysis.run import run_analyses
    from lpqlc.cli import _progress, _ticker, out
    from lpqlc.cluster import open_client
    from lpqlc.config import load_config

    cfg = load_config(config)
    chosen = [w.strip() for w in what.split(",") if w.strip()] or list(ANALYSES)
    dest = out_url or default_out(cfg)
    with open_client(cfg.cluster) as client, _progress() as bar:
        res = run_analyses(
            cfg,
            dest,
            what=chosen,
            reference=reference,
            resolution=resolution,
            client=client,
            progress=_ticker(bar, "analyse"),
        )
    out.print(
        f"{len(res.files)} file(s) under {res.out}; {len(res.items)} trend item(s) published", soft_wrap=True
    )
    for name, why in res.skipped.items():
        out.print(f"skipped {name}: {why}", soft_wrap=True)
