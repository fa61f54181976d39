"""Stage-wise calibration of REGv1 to observations, as seed 004 plans it.

Stages (priors' 95 % intervals as bounds, ``scipy.optimize.least_squares`` with method "trf"):
(a) r_V, K_V on V(t); (b) a1, a2 on SOM(t); (c) λ1, λ2, η1 on runoff (and θ when observed); then a joint
refinement of all seven on every observed variable. A stage whose variables have no observations is
skipped and said so. Residuals are relative: (simulated − observed)/mean|observed| per variable, so
cover (fraction), SOM (%) and runoff (mm/yr) weigh alike. The thresholds θ*, SOM* stay at their priors
(their support comes from the profile likelihood in :mod:`lpqlc.regen.sensitivity`).

Uncertainty: a moving-block bootstrap of the joint fit's residuals (blocks of consecutive observations per
variable, so serial correlation survives), refitting each replicate → percentile 95 % CIs, plus the
asymptotic covariance from the Jacobian, the parameter correlation matrix and variance inflation factors.
Identifiability is stated per parameter: too few observations, a near-null direction of the scaled
Jacobian (a trade-off with others), or a bootstrap interval as wide as the prior itself.

The initial state is taken from the first observation year: V0 observed, SOM0 observed or else the SOM in
balance with V0, θ0 the moisture in balance with (V0, SOM0) and that year's rainfall (interpretation:
the seed gives no initial θ or SOM for the Loess rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpqlc.config.science import RegV1Config
from lpqlc.errors import LpqlcError
from lpqlc.regen.model import integrate, rainfall_function, runoff
from lpqlc.regen.params import RegenParams, prior_bounds

__all__ = ["STAGES", "Calibration", "ObservedSeries", "calibrate", "observed_series"]

#: Seed 004's stages: name, parameters, observed variables they are fitted to.
STAGES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("a", ("r_V", "K_V"), ("V",)),
    ("b", ("a1", "a2"), ("SOM",)),
    ("c", ("lambda1", "lambda2", "eta1"), ("runoff", "theta")),
)
JOINT: tuple[str, ...] = tuple(n for _, names, _ in STAGES for n in names)
VARIABLES: tuple[str, ...] = ("V", "SOM", "runoff", "theta")


@dataclass
class ObservedSeries:
    """One location's observations on a yearly time axis: ``t`` (years) and per variable an array
    (NaN = missing): V (fraction), SOM (%), runoff (mm/yr), theta (m³/m³); ``rainfall`` mm/yr per year."""

    location: str
    t: np.ndarray
    data: dict[str, np.ndarray]
    rainfall: np.ndarray

    def subset(self, keep: np.ndarray) -> ObservedSeries:
        return ObservedSeries(
            self.location, self.t[keep], {k: v[keep] for k, v in self.data.items()}, self.rainfall[keep]
        )

    def count(self, variables: tuple[str, ...]) -> int:
        return int(sum(np.isfinite(self.data[v]).sum() for v in variables))


def observed_series(df: Any, location: str | None = None, default_rainfall: float = 450.0) -> ObservedSeries:
    """The series of ``location`` from a frame in the seed's schema (:func:`read_observations`); with
    several locations one must be named. Missing rainfall years are interpolated; none at all →
    ``default_rainfall``."""
    locations = sorted(set(df["location"]))
    if location is None:
        if len(locations) != 1:
            raise LpqlcError(
                f"observations hold {len(locations)} locations {locations}: name one (--location)"
            )
        location = locations[0]
    if location not in locations:
        raise LpqlcError(f"no observations for location {location!r} (have {locations})")
    sub = df[df["location"] == location].sort_values("year")
    t = sub["year"].to_numpy(float)
    data = {
        "V": sub["veg_cover_%"].to_numpy(float) / 100.0,
        "SOM": sub["SOM_%"].to_numpy(float),
        "runoff": sub["runoff_mm"].to_numpy(float),
        "theta": sub["theta"].to_numpy(float) if "theta" in sub else np.full(t.size, np.nan),
    }
    rain = sub["rainfall_mm"].to_numpy(float)
    ok = np.isfinite(rain)
    rain = np.interp(t, t[ok], rain[ok]) if ok.any() else np.full(t.size, float(default_rainfall))
    if not np.isfinite(data["V"][0]):
        raise LpqlcError(
            f"location {location!r}: the first year ({int(t[0])}) needs a veg_cover_% (the initial state)"
        )
    return ObservedSeries(location, t, data, rain)


def initial_state(p: RegenParams, obs: ObservedSeries) -> np.ndarray:
    """(V0, SOM0, θ0) at the first observation year (see the module docstring)."""
    v0 = float(obs.data["V"][0])
    s0 = float(obs.data["SOM"][0]) if np.isfinite(obs.data["SOM"][0]) else p.c_som * p.a1 * v0 / p.a2
    fc = p.theta_fc0 + p.eta1 * s0 / p.Z_r
    aw = obs.rainfall[0] / p.Z_r * (p.w0 + (1 - p.w0) * v0)
    th0 = (
        float(obs.data["theta"][0])
        if np.isfinite(obs.data["theta"][0])
        else aw / (aw / fc + p.r_theta + p.u * v0)
    )
    return np.array([v0, s0, min(th0, p.porosity)])


def predict(
    p: RegenParams,
    obs: ObservedSeries,
    y0: np.ndarray | None = None,
    t0: float | None = None,
    solver: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Simulated V, SOM, runoff, theta at ``obs.t`` (from ``y0`` at ``t0``, default: the initial state at
    the first year), forced by the observed rainfall series."""
    rain = rainfall_function((obs.t, obs.rainfall))
    if y0 is None:
        y0, t0 = initial_state(p, obs), float(obs.t[0])
    t = obs.t if t0 is None or t0 == obs.t[0] else np.concatenate([[t0], obs.t])
    ys = integrate(p, np.asarray(t, float), y0, rain, **(solver or {}))[:, -obs.t.size :]
    return {"V": ys[0], "SOM": ys[1], "theta": ys[2], "runoff": runoff(ys[0], ys[1], ys[2], obs.rainfall, p)}


