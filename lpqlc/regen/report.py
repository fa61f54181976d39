"""The ``lpqlc regen`` commands' work: run, write a JSON report and PNG figures under an output folder
(local path or ``s3://``; files written atomically through :mod:`lpqlc.storage`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpqlc.config.science import RegV1Config
from lpqlc.errors import LpqlcError
from lpqlc.publish.preview import write_png
from lpqlc.regen import plots
from lpqlc.regen.calibrate import calibrate, initial_state, observed_series
from lpqlc.regen.equilibria import bifurcation, equilibria
from lpqlc.regen.model import simulate, solver_options
from lpqlc.regen.observations import EXAMPLES, example_path, read_observations
from lpqlc.regen.params import RegenParams
from lpqlc.regen.sensitivity import profile_likelihood, sobol_indices
from lpqlc.storage import Store, write_bytes

__all__ = ["RegenRun", "default_data", "run_calibrate", "run_equilibria", "run_sensitivity", "run_simulate"]


@dataclass
class RegenRun:
    """What a command wrote: the JSON report's URL, the figures, and the report itself."""

    report: str
    files: list[str] = field(default_factory=list)
    content: dict[str, Any] = field(default_factory=dict)


def default_data(region: str) -> str | None:
    """The seed's example CSV for ``region`` (None if the seed has none)."""
    for name, reg in EXAMPLES.items():
        if reg == region:
            return example_path(name)
    return None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finish(out: str, name: str, content: dict[str, Any], files: list[str], store: Store | None) -> RegenRun:
    url = f"{out.rstrip('/')}/{name}"
    text = json.dumps({**content, "files": files}, indent=1, default=_json_default, allow_nan=False)
    write_bytes(url, text.encode(), store)
    return RegenRun(url, files, content)


