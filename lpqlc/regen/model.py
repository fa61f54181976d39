"""The REGv1 ODEs (SCIENCE.md §5) and their integration with scipy's ``solve_ivp``.

State y = (V, SOM, θ): V fractional vegetation cover (0–1), SOM soil organic matter (% of topsoil mass),
θ volumetric soil moisture (m³/m³); time t in years (calendar years are fine: only differences matter,
except for a rainfall series, which is looked up at t)::

    dV/dt   = V·[r_V·(1 − V/K_V) + λ1·(θ − θ*) + λ2·(SOM − SOM*)]
    dSOM/dt = c_SOM·a1·V − a2·SOM
    dθ/dt   = (P/Z_r)·w(V)·(1 − θ/θ_fc) − r_θ·θ − u·V·θ,   w(V) = w0 + (1 − w0)·V,  θ_fc = θ_fc0 + η1·SOM/Z_r

The right-hand side is evaluated on the state clipped to V ∈ [0, 1], SOM ≥ 0, θ ∈ [0, porosity], and a
derivative that would push a clipped component further out is set to zero, so trajectories stay in the
physical box (SCIENCE.md: "clip V to [0, 1] and θ to [0, porosity]"). The analytic Jacobian is given to
the stiff solvers. Runoff is a diagnostic: the rainfall that does not enter the bucket,
``P·(1 − w(V)·max(0, 1 − θ/θ_fc))`` in mm/yr (our interpretation; the seed names runoff but not its form).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lpqlc.config.science import RegV1Config
from lpqlc.errors import LpqlcError
from lpqlc.regen.params import RegenParams

__all__ = [
    "Rainfall",
    "integrate",
    "rainfall_function",
    "rhs",
    "jacobian",
    "runoff",
    "simulate",
    "solver_options",
    "STATE",
]

#: State variable names, in the order of the state vector.
STATE: tuple[str, str, str] = ("V", "SOM", "theta")

#: Rainfall in mm/yr: a constant, or a series as (years, values) or a pandas Series indexed by year.
Rainfall = float | tuple[Sequence[float], Sequence[float]] | Any


def rainfall_function(rainfall: Rainfall) -> Callable[[float], float]:
    """P(t) in mm/yr: a constant, or a natural cubic spline through a yearly series (constant beyond
    its ends)."""
    if np.isscalar(rainfall):
        value = float(rainfall)  # type: ignore[arg-type]
        if not np.isfinite(value) or value < 0:
            raise LpqlcError(f"rainfall must be a finite number ≥ 0 mm/yr, got {rainfall!r}")
        return lambda t: value
    if hasattr(rainfall, "index") and hasattr(rainfall, "to_numpy"):
        t_s, p_s = np.asarray(rainfall.index, float), rainfall.to_numpy(float)
    else:
        t_s, p_s = (np.asarray(a, float) for a in rainfall)  # type: ignore[union-attr]
    ok = np.isfinite(t_s) & np.isfinite(p_s)
    t_s, p_s = t_s[ok], p_s[ok]
    if t_s.size == 0:
        raise LpqlcError("rainfall series has no finite values")
    if (p_s < 0).any():
        raise LpqlcError("rainfall series has negative values (mm/yr must be ≥ 0)")
    order = np.argsort(t_s)
    t_s, p_s = t_s[order], p_s[order]
    if t_s.size == 1:
        value = float(p_s[0])
        return lambda t: value
    # a C² cubic spline (clipped at 0 mm/yr): kinks at the yearly nodes (linear or PCHIP interpolation)
    # force the stiff solver into three times as many steps
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(t_s, p_s, bc_type="natural", extrapolate=False)
    lo, hi = float(t_s[0]), float(t_s[-1])
    return lambda t: max(float(spline(min(max(t, lo), hi))), 0.0)


#: Safety limits of one integration: right-hand-side calls, and switches at the wall V = 1.
MAX_RHS_CALLS = 200_000
MAX_SEGMENTS = 50


class _TooManySteps(Exception):
    pass


def _clip(y: np.ndarray, p: RegenParams) -> np.ndarray:
    return np.array([min(max(y[0], 0.0), 1.0), max(y[1], 0.0), min(max(y[2], 0.0), p.porosity)])


def _terms(y: np.ndarray, p: RegenParams, rain: float) -> tuple[float, ...]:
    v, s, th = y
    w = p.w0 + (1.0 - p.w0) * v
    fc = p.theta_fc0 + p.eta1 * s / p.Z_r
    a = rain / p.Z_r
    g = p.r_V * (1.0 - v / p.K_V) + p.lambda1 * (th - p.theta_star) + p.lambda2 * (s - p.SOM_star)
    return v, s, th, w, fc, a, g


def rhs(t: float, y: np.ndarray, p: RegenParams, rain: Callable[[float], float]) -> np.ndarray:
    """dy/dt (yr⁻¹ per state unit) at time t (yr) for state y = (V, SOM %, θ m³/m³)."""
    v = min(max(float(y[0]), 0.0), 1.0)
    s = max(float(y[1]), 0.0)
    th = min(max(float(y[2]), 0.0), p.porosity)
    w = p.w0 + (1.0 - p.w0) * v
    fc = p.theta_fc0 + p.eta1 * s / p.Z_r
    g = p.r_V * (1.0 - v / p.K_V) + p.lambda1 * (th - p.theta_star) + p.lambda2 * (s - p.SOM_star)
    dv = v * g
    ds = p.c_som * p.a1 * v - p.a2 * s
    dth = rain(t) / p.Z_r * w * (1.0 - th / fc) - p.r_theta * th - p.u * v * th
    # no outward motion at the walls of the physical box
    if v >= 1.0 and dv > 0:
        dv = 0.0
    if s <= 0.0 and ds < 0:
        ds = 0.0
    if (th <= 0.0 and dth < 0) or (th >= p.porosity and dth > 0):
        dth = 0.0
    return np.array([dv, ds, dth])


def jacobian(t: float, y: np.ndarray, p: RegenParams, rain: Callable[[float], float]) -> np.ndarray:
    """Analytic 3×3 Jacobian ∂f_i/∂y_j of :func:`rhs` (interior of the box), rows/columns (V, SOM, θ)."""
    v, s, th, w, fc, a, g = _terms(_clip(np.asarray(y, float), p), p, rain(t))
    return np.array(
        [
            [g - v * p.r_V / p.K_V, v * p.lambda2, v * p.lambda1],
            [p.c_som * p.a1, -p.a2, 0.0],
            [
                a * (1.0 - p.w0) * (1.0 - th / fc) - p.u * th,
                a * w * th / fc**2 * p.eta1 / p.Z_r,
                -a * w / fc - p.r_theta - p.u * v,
            ],
        ]
    )


def runoff(v: np.ndarray, som: np.ndarray, theta: np.ndarray, rain: np.ndarray, p: RegenParams) -> np.ndarray:
    """Runoff, mm/yr: ``P·(1 − w(V)·max(0, 1 − θ/θ_fc))`` (rain that does not infiltrate)."""
    w = p.w0 + (1.0 - p.w0) * np.asarray(v)
    fc = p.theta_fc0 + p.eta1 * np.asarray(som) / p.Z_r
    return np.asarray(rain) * (1.0 - w * np.clip(1.0 - np.asarray(theta) / fc, 0.0, None))


def solver_options(cfg: RegV1Config) -> dict[str, Any]:
    """``method``, ``rtol``, ``atol`` for :func:`simulate` from ``science.regv1``."""
    return {"method": cfg.ode_method, "rtol": cfg.rtol, "atol": cfg.atol}


def integrate(
    params: RegenParams,
    t: np.ndarray,
    y0: Sequence[float],
    rain: Callable[[float], float],
    *,
    method: str = "LSODA",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> np.ndarray:
    """(3, len(t)) array of (V, SOM, θ) at the years ``t`` (strictly increasing) from ``y0`` at ``t[0]``,
    clipped to the physical box; the array core of :func:`simulate`."""
    from scipy.integrate import solve_ivp

    if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) <= 0):
        raise LpqlcError("t_eval must be a non-empty, strictly increasing 1-D sequence of years")
    y_init = np.asarray(y0, float)
    if y_init.shape != (3,) or not np.isfinite(y_init).all():
        raise LpqlcError(f"y0 must be three finite numbers (V, SOM, theta), got {y0!r}")
    y_init = _clip(y_init, params)
    if t.size == 1:
        return y_init[:, None]
    p, jac_ok = params, method in ("LSODA", "BDF", "Radau")
    calls = [0]

    def growth(y: np.ndarray) -> float:
        return p.r_V * (1 - 1 / p.K_V) + p.lambda1 * (y[2] - p.theta_star) + p.lambda2 * (y[1] - p.SOM_star)

    def f_free(tt: float, y: np.ndarray) -> np.ndarray:
        calls[0] += 1
        if calls[0] > MAX_RHS_CALLS:
            raise _TooManySteps
        return rhs(tt, y, p, rain)

    def f_pinned(tt: float, y: np.ndarray) -> np.ndarray:
        d = f_free(tt, np.array([1.0, y[1], y[2]]))
        d[0] = 0.0
        return d

    def j_free(tt: float, y: np.ndarray) -> np.ndarray:
        return jacobian(tt, y, p, rain)

    def j_pinned(tt: float, y: np.ndarray) -> np.ndarray:
        j = jacobian(tt, np.array([1.0, y[1], y[2]]), p, rain)
        j[0, :] = 0.0
        return j

    def hits_wall(tt: float, y: np.ndarray) -> float:
        return float(y[0]) - 1.0

    def leaves_wall(tt: float, y: np.ndarray) -> float:
        return growth(y)

    hits_wall.terminal, hits_wall.direction = True, 1.0  # type: ignore[attr-defined]
    leaves_wall.terminal, leaves_wall.direction = True, -1.0  # type: ignore[attr-defined]
    out = np.empty((3, t.size))
    done, t_cur, y_cur = 0, float(t[0]), y_init
    pinned = y_cur[0] >= 1.0 and growth(y_cur) > 0
    out[:, 0], done = y_cur, 1
    # The wall V = 1 is handled as a switched system (solve_ivp events): free until V reaches 1, then V
    # held at 1 while growth stays positive. Zeroing the derivative inside one integration instead makes
    # the solver chatter at the wall with ever smaller steps.
    for _ in range(MAX_SEGMENTS):
        if done >= t.size:
            break
        t_ev = t[done:]
        try:
            sol = solve_ivp(
                f_pinned if pinned else f_free,
                (t_cur, float(t[-1])),
                y_cur,
                method=method,
                t_eval=t_ev,
                events=leaves_wall if pinned else hits_wall,
                rtol=rtol,
                atol=atol,
                **({"jac": j_pinned if pinned else j_free} if jac_ok else {}),
            )
        except _TooManySteps:
            raise LpqlcError(f"REGv1 integration ({method}) needed more than {MAX_RHS_CALLS} steps") from None
        if sol.status == -1:
            raise LpqlcError(f"REGv1 integration failed ({method}): {sol.message}")
        n = np.asarray(sol.t).size  # an empty list when the segment held no output time
        if n:
            out[:, done : done + n] = np.asarray(sol.y).reshape(3, n)
        if pinned:
            out[0, done : done + n] = 1.0
        done += n
        if sol.status == 1:  # an event: switch
            t_cur = float(sol.t_events[0][0])
            y_cur = np.array(sol.y_events[0][0], float)
            if pinned:
                y_cur[0] = 1.0 - 1e-12
            else:
                y_cur[0] = 1.0
            pinned = not pinned
    else:
        raise LpqlcError(f"REGv1 integration switched at the wall V = 1 more than {MAX_SEGMENTS} times")
    return np.vstack([np.clip(out[0], 0, 1), np.clip(out[1], 0, None), np.clip(out[2], 0, params.porosity)])


def simulate(
    params: RegenParams,
    t_eval: Sequence[float] | np.ndarray,
    y0: Sequence[float],
    rainfall: Rainfall,
    *,
    method: str = "LSODA",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> Any:
    """Integrate REGv1 from ``y0`` = (V, SOM %, θ) at ``t_eval[0]``, sampled at ``t_eval`` (years, rising).

    ``rainfall`` in mm/yr (constant or series, see :func:`rainfall_function`); ``method`` a stiff-capable
    ``solve_ivp`` method. Returns an ``xarray.Dataset`` over ``time`` (years) with V (fraction), SOM (%),
    theta (m³/m³), runoff (mm/yr) and rainfall (mm/yr). Raises :class:`LpqlcError` when the solver fails.
    """
    import xarray as xr

    t = np.asarray(t_eval, float)
    rain = rainfall_function(rainfall)
    ys = integrate(params, t, y0, rain, method=method, rtol=rtol, atol=atol)
    p_t = np.array([rain(ti) for ti in t])
    ds = xr.Dataset(
        {
            "V": ("time", ys[0], {"units": "1", "long_name": "fractional vegetation cover"}),
            "SOM": ("time", ys[1], {"units": "%", "long_name": "soil organic matter"}),
            "theta": ("time", ys[2], {"units": "m3 m-3", "long_name": "volumetric soil moisture"}),
            "runoff": ("time", runoff(ys[0], ys[1], ys[2], p_t, params), {"units": "mm yr-1"}),
            "rainfall": ("time", p_t, {"units": "mm yr-1"}),
        },
        coords={"time": ("time", t, {"units": "yr"})},
    )
    return ds
