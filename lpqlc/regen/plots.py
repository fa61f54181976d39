"""REGv1 figures (matplotlib, Agg): trajectories against data, phase plane with nullclines, bifurcation
diagram, Sobol bars, bootstrap distributions, profile likelihoods. Each function returns a figure for
:func:`lpqlc.publish.preview.write_png`."""

from __future__ import annotations

from typing import Any

import numpy as np

from lpqlc.regen.equilibria import Bifurcation, Equilibrium
from lpqlc.regen.params import RegenParams

__all__ = [
    "bifurcation_figure",
    "bootstrap_figure",
    "phase_plane_figure",
    "profile_figure",
    "sobol_figure",
    "trajectory_figure",
]

LABELS = {"V": "V (cover fraction)", "SOM": "SOM (%)", "theta": "θ (m³/m³)", "runoff": "runoff (mm/yr)"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trajectory_figure(
    sim: Any,
    observed: dict[str, np.ndarray] | None = None,
    t_obs: np.ndarray | None = None,
    holdout_from: float | None = None,
    title: str = "",
) -> Any:
    """V, SOM, θ and runoff of the simulation ``sim`` (an xarray Dataset of :func:`simulate`) over time,
    observations as points, the hold-out period shaded."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for ax, var in zip(axes.ravel(), ("V", "SOM", "theta", "runoff"), strict=True):
        ax.plot(sim["time"].values, sim[var].values, color="#1b7837", lw=1.5, label="model")
        if (
            observed is not None
            and t_obs is not None
            and var in observed
            and np.isfinite(observed[var]).any()
        ):
            ax.plot(t_obs, observed[var], "o", color="#762a83", ms=4, label="observed")
        if holdout_from is not None:
            ax.axvspan(holdout_from, float(sim["time"].values[-1]), color="0.9", zorder=0, label="hold-out")
        ax.set_ylabel(LABELS[var])
        ax.grid(alpha=0.3)
    axes[1, 0].set_xlabel("year")
    axes[1, 1].set_xlabel("year")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title or "REGv1 trajectories", fontsize=10)
    return fig


def phase_plane_figure(p: RegenParams, rainfall: float, eqs: list[Equilibrium], title: str = "") -> Any:
    """The (V, SOM) plane with θ at its balance value for each (V, SOM): flow, the nullclines dV/dt = 0
    (V = 0 and the growth-zero curve) and dSOM/dt = 0, and the equilibria (filled = stable)."""
    plt = _plt()
    s_max = max(1.2 * p.c_som * p.a1 / p.a2, 1.2 * p.SOM_star, 0.5)
    v, s = np.meshgrid(np.linspace(0, 1, 60), np.linspace(0, s_max, 60))
    fc = p.theta_fc0 + p.eta1 * s / p.Z_r
    aw = rainfall / p.Z_r * (p.w0 + (1 - p.w0) * v)
    th = np.minimum(aw / (aw / fc + p.r_theta + p.u * v), p.porosity)
    g = p.r_V * (1 - v / p.K_V) + p.lambda1 * (th - p.theta_star) + p.lambda2 * (s - p.SOM_star)
    dv, ds = v * g, p.c_som * p.a1 * v - p.a2 * s
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.streamplot(v, s, dv, ds, color="0.7", density=1.0, linewidth=0.6)
    ax.contour(v, s, g, levels=[0], colors="#1b7837", linewidths=1.5)
    ax.axvline(0, color="#1b7837", lw=1.5)
    vv = np.linspace(0, 1, 50)
    ax.plot(vv, p.c_som * p.a1 * vv / p.a2, color="#8c510a", lw=1.5)
    for e in eqs:
        ax.plot(e.V, e.SOM, "o", ms=8, mfc="k" if e.stable else "w", mec="k")
    ax.plot([], [], color="#1b7837", label="dV/dt = 0")
    ax.plot([], [], color="#8c510a", label="dSOM/dt = 0")
    ax.plot([], [], "o", mfc="k", mec="k", label="stable")
    ax.plot([], [], "o", mfc="w", mec="k", label="unstable")
    ax.set(xlim=(0, 1), ylim=(0, s_max), xlabel=LABELS["V"], ylabel=LABELS["SOM"])
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or f"Phase plane at P = {rainfall:g} mm/yr (θ at balance)", fontsize=10)
    return fig


def bifurcation_figure(bif: Bifurcation, title: str = "") -> Any:
    """Equilibrium V against rainfall: stable (filled) and unstable (open) branches, bistable range shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    t = bif.table
    if len(t):
        st = t[t["stable"]]
        un = t[~t["stable"]]
        ax.plot(st["rainfall_mm"], st["V"], "o", ms=3.5, color="#1b7837", label="stable")
        ax.plot(un["rainfall_mm"], un["V"], "o", ms=3.5, mfc="w", mec="#b2182b", label="unstable")
    if bif.bistable:
        ax.axvspan(*bif.bistable, color="#fee08b", alpha=0.5, zorder=0, label="bistable")
    ax.set(xlabel="rainfall P (mm/yr)", ylabel="equilibrium V", ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "Bifurcation diagram", fontsize=10)
    return fig


def sobol_figure(result: dict[str, Any]) -> Any:
    """Bars of first-order (S1) and total-order (ST) Sobol indices per output, with confidence bars."""
    plt = _plt()
    outs = [o for o in ("V", "SOM", "V_crit") if o in result and "S1" in result[o]]
    fig, axes = plt.subplots(1, max(len(outs), 1), figsize=(4.2 * max(len(outs), 1), 4), squeeze=False)
    names = result["names"]
    x = np.arange(len(names))
    for ax, o in zip(axes[0], outs, strict=False):
        r = result[o]
        ax.bar(x - 0.2, r["S1"], 0.4, yerr=r["S1_conf"], label="S1", color="#4393c3")
        ax.bar(x + 0.2, r["ST"], 0.4, yerr=r["ST_conf"], label="ST", color="#d6604d")
        ax.set_xticks(x, names, rotation=60, fontsize=7)
        ax.set_ylim(-0.1, 1.1)
        ax.set_title(o, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Sobol indices (N = {result['n_base']}, {result['n_runs']} runs)", fontsize=10)
    return fig


def bootstrap_figure(
    names: tuple[str, ...], samples: np.ndarray, estimate: np.ndarray, bounds: np.ndarray, ci: np.ndarray
) -> Any:
    """Histogram of each parameter's bootstrap replicates, its estimate, 95 % CI and prior interval."""
    plt = _plt()
    k = len(names)
    cols = min(k, 4)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= k:
            ax.axis("off")
            continue
        if samples.size:
            ax.hist(samples[:, i], bins=15, range=tuple(bounds[i]), color="#92c5de")
        ax.axvline(estimate[i], color="k", lw=1.2)
        for c in ci[i]:
            if np.isfinite(c):
                ax.axvline(c, color="#b2182b", ls="--", lw=0.9)
        ax.set_xlim(*bounds[i])
        ax.set_title(names[i], fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Block-bootstrap replicates (prior interval as x range; dashed: 95 % CI)", fontsize=10)
    return fig


def profile_figure(profiles: dict[str, Any]) -> Any:
    """Profile deviance of each threshold with the χ²₁ 95 % line, and V_crit along the profile."""
    plt = _plt()
    names = [k for k, v in profiles.items() if isinstance(v, dict)]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 3.6), squeeze=False)
    for ax, n in zip(axes[0], names, strict=False):
        r = profiles[n]
        ax.plot(r["grid"], r["deviance"], "o-", color="#2166ac")
        ax.axhline(3.84, color="k", ls="--", lw=0.8)
        ax.set_xlabel(n)
        ax.set_ylabel("deviance n·ln(RSS/RSS_min)")
        ax2 = ax.twinx()
        ax2.plot(r["grid"], r["v_crit"], "s:", color="#b2182b", ms=3)
        ax2.set_ylabel("V_crit", color="#b2182b")
        ax.grid(alpha=0.3)
    fig.suptitle("Profile likelihood of the thresholds", fontsize=10)
    return fig
