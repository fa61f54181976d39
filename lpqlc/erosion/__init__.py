"""RUSLE soil erosion as lazy xarray graphs: R, K, LS, C, P factors, quarterly and annual A, grades."""

from lpqlc.composite.vegetation import fvc
from lpqlc.erosion.cover import c_factor, p_factor
from lpqlc.erosion.rfactor import r_annual, r_factor, r_half_months
from lpqlc.erosion.rusle import annual_erosion, erosion_grade, rusle
from lpqlc.erosion.soil import k_epic, k_factor
from lpqlc.erosion.terrain import ls_factor, s_factor, slope_degrees

__all__ = [
    "r_factor",
    "r_half_months",
    "r_annual",
    "k_factor",
    "k_epic",
    "slope_degrees",
    "s_factor",
    "ls_factor",
    "fvc",
    "c_factor",
    "p_factor",
    "rusle",
    "annual_erosion",
    "erosion_grade",
]
