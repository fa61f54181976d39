"""Science constants of SCIENCE.md, each a typed default that a pipeline YAML may override.

Sections follow SCIENCE.md: §1 land cover and compositing, §1 CCTS training, §3 RUSLE (R, K, LS, C,
P, grades), §4 analysis and scenario, §5 REGv1. Interval convention everywhere: a class interval holds
its lower bound and excludes its upper one, so a list of ``breaks`` ``b0 < b1 < …`` defines the bins
``x < b0``, ``b0 ≤ x < b1``, …, ``x ≥ b_last``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lpqlc.config.base import Frozen

__all__ = [
    "ScienceConfig",
    "CompositeConfig",
    "FVCConfig",
    "LandCoverConfig",
    "CCTSConfig",
    "RFactorConfig",
    "KFactorConfig",
    "LSFactorConfig",
    "CFactorConfig",
    "PFactorConfig",
    "GradesConfig",
    "RusleConfig",
    "TrendConfig",
    "ScenarioConfig",
    "AnalysisConfig",
    "Prior",
    "RegV1Config",
    "LandCoverGapFillConfig",
    "WORLDCOVER_CLASSES",
]

#: The 8 output classes as ESA WorldCover v200 codes (value written in every class raster) → name.
WORLDCOVER_CLASSES: dict[int, str] = {
    10: "Forest",
    20: "Shrubland",
    30: "Grassland",
    40: "Cropland",
    50: "Built-up",
    60: "Bare land",
    80: "Water",
    90: "Wetland",
}

#: Display colours (ESA WorldCover legend), RGB hex, per class code.
WORLDCOVER_COLOURS: dict[int, str] = {
    10: "#006400",
    20: "#ffbb22",
    30: "#ffff4c",
    40: "#f096ff",
    50: "#fa0000",
    60: "#b4b4b4",
    80: "#0064c8",
    90: "#0096a0",
}


def _strictly_increasing(name: str, values: tuple[float, ...]) -> None:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")


class CompositeConfig(Frozen):
    """Cloud masking, scaling and band plan of the quarterly composites (SCIENCE.md §1)."""

    bands: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1")
    #: Sentinel-2 SCL classes kept as clear: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified.
    s2_keep_scl: tuple[int, ...] = (4, 5, 6, 7)
    #: Landsat QA_PIXEL bits that mask a pixel: 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow, 5 snow.
    landsat_mask_bits: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    #: Sentinel-2 processing baseline from which L2A digital numbers carry a +1000 offset.
    s2_offset_baseline: str = "04.00"
    #: First acquisition date processed under that baseline (used when an item lacks the property).
    s2_offset_from: str = "2022-01-25"
    s2_offset_dn: int = -1000
    #: Optional cross-sensor harmonisation, keyed by platform (``landsat-7``) or sensor (``landsat``),
    #: then band: reflectance' = slope·reflectance + intercept. A platform entry wins over its sensor's.
    harmonisation: dict[str, dict[str, tuple[float, float]]] = Field(default_factory=dict)
    #: Reflectance range kept after scaling; values outside are treated as invalid.
    valid_reflectance: tuple[float, float] = (-0.05, 1.6)
    #: Resampling of reflectance onto the output grid (masks always use nearest).
    resampling: Literal["nearest", "bilinear", "cubic", "average"] = "bilinear"
    #: Bins of the NDVI histogram over [-1, 1] that gives the FVC percentiles (resolution 2/bins).
    ndvi_histogram_bins: int = Field(4000, ge=10)
    #: Library that loads the source assets onto the grid: stackstac (the faster, measured in
    #: docs/performance.md; needs an EPSG grid CRS: left unset, a custom grid CRS falls back to
    #: odc-stac) or odc-stac.
    loader: Literal["odc-stac", "stackstac"] = "stackstac"

    @model_validator(mode="after")
    def _check(self) -> CompositeConfig:
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands repeat a name: {list(self.bands)}")
        bad = [c for c in self.s2_keep_scl if not 0 <= c <= 11]
        if bad:
            raise ValueError(f"s2_keep_scl holds classes outside 0..11: {bad}")
        bad = [b for b in self.landsat_mask_bits if not 0 <= b <= 15]
        if bad:
            raise ValueError(f"landsat_mask_bits holds bits outside 0..15: {bad}")
        return self


class FVCConfig(Frozen):
    """Fractional vegetation cover from NDVI: FVC = clip((NDVI − soil)/(veg − soil), 0, 1)."""

    method: Literal["percentile", "fixed"] = "percentile"
    soil_percentile: float = Field(5.0, ge=0, le=100)
    veg_percentile: float = Field(95.0, ge=0, le=100)
    ndvi_soil: float = 0.05
    ndvi_veg: float = 0.85

    @model_validator(mode="after")
    def _check(self) -> FVCConfig:
        if self.soil_percentile >= self.veg_percentile:
            raise ValueError("soil_percentile must be below veg_percentile")
        if self.ndvi_soil >= self.ndvi_veg:
            raise ValueError("ndvi_soil must be below ndvi_veg")
        return self


class LandCoverConfig(Frozen):
    """The 8-class legend, the WorldCover label mapping and temporal refinement (SCIENCE.md §1)."""

    classes: dict[int, str] = Field(default_factory=lambda: dict(WORLDCOVER_CLASSES))
    colours: dict[int, str] = Field(default_factory=lambda: dict(WORLDCOVER_COLOURS))
    #: WorldCover codes absent from the legend → legend code (70 snow/ice, 100 moss/lichen, 95 mangroves).
    worldcover_remap: dict[int, int] = Field(default_factory=lambda: {70: 60, 100: 30, 95: 90})
    nodata: int = 0
    label_year: int = 2021
    temporal_window: int = Field(5, ge=1)
    tile_size: int = Field(256, ge=16)
    #: Training tiles kept per class from the per-tile class histograms (the paper: 1,800).
    tiles_per_class: int = Field(1800, ge=1)

    @model_validator(mode="after")
    def _check(self) -> LandCoverConfig:
        if self.temporal_window % 2 != 1:
            raise ValueError(f"temporal_window must be odd (centred window), got {self.temporal_window}")
        if self.nodata in self.classes:
            raise ValueError(f"nodata value {self.nodata} is also a class code")
        missing = sorted(set(self.classes) - set(self.colours))
        if missing:
            raise ValueError(f"colours lack class codes {missing}")
        bad = {k: v for k, v in self.worldcover_remap.items() if v not in self.classes}
        if bad:
            raise ValueError(f"worldcover_remap maps onto codes that are not classes: {bad}")
        return self


class CCTSConfig(Frozen):
    """CCTS semi-supervised training constants (SCIENCE.md §1)."""

    temperature: float = Field(0.1, gt=0)
    confidence_threshold: float = Field(0.95, ge=0, le=1)
    weight_seg: float = 0.5
    weight_ic: float = 0.25
    weight_fp: float = 0.25
    feature_dropout: float = Field(0.5, ge=0, lt=1)
    attention_window: int = 7
    mlp_ratio: int = 4
    #: Network size: T, S, B (the paper's) or small (trains on a CPU in minutes).
    size: Literal["T", "S", "B", "small"] = "small"
    #: Training tiles (pixels square) and batch size; the paper used 256 px.
    tile_size: int = Field(64, ge=32)
    batch_size: int = Field(8, ge=2)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    #: Epochs per stage and optimiser steps per epoch.
    epochs: dict[str, int] = Field(default_factory=lambda: {"contrastive": 3, "supervised": 8, "refine": 4})
    steps_per_epoch: int = Field(25, ge=1)
    #: Embedding size of the contrastive projection head.
    projection_dim: int = Field(64, ge=8)
    #: Quarters whose composites form the unlabelled set (besides the label year's other quarters).
    unlabelled_quarters: str = "2019Q1:2023Q4"
    seed: int = 0
    #: Sensor eras of the unlabelled quarters: ``all`` (Landsat composites resampled onto the label
    #: era's grid join D^u, the paper's setting) or ``label`` (the label year's era only).
    unlabelled_eras: Literal["all", "label"] = "all"
    #: Image perturbations of stage 3 (geometric: flip, rotate, shift, crop; photometric: contrast,
    #: blur, radiometric — per-band gain/offset, the appearance change between quarters).
    perturbations: tuple[str, ...] = ("flip", "rotate", "shift", "crop", "contrast", "blur", "radiometric")

    @model_validator(mode="after")
    def _check_perturbations(self) -> CCTSConfig:
        known = ("flip", "rotate", "shift", "crop", "contrast", "blur", "radiometric")
        bad = [k for k in self.perturbations if k not in known]
        if bad or not self.perturbations:
            raise ValueError(f"ccts.perturbations {list(self.perturbations)}: unknown {bad}, choose from {list(known)}")
        return self
    #: Mixed precision (bfloat16 autocast) when training on CUDA.
    amp: bool = True
    #: Sliding-window inference: tile and overlap (pixels) so seams do not show.
    predict_tile: int = Field(256, ge=32)
    predict_overlap: int = Field(32, ge=0)
    #: Stream widths at 1/4, 1/8, 1/16, 1/32 resolution of the paper's HRFormer sizes.
    widths: dict[str, tuple[int, int, int, int]] = Field(
        default_factory=lambda: {
            "T": (18, 36, 72, 144),
            "S": (32, 64, 128, 256),
            "B": (78, 156, 312, 624),
        }
    )
    #: Stage 3's image consistency L_ic: ``perturbed`` (the paper: the same quarter under
    #: ``perturbations``) or ``cross-time`` (the pseudo-label of one quarter of a tile against the
    #: prediction on another quarter of it — the real appearance change between quarters as P_i,
    #: geometric and radiometric perturbations still applied on top).
    consistency: Literal["perturbed", "cross-time"] = "perturbed"
    #: Learning-rate schedule and optimiser across the stages: ``continuous`` (one AdamW whose state
    #: carries from stage to stage, one cosine decay over all configured epochs of the three stages, as
    #: UniMatch/FixMatch train the labelled and unlabelled terms under one schedule) or ``per-stage``
    #: (a fresh AdamW at ``learning_rate`` and a cosine over each stage: the behaviour before issue 21's
    #: diagnosis, where stage 3 restarting at the full rate undid the annealed supervised model).
    schedule: Literal["continuous", "per-stage"] = "continuous"
    #: Which stage-3 forward passes update BatchNorm's running statistics (what inference normalises
    #: with): ``labelled`` (only the labelled batch; the pseudo-label, perturbed-view and
    #: feature-dropout passes normalise with their batch but leave the running statistics alone) or
    #: ``all`` (every pass, the behaviour before: perturbed and other-era images then drag the
    #: statistics away from real images — measured: 16 % relative change, most of stage 3's OA loss).
    refine_bn_stats: Literal["labelled", "all"] = "labelled"


class RFactorConfig(Frozen):
    """Rainfall erosivity by the half-month daily model: R_k = α·Σ P_j^β over days with P_j ≥ threshold."""

    beta: float = 1.7265
    alpha_warm: float = 0.3937
    alpha_cold: float = 0.3101
    warm_months: tuple[int, ...] = (5, 6, 7, 8, 9)
    #: Erosive-day threshold, mm/day (Xie et al. 2016: 10; Zhang et al. 2002: 12).
    threshold_mm: float = Field(10.0, ge=0)
    #: Missing days (NaN precipitation): "nan" — their half-month's R is NaN; "dry" — they count as dry
    #: days; "scale" — the observed days' R × days / observed days when at least ``gap_min_observed`` of
    #: the half-month is observed, else NaN (docs/erosion.md).
    gap_policy: Literal["nan", "dry", "scale"] = "nan"
    gap_min_observed: float = Field(0.8, gt=0, le=1)
    #: Daily precipitation is read in windows of this many pixels square (one Dask task each).
    window_px: int = Field(64, ge=1)


class KFactorConfig(Frozen):
    """Soil erodibility: EPIC with the Chinese correction K = (a + b·K_EPIC)·unit (SCIENCE.md §3)."""

    correction_intercept: float = -0.01383
    correction_slope: float = 0.51575
    #: US customary → SI (t·hm²·h/(hm²·MJ·mm)).
    unit_factor: float = 0.1317
    #: What the soil source's carbon layer holds: organic carbon, or organic matter (OC = OM/1.724).
    carbon_kind: Literal["organic_carbon", "organic_matter"] = "organic_carbon"
    om_to_oc: float = 1.724


class LSFactorConfig(Frozen):
    """Topographic factor from a DEM (SCIENCE.md §3): L = (λ/22.13)^m, S after Liu et al. 1994."""

    unit_length_m: float = 22.13
    #: m by slope in degrees: breaks between the bins, then one exponent per bin (θ ≤ 1°, 1–3°, 3–5°, > 5°).
    m_breaks_deg: tuple[float, ...] = (1.0, 3.0, 5.0)
    m_values: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
    slope_length_cap_m: float = Field(300.0, gt=0)
    #: S pieces: breaks in degrees and (a, b) of S = a·sinθ + b per piece.
    s_breaks_deg: tuple[float, ...] = (5.0, 10.0)
    s_coefficients: tuple[tuple[float, float], ...] = ((10.8, 0.03), (16.8, -0.50), (21.91, -0.96))
    #: An externally supplied LS raster (path or URL); when set it is used instead of the DEM.
    external: str | None = None
    #: LS runs per tile with a halo of ⌈λ_max/D⌉ + 1 pixels plus this margin (pixels) for depressions that
    #: straddle a tile edge (docs/erosion.md: tiled vs whole-area differences).
    tile_fill_margin_px: int = Field(96, ge=0)

    @model_validator(mode="after")
    def _check(self) -> LSFactorConfig:
        _strictly_increasing("m_breaks_deg", self.m_breaks_deg)
        _strictly_increasing("s_breaks_deg", self.s_breaks_deg)
        if len(self.m_values) != len(self.m_breaks_deg) + 1:
            raise ValueError("m_values needs one value more than m_breaks_deg")
        if len(self.s_coefficients) != len(self.s_breaks_deg) + 1:
            raise ValueError("s_coefficients needs one pair more than s_breaks_deg")
        return self


class CFactorConfig(Frozen):
    """Cover management C from land cover and FVC (SCIENCE.md §3, Table 1)."""

    fvc_breaks: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    #: Table 1: class code → C per FVC bin (< 0.1, 0.1–0.3, 0.3–0.5, 0.5–0.7, 0.7–0.9, ≥ 0.9).
    table: dict[int, tuple[float, ...]] = Field(
        default_factory=lambda: {
            10: (0.100, 0.080, 0.060, 0.020, 0.004, 0.001),
            20: (0.400, 0.220, 0.140, 0.085, 0.040, 0.011),
            30: (0.450, 0.240, 0.150, 0.090, 0.043, 0.011),
        }
    )
    #: Cropland: C = a − b·log10(FVC), clipped to [0, 1].
    cropland_code: int = 40
    cropland_a: float = 0.221
    cropland_b: float = 0.595
    #: Fixed C per class (built-up 0.01 and bare 0.7: the paper's Table 7 reading, see SCIENCE.md).
    fixed: dict[int, float] = Field(default_factory=lambda: {50: 0.01, 60: 0.7, 80: 0.0, 90: 0.0})

    @model_validator(mode="after")
    def _check(self) -> CFactorConfig:
        _strictly_increasing("fvc_breaks", self.fvc_breaks)
        for code, row in self.table.items():
            if len(row) != len(self.fvc_breaks) + 1:
                raise ValueError(f"table[{code}] needs {len(self.fvc_breaks) + 1} values, got {len(row)}")
        overlap = set(self.table) & set(self.fixed)
        if overlap or self.cropland_code in self.table or self.cropland_code in self.fixed:
            raise ValueError(f"a class has two C rules: {sorted(overlap | {self.cropland_code})}")
        return self


class PFactorConfig(Frozen):
    """Support practice P (SCIENCE.md §3, Table 2)."""

    by_class: dict[int, float] = Field(
        default_factory=lambda: {10: 1.0, 20: 0.29, 30: 0.41, 50: 0.0, 60: 1.0, 80: 0.0, 90: 0.0}
    )
    cropland_code: int = 40
    cropland_slope_breaks_deg: tuple[float, ...] = (5.0, 7.0, 9.0, 12.0, 20.0, 24.0)
    cropland_values: tuple[float, ...] = (0.49, 0.59, 0.65, 0.70, 0.81, 0.95, 1.0)

    @model_validator(mode="after")
    def _check(self) -> PFactorConfig:
        _strictly_increasing("cropland_slope_breaks_deg", self.cropland_slope_breaks_deg)
        if len(self.cropland_values) != len(self.cropland_slope_breaks_deg) + 1:
            raise ValueError("cropland_values needs one value more than cropland_slope_breaks_deg")
        return self


class GradesConfig(Frozen):
    """Erosion grades of SL 190-2007 (loess water-erosion region), annual A in t/(hm²·a)."""

    breaks: tuple[float, ...] = (10.0, 25.0, 50.0, 80.0, 150.0)
    names: tuple[str, ...] = ("slight", "light", "moderate", "strong", "severe", "extreme")
    #: First grade counted as "eroded area" (light and above).
    eroded_from: str = "light"
    tolerance_t_hm2_a: float = 10.0

    @model_validator(mode="after")
    def _check(self) -> GradesConfig:
        _strictly_increasing("breaks", self.breaks)
        if len(self.names) != len(self.breaks) + 1:
            raise ValueError("names needs one name more than breaks")
        if self.eroded_from not in self.names:
            raise ValueError(f"eroded_from {self.eroded_from!r} is not one of {list(self.names)}")
        return self


class FVCGapFillConfig(Frozen):
    """FVC for pixel-quarters without a clear observation (lpqlc.erosion.gapfill, docs/erosion.md):
    rules tried in order; the erosion items' quality layer records which one applied."""

    #: "same_quarter": mean of the same quarter in the nearest adjacent years (up to ``years`` away);
    #: "adjacent_quarters": mean of the previous and next quarter. An empty tuple disables filling.
    rules: tuple[Literal["same_quarter", "adjacent_quarters"], ...] = ("same_quarter", "adjacent_quarters")
    years: int = Field(1, ge=1, le=10)
    #: Allow "adjacent_quarters" with one side only (at the ends of the series, or one side cloudy too).
    one_sided: bool = True


