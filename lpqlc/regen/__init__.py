"""REGv1: the coupled vegetation–SOM–moisture model of seed 004 (SCIENCE.md §5), its equilibria,
observations, calibration and sensitivity (``lpqlc regen``)."""

from lpqlc.regen.calibrate import Calibration, calibrate
from lpqlc.regen.equilibria import Bifurcation, Equilibrium, bifurcation, equilibria, v_crit
from lpqlc.regen.model import simulate
from lpqlc.regen.observations import observations_from_products, read_observations
from lpqlc.regen.params import RegenParams

__all__ = [
    "Bifurcation",
    "Calibration",
    "Equilibrium",
    "RegenParams",
    "bifurcation",
    "calibrate",
    "equilibria",
    "observations_from_products",
    "read_observations",
    "simulate",
    "v_crit",
]