def _scales(obs: ObservedSeries) -> dict[str, float]:
    out = {}
    for k, v in obs.data.items():
        finite = v[np.isfinite(v)]
        out[k] = float(np.mean(np.abs(finite))) if finite.size and np.mean(np.abs(finite)) > 0 else 1.0
    return out


def _residuals(
    p: RegenParams,
    obs: ObservedSeries,
    variables: tuple[str, ...],
    scales: dict[str, float],
    solver: dict[str, Any],
) -> np.ndarray:
    try:
        sim = predict(p, obs, solver=solver)
    except LpqlcError:
        return np.concatenate([np.full(int(np.isfinite(obs.data[v]).sum()), 1e3) for v in variables])
    return np.concatenate([(sim[v] - obs.data[v])[np.isfinite(obs.data[v])] / scales[v] for v in variables])


def _fit(
    p: RegenParams,
    obs: ObservedSeries,
    names: tuple[str, ...],
    variables: tuple[str, ...],
    bounds: np.ndarray,
    scales: dict[str, float],
    solver: dict[str, Any],
    max_nfev: int | None = None,
) -> Any:
    from scipy.optimize import least_squares

    x0 = np.clip(
        p.vector(names),
        bounds[:, 0] + 1e-9 * np.ptp(bounds, axis=1),
        bounds[:, 1] - 1e-9 * np.ptp(bounds, axis=1),
    )
    max_nfev = max_nfev or 20 + 10 * len(names)
    return least_squares(
        lambda x: _residuals(p.with_vector(names, x), obs, variables, scales, solver),
        x0,
        bounds=(bounds[:, 0], bounds[:, 1]),
        method="trf",
        x_scale=np.ptp(bounds, axis=1),
        diff_step=1e-3,
        max_nfev=max_nfev,
        ftol=1e-6,
        xtol=1e-6,
    )


def _r2(sim: np.ndarray, obs: np.ndarray) -> float:
    ok = np.isfinite(obs)
    if ok.sum() < 2:
        return float("nan")
    ss_tot = float(np.sum((obs[ok] - obs[ok].mean()) ** 2))
    return float(1.0 - np.sum((sim[ok] - obs[ok]) ** 2) / ss_tot) if ss_tot > 0 else float("nan")