class LandCoverGapFillConfig(Frozen):
    """The land-cover class erosion uses where a quarter's map has none (no clear observation that
    quarter): the same pixel's class in the nearest quarter that has one (lpqlc.erosion.gapfill,
    docs/erosion.md). Published land-cover maps are not changed; the erosion quality layer flags it."""

    #: "nearest_quarter": the nearest quarter within ``max_quarters`` (earlier first at equal distance,
    #: the temporal refinement's window); "same_quarter": the same quarter of the years up to ``years``
    #: away (earlier first). Tried in order; an empty tuple disables filling (annual A NaN there).
    rules: tuple[Literal["nearest_quarter", "same_quarter"], ...] = ("nearest_quarter", "same_quarter")
    max_quarters: int = Field(2, ge=1, le=8)
    years: int = Field(1, ge=1, le=10)


class RusleConfig(Frozen):
    """RUSLE A = R·K·LS·C·P (SCIENCE.md §3)."""

    r: RFactorConfig = RFactorConfig()
    k: KFactorConfig = KFactorConfig()
    ls: LSFactorConfig = LSFactorConfig()
    c: CFactorConfig = CFactorConfig()
    p: PFactorConfig = PFactorConfig()
    grades: GradesConfig = GradesConfig()
    gapfill: FVCGapFillConfig = FVCGapFillConfig()
    landcover_gapfill: LandCoverGapFillConfig = LandCoverGapFillConfig()


