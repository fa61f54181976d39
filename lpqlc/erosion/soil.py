"""Soil erodibility K by EPIC with the Chinese correction (SCIENCE.md §3; Williams 1990, Zhang et al.).

SN1 = 1 − SAN/100
K_EPIC = [0.2 + 0.3·exp(−0.0256·SAN·(1 − SIL/100))]·[SIL/(CLA + SIL)]^0.3
       ·[1 − 0.25·OC/(OC + exp(3.72 − 2.95·OC))]·[1 − 0.7·SN1/(SN1 + exp(−5.51 + 22.9·SN1))]
K = (−0.01383 + 0.51575·K_EPIC)·0.1317

All inputs in % (organic carbon, not organic matter: OC = OM/1.724). K in t·hm²·h/(hm²·MJ·mm).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from lpqlc.config.science import KFactorConfig

__all__ = ["k_epic", "k_factor", "openlandmap_oc_percent"]

A = TypeVar("A")


def k_epic(sand: A, silt: A, clay: A, oc: A) -> A:
    """K_EPIC (US customary units) from sand, silt, clay and organic carbon, all in %.

    Works on numbers, numpy, xarray and Dask arrays alike (elementwise; shapes broadcast).
    """
    sn1 = 1.0 - sand / 100.0  # type: ignore[operator]
    f_csand = 0.2 + 0.3 * np.exp(-0.0256 * sand * (1.0 - silt / 100.0))  # type: ignore[operator]
    f_clsi = (silt / (clay + silt)) ** 0.3  # type: ignore[operator]
    f_orgc = 1.0 - 0.25 * oc / (oc + np.exp(3.72 - 2.95 * oc))  # type: ignore[operator]
    f_hisand = 1.0 - 0.7 * sn1 / (sn1 + np.exp(-5.51 + 22.9 * sn1))
    return f_csand * f_clsi * f_orgc * f_hisand  # type: ignore[no-any-return]


def k_factor(sand: A, silt: A, clay: A, carbon: A, cfg: KFactorConfig = KFactorConfig()) -> A:
    """K (t·hm²·h/(hm²·MJ·mm)) with the Chinese correction; ``carbon`` in % of ``cfg.carbon_kind``."""
    oc = carbon if cfg.carbon_kind == "organic_carbon" else carbon / cfg.om_to_oc  # type: ignore[operator]
    return (cfg.correction_intercept + cfg.correction_slope * k_epic(sand, silt, clay, oc)) * cfg.unit_factor  # type: ignore[no-any-return, operator]


def openlandmap_oc_percent(value: A, step_g_per_kg: float = 5.0) -> A:
    """OpenLandMap organic carbon (stored in ``step_g_per_kg`` g/kg units) → % (g/kg ÷ 10)."""
    return value * step_g_per_kg / 10.0  # type: ignore[no-any-return, operator]
