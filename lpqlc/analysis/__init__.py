"""The paper's analyses of the published products (SCIENCE.md §4; docs/analysis.md): per-pixel trends
(``trend``), land-cover areas, transitions and when maps (``landcover``), erosion tables (``soilloss``),
the blockwise counting they share (``counts``), ``lpqlc analyse`` (``run``) and the restoration scenario
(``scenario``; docs/scenario.md)."""

__all__ = ["counts", "landcover", "run", "scenario", "soilloss", "trend"]