class TrendConfig(Frozen):
    """Per-pixel Mann–Kendall and Theil–Sen on annual erosion (SCIENCE.md §4)."""

    alpha: float = Field(0.05, gt=0, lt=1)
    hamed_rao: bool = False


class ScenarioConfig(Frozen):
    """Lowest-achievable-erosion reallocation (SCIENCE.md §4, paper §5.2)."""

    quarter: str = "2024Q4"
    forest_min_precip_mm: float = 450.0
    forest_max_elevation_m: float = 4000.0
    #: Unit of the cropland slope thresholds; the seed writes %, Grain-for-Green uses degrees.
    slope_unit: Literal["percent", "degree"] = "percent"
    cropland_max_slope: float = 15.0
    cropland_max_slope_low_silt: float = 25.0
    cropland_low_silt_max_pct: float = 45.0
    bare_to_cropland_min_precip_mm: float = 350.0
    bare_to_cropland_max_elevation_m: float = 3000.0
    bare_to_cropland_max_slope: float = 15.0
    grassland_min_precip_mm: float = 250.0
    #: Class codes the rules name (ESA WorldCover): forest, grassland, cropland, bare land.
    forest_code: int = 10
    grassland_code: int = 30
    cropland_code: int = 40
    bare_code: int = 60
    #: Unsuitable cropland that is not forest-suitable and gets ≤ ``grassland_min_precip_mm``: the
    #: cropland rule's "else grassland" (default) or kept as cropland (the grassland rule's P > 250 mm).
    dry_unsuitable_cropland: Literal["grassland", "keep"] = "grassland"
    #: FVC a converted pixel takes for its C: the median FVC of the target class in the same subregion
    #: and quarter (default; the AOI-wide median where the subregion has none), or the pixel's own FVC.
    converted_fvc: Literal["subregion_median", "pixel"] = "subregion_median"
    #: Histogram bins over FVC 0–1 that give those medians (resolution 1/bins).
    median_bins: int = Field(1000, ge=10, le=100000)
    #: Erosion reported: the scenario quarter's year (the optimised map held for its four quarters,
    #: t/(hm²·a), the paper's figure) or the scenario quarter alone (t/(hm²·q)).
    period: Literal["year", "quarter"] = "year"
    #: Years whose mean annual precipitation drives suitability; empty: the scenario quarter's year.
    precip_years: tuple[int, ...] = ()