def _sanitize(x: Any) -> Any:
    """NaN/inf → None, recursively (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _sanitize(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_sanitize(v) for v in x]
    if isinstance(x, float | np.floating) and not np.isfinite(x):
        return None
    return x


def run_simulate(
    cfg: RegV1Config,
    out: str,
    *,
    region: str | None = None,
    data: str | None = None,
    years: float = 50.0,
    y0: tuple[float, float, float] | None = None,
    store: Store | None = None,
) -> RegenRun:
    """Simulate ``region`` with its prior central values: from the first row of ``data`` (seed CSV) over
    its rainfall, else from ``y0`` = (V, SOM %, θ) (default a degraded state) at the region's rainfall for
    ``years``. Writes simulate.json, trajectories.png, phase_plane.png."""
    region = region or cfg.region
    p = RegenParams.from_config(cfg, region)
    opts = solver_options(cfg)
    obs = None
    if data:
        obs = observed_series(read_observations(data, store), default_rainfall=cfg.rainfall_for(region))
        t = np.arange(obs.t[0], max(obs.t[-1], obs.t[0] + years) + 0.5, 1.0)
        ds = simulate(p, t, initial_state(p, obs), (obs.t, obs.rainfall), **opts)
    else:
        start = y0 or (0.1, 0.3, 0.1)
        ds = simulate(p, np.arange(0.0, years + 0.5, 1.0), start, cfg.rainfall_for(region), **opts)
    rain = float(np.mean(ds["rainfall"].values))
    eqs = equilibria(p, rain)
    files = [
        write_png(
            plots.trajectory_figure(
                ds,
                obs.data if obs else None,
                obs.t if obs else None,
                title=f"REGv1 {region}: prior central values",
            ),
            f"{out}/trajectories.png",
            store,
        ),
        write_png(plots.phase_plane_figure(p, rain, eqs), f"{out}/phase_plane.png", store),
    ]
    content = {
        "command": "simulate",
        "region": region,
        "data": data,
        "parameters": p.as_dict(),
        "solver": opts,
        "trajectory": {v: ds[v].values.tolist() for v in ("V", "SOM", "theta", "runoff", "rainfall")}
        | {"time": ds["time"].values.tolist()},
        "equilibria_at_mean_rainfall": [e.as_dict() for e in eqs],
    }
    return _finish(out, "simulate.json", _sanitize(content), files, store)


def run_equilibria(
    cfg: RegV1Config,
    out: str,
    *,
    region: str | None = None,
    rainfall: float | None = None,
    rainfall_range: tuple[float, float, int] = (100.0, 1000.0, 46),
    store: Store | None = None,
) -> RegenRun:
    """Equilibria and stability at ``rainfall`` (default: the region's) and the bifurcation diagram
    over ``rainfall_range`` (mm/yr: lo, hi, points). Writes equilibria.json, bifurcation.png and
    phase_plane.png."""
    region = region or cfg.region
    p = RegenParams.from_config(cfg, region)
    rain = float(cfg.rainfall_for(region) if rainfall is None else rainfall)
    eqs = equilibria(p, rain)
    bif = bifurcation(p, rainfall_range)
    files = [
        write_png(
            plots.bifurcation_figure(bif, f"REGv1 {region}: equilibrium V against rainfall"),
            f"{out}/bifurcation.png",
            store,
        ),
        write_png(plots.phase_plane_figure(p, rain, eqs), f"{out}/phase_plane.png", store),
    ]
    stable = [e for e in eqs if e.stable]
    content = {
        "command": "equilibria",
        "region": region,
        "rainfall_mm": rain,
        "parameters": p.as_dict(),
        "equilibria": [e.as_dict() for e in eqs],
        "bistable_here": len(stable) >= 2,
        "bifurcation": bif.as_dict(),
    }
    return _finish(out, "equilibria.json", _sanitize(content), files, store)


def run_calibrate(
    cfg: RegV1Config,
    out: str,
    *,
    region: str | None = None,
    data: str | None = None,
    location: str | None = None,
    n_bootstrap: int | None = None,
    variables: tuple[str, ...] | None = None,
    store: Store | None = None,
) -> RegenRun:
    """Calibrate ``region`` to ``data`` (seed CSV; default the seed's example for the region). Writes
    calibration.json, trajectories.png (fit and hold-out), bootstrap.png."""
    region = region or cfg.region
    data = data or default_data(region)
    if not data:
        raise LpqlcError(f"no --data given and the seed has no example data for region {region!r}")
    df = read_observations(data, store)
    extra = {"variables": tuple(variables)} if variables else {}
    cal = calibrate(df, cfg, region, location=location, n_bootstrap=n_bootstrap, **extra)
    obs = cal.observed
    assert obs is not None
    t = np.arange(obs.t[0], obs.t[-1] + 0.5, 1.0) if obs.t[-1] - obs.t[0] >= 2 else obs.t
    ds = simulate(cal.params, t, initial_state(cal.params, obs), (obs.t, obs.rainfall), **solver_options(cfg))
    hold = float(cal.holdout_years[0]) if cal.holdout_years else None
    files = [
        write_png(
            plots.trajectory_figure(ds, obs.data, obs.t, hold, f"REGv1 {region} fitted to {obs.location}"),
            f"{out}/trajectories.png",
            store,
        ),
        write_png(
            plots.bootstrap_figure(cal.names, cal.bootstrap, cal.estimate, cal.bounds, cal.ci95),
            f"{out}/bootstrap.png",
            store,
        ),
    ]
    unidentified = [n for n, ok in cal.identifiable.items() if not ok]
    content = {
        "command": "calibrate",
        "region": region,
        "data": data,
        **cal.as_dict(),
        "statement": (
            "every fitted parameter is identified by these data"
            if not unidentified
            else f"the data cannot identify {', '.join(unidentified)}: their values stay "
            "governed by the priors (see notes per parameter)"
        ),
    }
    return _finish(out, "calibration.json", _sanitize(content), files, store)


def run_sensitivity(
    cfg: RegV1Config,
    out: str,
    *,
    region: str | None = None,
    data: str | None = None,
    n: int | None = None,
    profile: bool = True,
    store: Store | None = None,
) -> RegenRun:
    """Sobol indices of V, SOM (at ``cfg.horizon_years``) and V_crit over the priors; with data (default
    the seed's example for the region) and ``profile``, also the profile likelihood of θ* and SOM* after a
    calibration without bootstrap. Writes sensitivity.json, sobol.png (and profile.png)."""
    region = region or cfg.region
    sob = sobol_indices(cfg, region, n=n)
    files = [write_png(plots.sobol_figure(sob), f"{out}/sobol.png", store)]
    content: dict[str, Any] = {"command": "sensitivity", "region": region, "sobol": sob}
    data = data or default_data(region)
    if profile and data:
        cal = calibrate(read_observations(data, store), cfg, region, n_bootstrap=0)
        prof = profile_likelihood(cal, cfg, region)
        files.append(write_png(plots.profile_figure(prof), f"{out}/profile.png", store))
        content["profile_likelihood"] = {"data": data, **prof}
    return _finish(out, "sensitivity.json", _sanitize(content), files, store)
