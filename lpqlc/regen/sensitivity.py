"""Sensitivity of REGv1: Sobol indices (SALib) over the priors' 95 % intervals, and profile likelihoods of
the thresholds θ*, SOM* against calibration data.

Sobol: SALib's Saltelli/Sobol-sequence sample of the nine seed parameters, uniform over their 95 %
intervals (N·(D+2) model runs, no second-order terms), each run giving V and SOM at a horizon (years)
from a degraded start and V_crit at the rainfall. V_crit where the system is not bistable is given its
limit value so every run has a number: 0 when the vegetated state is the only stable one (any cover
recovers), 1 when the bare state is (no cover recovers) — an interpretation, said in docs/regv1.md.

Profile likelihood: for each value of a threshold on a grid over its prior interval, the threshold is
fixed and the calibrated parameters refitted; with Gaussian errors the deviance n·ln(RSS/RSS_min) below
χ²₁(0.95) = 3.84 bounds the 95 % interval. V_crit at each grid point shows how the tipping point moves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lpqlc.config.science import RegV1Config
from lpqlc.errors import LpqlcError
from lpqlc.regen.calibrate import Calibration, _fit, _scales
from lpqlc.regen.equilibria import equilibria, slaved_state
from lpqlc.regen.model import integrate
from lpqlc.regen.params import FITTED, RegenParams, prior_bounds

__all__ = ["OUTPUTS", "profile_likelihood", "sobol_indices", "v_crit_or_limit"]

OUTPUTS: tuple[str, ...] = ("V", "SOM", "V_crit")
CHI2_95 = 3.841458820694124


def v_crit_or_limit(p: RegenParams, rainfall: float) -> float:
    """V_crit (fraction) at ``rainfall`` mm/yr, or its limit when not bistable: 0 if only a vegetated
    state is stable, 1 if only the bare state is."""
    eqs = equilibria(p, rainfall, extra_starts=0)
    stable = [e.V for e in eqs if e.stable]
    saddles = [e.V for e in eqs if not e.stable and len(stable) >= 2 and min(stable) < e.V < max(stable)]
    if saddles:
        return float(saddles[0])
    return 0.0 if stable and max(stable) > 1e-9 else 1.0


def sobol_indices(
    cfg: RegV1Config,
    region: str | None = None,
    *,
    outputs: tuple[str, ...] = OUTPUTS,
    n: int | None = None,
    seed: int | None = None,
    rainfall: float | None = None,
    horizon: float | None = None,
    y0: tuple[float, float] = (0.1, 0.3),
    names: tuple[str, ...] = FITTED,
) -> dict[str, Any]:
    """First- and total-order Sobol indices of ``outputs`` (``V``, ``SOM`` at ``horizon`` years from
    (V0, SOM0) = ``y0`` with θ0 in balance; ``V_crit``) over the priors of ``names`` for ``region``.

    ``n`` (base sample, a power of 2; default ``cfg.sobol_n``), ``seed`` (default ``cfg.seed``), rainfall
    mm/yr (default: the region's). Returns ``{"names", "n_runs", output: {"S1", "S1_conf", "ST",
    "ST_conf"}}`` with lists in the order of ``names``; the same seed gives the same indices.
    """
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import sobol as sobol_sample

    bad = sorted(set(outputs) - set(OUTPUTS))
    if bad:
        raise LpqlcError(f"unknown Sobol output(s) {bad} (known: {list(OUTPUTS)})")
    region = region or cfg.region
    n = n or cfg.sobol_n
    seed = cfg.seed if seed is None else seed
    rain = float(cfg.rainfall_for(region) if rainfall is None else rainfall)
    horizon = float(horizon or cfg.horizon_years)
    base = RegenParams.from_config(cfg, region)
    problem = {
        "num_vars": len(names),
        "names": list(names),
        "bounds": prior_bounds(cfg, names, region).tolist(),
    }
    x = sobol_sample.sample(problem, n, calc_second_order=False, seed=seed)
    opts = {"method": cfg.ode_method, "rtol": cfg.rtol, "atol": cfg.atol}
    t = np.array([0.0, horizon])
    y = {o: np.empty(len(x)) for o in outputs}
    for i, row in enumerate(x):
        p = base.with_vector(names, row)
        if "V" in outputs or "SOM" in outputs:
            _, th0 = slaved_state(y0[0], p, rain)
            end = integrate(p, t, [y0[0], y0[1], float(th0)], lambda _t: rain, **opts)[:, -1]
            if "V" in outputs:
                y["V"][i] = end[0]
            if "SOM" in outputs:
                y["SOM"][i] = end[1]
        if "V_crit" in outputs:
            y["V_crit"][i] = v_crit_or_limit(p, rain)
    result: dict[str, Any] = {
        "names": list(names),
        "n_base": n,
        "n_runs": len(x),
        "seed": seed,
        "rainfall_mm": rain,
        "horizon_years": horizon,
        "y0": list(y0),
    }
    for o in outputs:
        if np.ptp(y[o]) == 0:
            result[o] = {"constant": float(y[o][0])}
            continue
        si = sobol_analyze.analyze(problem, y[o], calc_second_order=False, seed=seed)
        result[o] = {k: [float(v) for v in si[k]] for k in ("S1", "S1_conf", "ST", "ST_conf")}
    return result


def profile_likelihood(
    cal: Calibration,
    cfg: RegV1Config,
    region: str | None = None,
    *,
    names: tuple[str, ...] = ("theta_star", "SOM_star"),
    points: int | None = None,
    rainfall: float | None = None,
) -> dict[str, Any]:
    """Profile likelihood of each threshold in ``names`` over its prior interval (``points`` values,
    default ``cfg.profile_points``), refitting ``cal.names`` each time on the calibration's fit years.

    Returns per name: the grid, the deviance n·ln(RSS/RSS_min), the 95 % interval (grid points with
    deviance ≤ 3.84; ``None`` ends where it reaches the prior bound), and V_crit at each point
    (``rainfall`` mm/yr, default the mean observed rainfall)."""
    if cal.observed is None:
        raise LpqlcError("profile_likelihood needs a calibration that kept its observations")
    region = region or cfg.region
    points = points or cfg.profile_points
    keep = np.isin(cal.observed.t, np.asarray(cal.fit_years, float))
    obs = cal.observed.subset(keep)
    rain = float(np.mean(obs.rainfall) if rainfall is None else rainfall)
    variables = tuple(v for v in ("V", "SOM", "runoff", "theta") if np.isfinite(obs.data[v]).any())
    scales = _scales(obs)
    solver = {"method": cfg.ode_method, "rtol": cfg.rtol, "atol": cfg.atol}
    free = tuple(n for n in cal.names if n not in names)
    out: dict[str, Any] = {"rainfall_mm": rain}
    for name in names:
        lo, hi = prior_bounds(cfg, (name,), region)[0]
        grid = np.linspace(lo, hi, points)
        rss, vcrit = [], []
        for value in grid:
            p = cal.params.with_(**{name: float(value)})
            r = _fit(
                p,
                obs,
                free,
                variables,
                prior_bounds(cfg, free, region),
                scales,
                solver,
                max_nfev=30 * len(free),
            )
            p = p.with_vector(free, r.x)
            rss.append(2.0 * float(r.cost))
            vcrit.append(v_crit_or_limit(p, rain))
        rss_a = np.array(rss)
        m = sum(int(np.isfinite(obs.data[v]).sum()) for v in variables)
        dev = m * np.log(rss_a / max(rss_a.min(), 1e-300))
        inside = grid[dev <= CHI2_95]
        out[name] = {
            "grid": grid.tolist(),
            "deviance": dev.tolist(),
            "best": float(grid[int(np.argmin(dev))]),
            "ci95": [
                None if inside.min() <= lo else float(inside.min()),
                None if inside.max() >= hi else float(inside.max()),
            ],
            "v_crit": vcrit,
            "identified": bool(inside.min() > lo or inside.max() < hi),
        }
    return out