class AnalysisConfig(Frozen):
    """Analyses of SCIENCE.md §4."""

    transition_quarters: tuple[str, ...] = ("2000Q3", "2014Q3", "2024Q3")
    top_eroded_fraction: float = Field(0.10, gt=0, le=1)
    trend: TrendConfig = TrendConfig()
    scenario: ScenarioConfig = ScenarioConfig()
    #: Classes whose gain/loss "when" maps are written (paper Figure 10).
    when_classes: tuple[int, ...] = (10, 30)
    #: Slope classes for the terrain tables: breaks in ``slope_unit`` (default: the P-factor slope classes).
    slope_breaks: tuple[float, ...] = (5.0, 7.0, 9.0, 12.0, 20.0, 24.0)
    slope_unit: Literal["degree", "percent"] = "degree"
    #: Elevation bands (m) for the terrain tables.
    elevation_breaks_m: tuple[float, ...] = (1000.0, 1500.0, 2000.0, 2500.0)
    #: Slope (degrees) below which a pixel is "flat" in the aspect table.
    flat_slope_deg: float = Field(1.0, ge=0)
    #: Year of the terrain tables (default: the last published year).
    terrain_year: int | None = None
    #: The two years of the attribution (paper Table 7); default the first and last published years.
    attribution_years: tuple[int, int] | None = None
    #: Pixels with fewer valid years get no trend test (NaN statistics, no trend class).
    trend_min_years: int = Field(8, ge=3)
    #: Quarter (1–4) whose land cover stands for all four in the control run (paper Table 6).
    control_quarter: int = Field(3, ge=1, le=4)


