"""Fixed points of REGv1, their stability, and the equilibrium branches of V against rainfall.

At a fixed point SOM and θ are slaved to V: SOM = c_SOM·a1·V/a2 and, the θ equation being linear in θ,
θ = A·w/(A·w/θ_fc + r_θ + u·V) with A = P/Z_r. So the interior fixed points are the roots of one function
of V, the per-capita growth g(V) (SCIENCE.md §5), plus the bare state V = 0. We scan g on a grid for sign
changes (every root that crosses zero), then polish every candidate, and a coarse set of further starts,
with ``scipy.optimize.root`` on the full three-dimensional system (multi-start) and keep the distinct
solutions with ‖f‖∞ below the tolerance. Stability from the analytic Jacobian's eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpqlc.regen.model import jacobian, rhs
from lpqlc.regen.params import RegenParams

__all__ = ["Bifurcation", "Equilibrium", "bifurcation", "equilibria", "slaved_state", "v_crit"]


@dataclass(frozen=True)
class Equilibrium:
    """A fixed point (V, SOM %, θ m³/m³), its Jacobian eigenvalues (yr⁻¹), stability and ‖f(y*)‖∞."""

    V: float
    SOM: float
    theta: float
    eigenvalues: tuple[complex, ...]
    stable: bool
    residual: float
    boundary: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "V": self.V,
            "SOM": self.SOM,
            "theta": self.theta,
            "stable": self.stable,
            "residual": self.residual,
            "boundary": self.boundary,
            "eigenvalues": [[float(e.real), float(e.imag)] for e in self.eigenvalues],
        }


def slaved_state(v: np.ndarray | float, p: RegenParams, rainfall: float) -> tuple[np.ndarray, np.ndarray]:
    """(SOM %, θ m³/m³) at which dSOM/dt = dθ/dt = 0 for cover ``v`` and constant rainfall (mm/yr)."""
    v = np.asarray(v, float)
    som = p.c_som * p.a1 * v / p.a2
    fc = p.theta_fc0 + p.eta1 * som / p.Z_r
    aw = rainfall / p.Z_r * (p.w0 + (1.0 - p.w0) * v)
    theta = np.minimum(aw / (aw / fc + p.r_theta + p.u * v), p.porosity)
    return som, theta


def _growth(v: np.ndarray, p: RegenParams, rainfall: float) -> np.ndarray:
    som, theta = slaved_state(v, p, rainfall)
    return p.r_V * (1.0 - v / p.K_V) + p.lambda1 * (theta - p.theta_star) + p.lambda2 * (som - p.SOM_star)


def _equilibrium(y: np.ndarray, p: RegenParams, rain: Any, boundary: bool = False) -> Equilibrium:
    jac = jacobian(0.0, y, p, rain)
    # at the wall V = 1 the cover is held by the clipping (growth pushes outward): only the (SOM, θ)
    # block decides stability there, and its eigenvalues are the ones reported
    eig = np.linalg.eigvals(jac[1:, 1:] if boundary else jac)
    eig = eig[np.lexsort((eig.imag, eig.real))]
    res = float(np.max(np.abs(rhs(0.0, y, p, rain))))
    return Equilibrium(
        float(y[0]),
        float(y[1]),
        float(y[2]),
        tuple(complex(e) for e in eig),
        bool(np.all(eig.real < 0)),
        res,
        boundary,
    )


def equilibria(
    params: RegenParams, rainfall: float, *, grid: int = 401, tol: float = 1e-10, extra_starts: int = 10
) -> list[Equilibrium]:
    """Every fixed point of REGv1 at constant ``rainfall`` (mm/yr), sorted by V: the bare state, the
    interior roots and, if growth is still positive at full cover, the boundary state V = 1 (held there by
    the clipping; its eigenvalues are those of the (SOM, θ) block). ``extra_starts``: starts on a V grid
    added to the roots bracketed on the ``grid`` scan (0 for speed in sampling loops)."""
    from scipy.optimize import brentq, root

    p, rain = params, (lambda t: float(rainfall))
    vs = np.linspace(0.0, 1.0, grid)
    g = _growth(vs, p, rainfall)
    starts = [
        float(brentq(_growth, vs[i], vs[i + 1], args=(p, rainfall), xtol=1e-14))
        for i in np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0)
    ]
    starts += [float(vs[i]) for i in np.flatnonzero(g == 0)]
    starts += list(np.linspace(0.05, 0.95, extra_starts))  # further starts: the multi-start part
    found: list[np.ndarray] = []
    wall = None
    for v0 in [0.0, *starts]:
        som, th = slaved_state(v0, p, rainfall)
        sol = root(
            lambda y: rhs(0.0, y, p, rain),
            np.array([v0, som, th]),
            jac=lambda y: jacobian(0.0, y, p, rain),
            method="hybr",
            options={"xtol": 1e-13},
        )
        y = sol.x
        inside = -1e-12 <= y[0] <= 1 + 1e-12 and y[1] >= -1e-12 and -1e-12 <= y[2] <= p.porosity + 1e-12
        if not (sol.success and inside) or np.max(np.abs(rhs(0.0, y, p, rain))) > tol:
            continue
        if v0 > 0 and y[0] < 1e-9:
            continue  # the bare state is added once, from its own start
        if not any(np.allclose(y, f, atol=1e-7, rtol=0) for f in found):
            found.append(np.clip(y, 0, None))
    found = [y for y in found if y[0] < 1.0 - 1e-9]
    if g[-1] > 0:
        som, th = slaved_state(1.0, p, rainfall)
        wall = np.array([1.0, float(som), float(th)])
    eqs = [_equilibrium(y, p, rain) for y in sorted(found, key=lambda y: y[0])]
    return eqs + ([_equilibrium(wall, p, rain, boundary=True)] if wall is not None else [])


def v_crit(params: RegenParams, rainfall: float) -> float:
    """Critical cover (fraction): V of the unstable interior equilibrium separating the bare and the
    vegetated stable states at ``rainfall`` (mm/yr); NaN when the system is not bistable there."""
    eqs = equilibria(params, rainfall)
    stable_v = [e.V for e in eqs if e.stable]
    if len(stable_v) < 2:
        return float("nan")
    saddles = [e.V for e in eqs if not e.stable and min(stable_v) < e.V < max(stable_v)]
    return float(saddles[0]) if saddles else float("nan")


@dataclass
class Bifurcation:
    """Equilibrium branches over rainfall: ``table`` (rainfall mm/yr, V, SOM, theta, stable), the bistable
    rainfall range (mm/yr) or None, and V_crit per rainfall (NaN outside the bistable range)."""

    table: Any
    bistable: tuple[float, float] | None
    v_crit: Any = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        vc = self.v_crit.dropna()
        return {
            "bistable_rainfall_mm": list(self.bistable) if self.bistable else None,
            "v_crit": {f"{k:g}": float(v) for k, v in vc.items()},
            "branches": self.table.to_dict(orient="records"),
        }


def bifurcation(params: RegenParams, rainfall_range: Any) -> Bifurcation:
    """Equilibria of V for each rainfall in ``rainfall_range`` (mm/yr; an array, or (lo, hi[, n]) for
    a linear grid of n = 61 points)."""
    import pandas as pd

    r = np.asarray(rainfall_range, float)
    if r.ndim == 1 and r.size in (2, 3):
        r = np.linspace(r[0], r[1], int(r[2]) if r.size == 3 else 61)
    rows, vc, bist = [], {}, []
    for rain in r:
        eqs = equilibria(params, float(rain))
        rows += [
            {"rainfall_mm": float(rain), "V": e.V, "SOM": e.SOM, "theta": e.theta, "stable": e.stable}
            for e in eqs
        ]
        stable_v = [e.V for e in eqs if e.stable]
        sad = [
            e.V for e in eqs if not e.stable and len(stable_v) >= 2 and min(stable_v) < e.V < max(stable_v)
        ]
        vc[float(rain)] = sad[0] if sad else np.nan
        if len(stable_v) >= 2:
            bist.append(float(rain))
    return Bifurcation(
        pd.DataFrame(rows), (min(bist), max(bist)) if bist else None, pd.Series(vc, name="V_crit")
    )