def _block_resample(res: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    n = res.size
    if n == 0:
        return res
    b = min(max(block, 1), n)
    starts = rng.integers(0, n - b + 1, size=int(np.ceil(n / b)))
    return np.concatenate([res[s : s + b] for s in starts])[:n]


@dataclass
class Calibration:
    """Result of :func:`calibrate`; ``as_dict`` gives its JSON form. Parameter values in their units."""

    location: str
    params: RegenParams
    names: tuple[str, ...]
    stages: list[dict[str, Any]]
    bounds: np.ndarray
    estimate: np.ndarray
    ci95: np.ndarray
    bootstrap: np.ndarray
    stderr: np.ndarray
    correlation: np.ndarray
    vif: np.ndarray
    identifiable: dict[str, bool]
    notes: dict[str, list[str]]
    metrics: dict[str, Any]
    fit_years: list[int]
    holdout_years: list[int]
    fitted: dict[str, np.ndarray] = field(default_factory=dict)
    observed: ObservedSeries | None = None

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {
            "location": self.location,
            "fit_years": self.fit_years,
            "holdout_years": self.holdout_years,
            "stages": self.stages,
            "parameters": {
                n: {
                    "estimate": num(self.estimate[i]),
                    "ci95": [num(self.ci95[i, 0]), num(self.ci95[i, 1])],
                    "prior_ci95": self.bounds[i].tolist(),
                    "stderr": num(self.stderr[i]),
                    "vif": num(self.vif[i]),
                    "identifiable": self.identifiable[n],
                    "notes": self.notes[n],
                }
                for i, n in enumerate(self.names)
            },
            "correlation": {
                "names": list(self.names),
                "matrix": [[num(v) for v in row] for row in self.correlation],
            },
            "metrics": self.metrics,
            "n_bootstrap": int(self.bootstrap.shape[0]),
            "all_parameters": self.params.as_dict(),
        }


def calibrate(
    df: Any,
    cfg: RegV1Config,
    region: str | None = None,
    *,
    location: str | None = None,
    start: RegenParams | None = None,
    n_bootstrap: int | None = None,
    holdout_years: float | None = None,
    seed: int | None = None,
    parameters: tuple[str, ...] = JOINT,
    variables: tuple[str, ...] = VARIABLES,
) -> Calibration:
    """Calibrate REGv1 for ``region`` (default ``cfg.region``) to the observations ``df`` (seed schema, one
    location or ``location``), from ``start`` (default: the priors' central values). Bootstrap replicates,
    hold-out length (years) and RNG seed default to ``cfg.n_bootstrap``, ``cfg.holdout_years``, ``cfg.seed``.
    ``parameters``: the ones to fit (default the seven of the stages); the rest stay as in ``start``.
    ``variables``: the observed variables the misfit uses (default all of V, SOM, runoff, theta present).
    """
    unknown = sorted(set(variables) - set(VARIABLES))
    if unknown or not variables:
        raise LpqlcError(
            f"calibrate: variables must be a non-empty subset of {list(VARIABLES)} (got {unknown or 'none'})"
        )
    bad = sorted(set(parameters) - set(JOINT))
    if bad or not parameters:
        raise LpqlcError(
            f"calibrate: parameters must be a non-empty subset of {list(JOINT)} (got {bad or 'none'})"
        )
    region = region or cfg.region
    p = start or RegenParams.from_config(cfg, region)
    solver = {"method": cfg.ode_method, "rtol": cfg.rtol, "atol": cfg.atol}
    n_boot = cfg.n_bootstrap if n_bootstrap is None else n_bootstrap
    hold = cfg.holdout_years if holdout_years is None else holdout_years
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    full = observed_series(df, location, cfg.rainfall_for(region))
    # hold-out period: the last `hold` years, if the fit keeps at least 3 years
    in_fit = full.t <= full.t[-1] - hold if hold > 0 else np.ones(full.t.size, bool)
    if in_fit.sum() < 3 or in_fit.all():
        in_fit = np.ones(full.t.size, bool)
    obs = full.subset(in_fit)
    scales = _scales(obs)
    observed_vars = tuple(v for v in VARIABLES if v in variables and np.isfinite(obs.data[v]).any())
    if not observed_vars:
        raise LpqlcError(
            f"location {obs.location!r}: no observations of {', '.join(variables)} in the fit years"
        )
    stages: list[dict[str, Any]] = []
    for name, all_names, variables in STAGES:
        names = tuple(n for n in all_names if n in parameters)
        if not names:
            continue
        used = tuple(v for v in variables if v in observed_vars)
        if not used:
            stages.append(
                {
                    "stage": name,
                    "parameters": list(names),
                    "variables": list(variables),
                    "skipped": "no observations of " + " or ".join(variables),
                }
            )
            continue
        r = _fit(p, obs, names, used, prior_bounds(cfg, names, region), scales, solver)
        p = p.with_vector(names, r.x)
        stages.append(
            {
                "stage": name,
                "parameters": list(names),
                "variables": list(used),
                "cost": float(r.cost),
                "n_obs": obs.count(used),
                "estimate": dict(zip(names, r.x.tolist(), strict=True)),
            }
        )
    names = tuple(n for n in JOINT if n in parameters)
    bounds = prior_bounds(cfg, names, region)
    joint = _fit(p, obs, names, observed_vars, bounds, scales, solver)
    p = p.with_vector(names, joint.x)
    m, k = joint.fun.size, len(names)
    stages.append(
        {
            "stage": "joint",
            "parameters": list(names),
            "variables": list(observed_vars),
            "cost": float(joint.cost),
            "n_obs": int(m),
        }
    )

    # asymptotic covariance, correlation, VIF
    jac = joint.jac
    dof = max(m - k, 1)
    s2 = 2.0 * float(joint.cost) / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.where(np.isfinite(corr), corr, np.nan)
    ok = np.isfinite(np.diag(corr)) & (sd > 0)
    vif = np.full(k, np.nan)
    if ok.sum() >= 1:
        vif[ok] = np.diag(np.linalg.pinv(corr[np.ix_(ok, ok)]))

    # moving-block bootstrap of the joint fit's residuals, per variable
    sim = predict(p, obs, solver=solver)
    block = cfg.block_length or int(np.ceil(obs.t.size ** (1 / 3)))
    boot = []
    for _ in range(n_boot):
        data = dict(obs.data)
        for v in observed_vars:
            okv = np.isfinite(obs.data[v])
            res = (obs.data[v] - sim[v])[okv]
            new = data[v].copy()
            new[okv] = sim[v][okv] + _block_resample(res - res.mean(), block, rng)
            data[v] = new
        rep = ObservedSeries(obs.location, obs.t, data, obs.rainfall)
        boot.append(_fit(p, rep, names, observed_vars, bounds, scales, solver, max_nfev=5 * k).x)
    boot_arr = np.array(boot).reshape(-1, k)
    ci = np.percentile(boot_arr, [2.5, 97.5], axis=0).T if n_boot >= 2 else np.full((k, 2), np.nan)

    # identifiability, said per parameter
    scaled = jac * np.ptp(bounds, axis=1)
    _, sv, vt = np.linalg.svd(scaled, full_matrices=False)
    weak = [vt[i] for i in range(sv.size) if sv[i] < 1e-2 * max(sv[0], 1e-300)]
    notes: dict[str, list[str]] = {n: [] for n in names}
    ident: dict[str, bool] = {}
    for i, n in enumerate(names):
        problems, width = [], float(np.ptp(bounds[i]))
        if m <= k:
            problems.append(f"{m} observations for {k} parameters: the data cannot identify them jointly")
        if not np.any(scaled[:, i]):
            problems.append("the observed variables do not depend on it")
        elif any(abs(v[i]) > 0.3 for v in weak) or sv.size < k:
            problems.append("on a near-flat direction of the misfit (a trade-off the data cannot resolve)")
        if n_boot >= 2 and ci[i, 1] - ci[i, 0] >= 0.8 * width:
            problems.append(
                "bootstrap 95 % interval spans ≥ 80 % of the prior interval: not constrained beyond the prior"
            )
        if not np.isfinite(sd[i]) or 3.92 * sd[i] >= width:
            problems.append("asymptotic 95 % interval (±1.96 s.e.) is wider than the prior interval")
        if np.isclose(joint.x[i], bounds[i], rtol=0, atol=1e-3 * width).any():
            problems.append("estimate on a prior bound (the data pull it outside the prior)")
        partners = [f"{names[j]} ({corr[i, j]:+.2f})" for j in range(k) if j != i and abs(corr[i, j]) > 0.9]
        remarks = [f"correlated with {', '.join(partners)}"] if partners else []
        ident[n] = not problems
        notes[n] = problems + remarks

    # goodness of fit: R² on the fit period, relative RMSE on the hold-out period
    metrics: dict[str, Any] = {"target_r2": cfg.target_r2, "target_holdout_rmse": cfg.target_holdout_rmse}
    for v in ("V", "SOM"):
        metrics[f"r2_{v}"] = _r2(sim[v], obs.data[v])
        metrics[f"r2_{v}_meets_target"] = (
            bool(metrics[f"r2_{v}"] >= cfg.target_r2) if np.isfinite(metrics[f"r2_{v}"]) else None
        )
    held = ~in_fit
    fitted = predict(p, full, solver=solver)
    for v in ("V", "SOM", "runoff"):
        okh = held & np.isfinite(full.data[v])
        if okh.any():
            rmse = float(np.sqrt(np.mean((fitted[v][okh] - full.data[v][okh]) ** 2)))
            rel = rmse / float(np.mean(np.abs(full.data[v][okh])))
            metrics[f"holdout_rmse_{v}"], metrics[f"holdout_rel_rmse_{v}"] = rmse, rel
            metrics[f"holdout_{v}_meets_target"] = bool(rel <= cfg.target_holdout_rmse)
    for key, val in list(metrics.items()):
        if isinstance(val, float) and not np.isfinite(val):
            metrics[key] = None
    return Calibration(
        full.location,
        p,
        names,
        stages,
        bounds,
        joint.x,
        ci,
        boot_arr,
        sd,
        corr,
        vif,
        ident,
        notes,
        metrics,
        [int(y) for y in obs.t],
        [int(y) for y in full.t[held]],
        fitted,
        full,
    )