class Prior(Frozen):
    """A REGv1 parameter prior: central value and 95 % interval (seed 004's parameter JSON)."""

    value: float
    ci95: tuple[float, float]
    units: str = ""

    @model_validator(mode="after")
    def _check(self) -> Prior:
        lo, hi = self.ci95
        if not lo <= self.value <= hi:
            raise ValueError(f"value {self.value} lies outside its 95 % interval [{lo}, {hi}]")
        return self


def _p(value: float, lo: float, hi: float, units: str) -> Prior:
    return Prior(value=value, ci95=(lo, hi), units=units)


def _default_priors() -> dict[str, dict[str, Prior]]:
    return {
        "LoessPlateau": {
            "r_V": _p(0.12, 0.06, 0.20, "yr^-1"),
            "K_V": _p(0.70, 0.60, 0.80, "fraction"),
            "lambda1": _p(0.50, 0.20, 0.90, "yr^-1 per (m^3/m^3)"),
            "lambda2": _p(0.08, 0.03, 0.15, "yr^-1 per %SOM"),
            "theta_star": _p(0.17, 0.14, 0.20, "m^3/m^3"),
            "SOM_star": _p(1.2, 0.8, 1.8, "%"),
            "a1": _p(0.18, 0.08, 0.30, "kg C m^-2 yr^-1 per V"),
            "a2": _p(0.035, 0.02, 0.06, "yr^-1"),
            "eta1": _p(5.0, 2.0, 9.0, "mm per %SOM"),
        },
        "ChihuahuanDesert": {
            "r_V": _p(0.06, 0.03, 0.12, "yr^-1"),
            "K_V": _p(0.45, 0.30, 0.60, "fraction"),
            "lambda1": _p(0.35, 0.10, 0.70, "yr^-1 per (m^3/m^3)"),
            "lambda2": _p(0.12, 0.05, 0.25, "yr^-1 per %SOM"),
            "theta_star": _p(0.10, 0.08, 0.13, "m^3/m^3"),
            "SOM_star": _p(0.7, 0.4, 1.2, "%"),
            "a1": _p(0.10, 0.05, 0.18, "kg C m^-2 yr^-1 per V"),
            "a2": _p(0.02, 0.01, 0.05, "yr^-1"),
            "eta1": _p(7.0, 3.0, 12.0, "mm per %SOM"),
        },
    }


