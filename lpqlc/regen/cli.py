"""``lpqlc regen simulate | equilibria | calibrate | sensitivity``: REGv1 from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lpqlc.config.science import RegV1Config
from lpqlc.storage import Store

app = typer.Typer(
    help="REGv1 vegetation–SOM–moisture model (seed 004): simulate, equilibria, calibrate, sensitivity.",
    no_args_is_help=True,
)
out = Console()

Config = Annotated[
    Path | None, typer.Option(help="Pipeline YAML whose science.regv1 is used (default: built-in).")
]
Region = Annotated[str | None, typer.Option(help="Region of the priors: LoessPlateau or ChihuahuanDesert.")]
Data = Annotated[
    str | None, typer.Option(help="Observations CSV in the seed's schema (default: the seed's example).")
]
Out = Annotated[str, typer.Option("--out", help="Output folder (local path or s3://bucket/prefix).")]


def _cfg(config: Path | None, region: str | None) -> tuple[RegV1Config, str | None]:
    from lpqlc.config import load_config

    if config is None:
        cfg = RegV1Config()
        return cfg, region
    pipe = load_config(config)
    return pipe.science.regv1, region


def _store(config: Path | None) -> Store | None:
    """The pipeline config's storage object (None without a config: the environment's settings)."""
    if config is None:
        return None
    from lpqlc.config import load_config

    return load_config(config).store


def _check_region(cfg: RegV1Config, region: str | None) -> str:
    from lpqlc.errors import ConfigError

    region = region or cfg.region
    if region not in cfg.priors:
        raise ConfigError(f"--region: {region!r} has no priors (have {sorted(cfg.priors)})")
    return region


def _print(run: object) -> None:
    out.print(f"report: {run.report}", soft_wrap=True)  # type: ignore[attr-defined]
    for f in run.files:  # type: ignore[attr-defined]
        out.print(f"plot: {f}", soft_wrap=True)


@app.command("simulate")
def simulate_cmd(
    config: Config = None,
    region: Region = None,
    data: Data = None,
    out_dir: Out = "regen-out",
    years: Annotated[float, typer.Option(help="Years to simulate (beyond the data's span).")] = 50.0,
) -> None:
    """Trajectories of V, SOM, θ and runoff with the priors' central values, and the phase plane."""
    from lpqlc.regen.report import run_simulate

    cfg, region = _cfg(config, region)
    _print(
        run_simulate(
            cfg,
            out_dir,
            region=_check_region(cfg, region),
            data=data,
            years=years,
            store=_store(config),
        )
    )


@app.command("equilibria")
def equilibria_cmd(
    config: Config = None,
    region: Region = None,
    out_dir: Out = "regen-out",
    rainfall: Annotated[float | None, typer.Option(help="Rainfall, mm/yr (default science.regv1).")] = None,
    p_min: Annotated[float, typer.Option(help="Bifurcation diagram: lowest rainfall, mm/yr.")] = 100.0,
    p_max: Annotated[float, typer.Option(help="Bifurcation diagram: highest rainfall, mm/yr.")] = 1000.0,
    points: Annotated[int, typer.Option(help="Bifurcation diagram: rainfall values.")] = 46,
) -> None:
    """Fixed points, their stability, the bistable rainfall range and V_crit (bifurcation diagram)."""
    from lpqlc.regen.report import run_equilibria

    cfg, region = _cfg(config, region)
    run = run_equilibria(
        cfg,
        out_dir,
        region=_check_region(cfg, region),
        rainfall=rainfall,
        rainfall_range=(p_min, p_max, points),
        store=_store(config),
    )
    for e in run.content["equilibria"]:
        out.print(
            f"V={e['V']:.4f} SOM={e['SOM']:.4f} θ={e['theta']:.4f} {'stable' if e['stable'] else 'unstable'}"
        )
    _print(run)


@app.command("calibrate")
def calibrate_cmd(
    config: Config = None,
    region: Region = None,
    data: Data = None,
    out_dir: Out = "regen-out",
    location: Annotated[str | None, typer.Option(help="Location in the CSV (when it holds several).")] = None,
    bootstrap: Annotated[
        int | None, typer.Option(help="Bootstrap replicates (default science.regv1).")
    ] = None,
    fit: Annotated[
        str | None,
        typer.Option(help="Observed variables the misfit uses, e.g. V,SOM (default: all present)."),
    ] = None,
) -> None:
    """Stage-wise least squares within the priors, block-bootstrap CIs, fit metrics, identifiability."""
    from lpqlc.regen.report import run_calibrate

    cfg, region = _cfg(config, region)
    run = run_calibrate(
        cfg,
        out_dir,
        region=_check_region(cfg, region),
        data=data,
        location=location,
        n_bootstrap=bootstrap,
        variables=tuple(v.strip() for v in fit.split(",") if v.strip()) if fit else None,
        store=_store(config),
    )
    out.print(run.content["statement"], soft_wrap=True)
    _print(run)


@app.command("sensitivity")
def sensitivity_cmd(
    config: Config = None,
    region: Region = None,
    data: Data = None,
    out_dir: Out = "regen-out",
    n: Annotated[int | None, typer.Option(help="Sobol base sample (power of 2).")] = None,
    profile: Annotated[bool, typer.Option(help="Also profile θ* and SOM* against the data.")] = True,
) -> None:
    """Sobol first/total-order indices over the priors; profile likelihood of θ* and SOM*."""
    from lpqlc.regen.report import run_sensitivity

    cfg, region = _cfg(config, region)
    _print(
        run_sensitivity(
            cfg,
            out_dir,
            region=_check_region(cfg, region),
            data=data,
            n=n,
            profile=profile,
            store=_store(config),
        )
    )
