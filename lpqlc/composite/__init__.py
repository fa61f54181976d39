"""Quarterly composites: lazy odc-stac load, masks, scale/offset, median, count, NDVI, FVC."""

from lpqlc.composite.build import COUNT, NDVI, build_composite, load_stack, plan_slices
from lpqlc.composite.normalise import BandSums, NormStats
from lpqlc.composite.vegetation import fvc, lazy_fvc, ndvi_endmembers, ndvi_histogram

__all__ = [
    "COUNT",
    "NDVI",
    "build_composite",
    "load_stack",
    "plan_slices",
    "BandSums",
    "NormStats",
    "fvc",
    "lazy_fvc",
    "ndvi_endmembers",
    "ndvi_histogram",
]