class RegV1Config(Frozen):
    """REGv1 vegetation–SOM–moisture ODEs (SCIENCE.md §5): priors and the extra parameters."""

    region: str = "LoessPlateau"
    priors: dict[str, dict[str, Prior]] = Field(default_factory=_default_priors)
    #: Annual rainfall, mm/yr.
    rainfall_mm: float = Field(450.0, ge=0)
    #: Bare-soil infiltration fraction w0 (0–1).
    w0: float = Field(0.3, ge=0, le=1)
    #: Rooting depth Z_r, mm.
    rooting_depth_mm: float = Field(1000.0, gt=0)
    #: Field capacity at zero SOM, m³/m³.
    theta_fc0: float = Field(0.22, gt=0, lt=1)
    #: Moisture loss rate r_θ, yr⁻¹.
    r_theta: float = Field(0.8, ge=0)
    #: Vegetation water uptake u, yr⁻¹ per unit V.
    uptake: float = Field(1.0, ge=0)
    porosity: float = Field(0.45, gt=0, lt=1)
    bulk_density_kg_m3: float = Field(1300.0, gt=0)
    topsoil_depth_m: float = Field(0.2, gt=0)
    target_r2: float = 0.7
    target_holdout_rmse: float = 0.2
    #: solve_ivp method (stiff-capable: "LSODA", "BDF" or "Radau") and its tolerances.
    ode_method: Literal["LSODA", "BDF", "Radau"] = "LSODA"
    rtol: float = Field(1e-6, gt=0, lt=1)
    atol: float = Field(1e-8, gt=0)
    #: Calibration: the last ``holdout_years`` of the observations are kept out of the fit (years).
    holdout_years: float = Field(5.0, ge=0)
    #: Block bootstrap of residuals: replicates, block length (observations; 0 → ⌈n^(1/3)⌉), RNG seed.
    n_bootstrap: int = Field(200, ge=0)
    block_length: int = Field(0, ge=0)
    seed: int = 0
    #: Sobol: base sample N (SALib's Saltelli scheme, N·(2D+2) model runs) and horizon of V, SOM (years).
    sobol_n: int = Field(256, ge=8)
    horizon_years: float = Field(30.0, gt=0)
    #: Profile likelihood: grid points per threshold over its prior interval.
    profile_points: int = Field(9, ge=3)
    #: Annual rainfall per region, mm/yr, used instead of ``rainfall_mm`` for a region listed here: the
    #: means of the seed's example rows (Yanhe 1995–2010: 452; Jornada 2008–2016: 270).
    rainfall_by_region_mm: dict[str, float] = Field(
        default_factory=lambda: {"LoessPlateau": 450.0, "ChihuahuanDesert": 270.0}
    )

    def rainfall_for(self, region: str | None = None) -> float:
        """Annual rainfall (mm/yr) of ``region`` (default ``self.region``)."""
        return float(self.rainfall_by_region_mm.get(region or self.region, self.rainfall_mm))

    @model_validator(mode="after")
    def _check(self) -> RegV1Config:
        if self.region not in self.priors:
            raise ValueError(f"region {self.region!r} has no priors (have {sorted(self.priors)})")
        if self.theta_fc0 > self.porosity:
            raise ValueError("theta_fc0 exceeds porosity")
        return self

    @property
    def c_som(self) -> float:
        """kg C m⁻² → % SOM of the topsoil: 1.724·100/(ρ_b·z)."""
        return 1.724 * 100.0 / (self.bulk_density_kg_m3 * self.topsoil_depth_m)


class ScienceConfig(Frozen):
    """Every science constant of SCIENCE.md, grouped as there."""

    composite: CompositeConfig = CompositeConfig()
    fvc: FVCConfig = FVCConfig()
    landcover: LandCoverConfig = LandCoverConfig()
    ccts: CCTSConfig = CCTSConfig()
    rusle: RusleConfig = RusleConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    regv1: RegV1Config = RegV1Config()
