"""REGv1 parameters: the seed's nine fitted parameters (priors per region) and the extra, configured ones.

Units (SCIENCE.md §5, seed 004): r_V yr⁻¹; K_V fraction; lambda1 yr⁻¹ per (m³/m³); lambda2 yr⁻¹ per % SOM;
theta_star m³/m³; SOM_star %; a1 kg C m⁻² yr⁻¹ per unit V; a2 yr⁻¹; eta1 mm per % SOM; w0 fraction;
Z_r mm; theta_fc0 and porosity m³/m³; r_theta yr⁻¹; u yr⁻¹ per unit V; c_som % SOM per kg C m⁻².
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from lpqlc.config.science import RegV1Config
from lpqlc.errors import ConfigError

__all__ = ["FITTED", "RegenParams", "prior_bounds"]

#: The seed's parameters, in the order of its JSON (the ones calibration and Sobol can vary).
FITTED: tuple[str, ...] = ("r_V", "K_V", "lambda1", "lambda2", "theta_star", "SOM_star", "a1", "a2", "eta1")


@dataclass(frozen=True)
class RegenParams:
    """Every REGv1 parameter (units in the module docstring); build one with :meth:`from_config`."""

    r_V: float
    K_V: float
    lambda1: float
    lambda2: float
    theta_star: float
    SOM_star: float
    a1: float
    a2: float
    eta1: float
    w0: float = 0.3
    Z_r: float = 1000.0
    theta_fc0: float = 0.22
    r_theta: float = 0.8
    u: float = 1.0
    porosity: float = 0.45
    c_som: float = 1.724 * 100.0 / (1300.0 * 0.2)

    @classmethod
    def from_config(cls, cfg: RegV1Config, region: str | None = None, **overrides: float) -> RegenParams:
        """The priors' central values for ``region`` (default ``cfg.region``) plus the extra parameters
        of ``cfg``; keyword ``overrides`` replace any of them."""
        region = region or cfg.region
        if region not in cfg.priors:
            raise ConfigError(f"science.regv1: region {region!r} has no priors (have {sorted(cfg.priors)})")
        pri = cfg.priors[region]
        missing = [n for n in FITTED if n not in pri]
        if missing:
            raise ConfigError(f"science.regv1.priors.{region}: missing {', '.join(missing)}")
        values: dict[str, float] = {n: float(pri[n].value) for n in FITTED}
        values.update(
            w0=cfg.w0,
            Z_r=cfg.rooting_depth_mm,
            theta_fc0=cfg.theta_fc0,
            r_theta=cfg.r_theta,
            u=cfg.uptake,
            porosity=cfg.porosity,
            c_som=cfg.c_som,
        )
        return cls(**values).with_(**overrides)

    def with_(self, **values: float) -> RegenParams:
        """A copy with ``values`` replaced (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"unknown REGv1 parameter(s) {bad} (known: {sorted(known)})")
        return replace(self, **{k: float(v) for k, v in values.items()})

    def vector(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """The values of ``names`` as a float array."""
        return np.array([getattr(self, n) for n in names], float)

    def with_vector(self, names: tuple[str, ...] | list[str], x: np.ndarray) -> RegenParams:
        """A copy with ``names`` set from the array ``x``."""
        return replace(self, **{n: float(v) for n, v in zip(names, x, strict=True)})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prior_bounds(
    cfg: RegV1Config, names: tuple[str, ...] | list[str], region: str | None = None
) -> np.ndarray:
    """(len(names), 2) array of the priors' 95 % intervals for ``region``: the calibration bounds."""
    pri = cfg.priors[region or cfg.region]
    return np.array([pri[n].ci95 for n in names], float)
