"""Per-collection source rules: which asset holds which band, how clouds are flagged, how DNs scale.

A :class:`SourceRule` is resolved from the pipeline's source ``flavour`` (Earth Search v1 or Planetary
Computer) and the sensor (``sentinel2``, ``landsat``). Everything here reads metadata only; the pixel
work that uses it (masking, scaling) is in :mod:`lpqlc.composite.masking`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import pystac

from lpqlc.config.science import CompositeConfig
from lpqlc.errors import SourceError

__all__ = ["SourceRule", "rule_for", "item_scaling", "processing_baseline", "RULES"]

Sensor = Literal["sentinel2", "landsat"]
Flavour = Literal["earth-search", "planetary-computer"]


@dataclass(frozen=True)
class SourceRule:
    """How one collection of one archive maps onto the composite's bands and masks.

    ``bands`` maps each composite band (blue, green, red, nir, swir1) to the item's asset key;
    ``mask_asset`` holds the per-pixel quality (S2 SCL classes or Landsat QA_PIXEL bits, per ``mask_kind``;
    ``mask_nodata`` marks where no item covers the pixel).
    ``default_scale``/``default_offset`` apply when an asset lacks ``raster:bands`` scale/offset
    (reflectance = DN·scale + offset). ``nodata`` is the DN of missing pixels.
    """

    sensor: Sensor
    flavour: Flavour
    bands: dict[str, str]
    mask_asset: str
    mask_kind: Literal["scl", "qa_bits"]
    default_scale: float
    default_offset: float
    nodata: int
    native_resolution: float
    dtype: str = "uint16"
    mask_dtype: str = "uint8"
    mask_nodata: int = 0

    @property
    def assets(self) -> list[str]:
        """Every asset key a composite loads: the bands, then the mask."""
        return [*self.bands.values(), self.mask_asset]


_S2_ES = {"blue": "blue", "green": "green", "red": "red", "nir": "nir", "swir1": "swir16"}
_S2_PC = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11"}
_LANDSAT = {"blue": "blue", "green": "green", "red": "red", "nir": "nir08", "swir1": "swir16"}

#: The rules of the archives the pipeline knows, by (flavour, sensor).
RULES: dict[tuple[Flavour, Sensor], SourceRule] = {
    ("earth-search", "sentinel2"): SourceRule("sentinel2", "earth-search", _S2_ES, "scl", "scl", 1e-4, 0.0, 0, 10.0),
    ("planetary-computer", "sentinel2"): SourceRule("sentinel2", "planetary-computer", _S2_PC, "SCL", "scl", 1e-4, 0.0, 0, 10.0),
    ("earth-search", "landsat"): SourceRule("landsat", "earth-search", _LANDSAT, "qa_pixel", "qa_bits", 2.75e-5, -0.2, 0, 30.0, "uint16", "uint16", 1),
    ("planetary-computer", "landsat"): SourceRule("landsat", "planetary-computer", _LANDSAT, "qa_pixel", "qa_bits", 2.75e-5, -0.2, 0, 30.0, "uint16", "uint16", 1),
}  # fmt: skip


def rule_for(flavour: str, sensor: str, bands: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1")) -> SourceRule:
    """The rule for an archive flavour and sensor, restricted to ``bands`` (config ``composite.bands``)."""
    try:
        rule = RULES[(flavour, sensor)]  # type: ignore[index]
    except KeyError:
        known = ", ".join(f"{f}/{s}" for f, s in RULES)
        raise SourceError(f"no source rule for flavour {flavour!r} and sensor {sensor!r} (known: {known})") from None
    missing = [b for b in bands if b not in rule.bands]
    if missing:
        raise SourceError(f"composite.bands {missing} have no asset in the {flavour} {sensor} rule")
    return SourceRule(**{**rule.__dict__, "bands": {b: rule.bands[b] for b in bands}})


def processing_baseline(item: pystac.Item, cfg: CompositeConfig) -> str | None:
    """The Sentinel-2 processing baseline of an item: ``s2:processing_baseline``, else the product URI's
    ``_Nxxyy_`` field, else inferred from the acquisition date (``cfg.s2_offset_from``); ``None`` for
    non-Sentinel-2 items."""
    props = item.properties
    if "s2:processing_baseline" in props:
        return str(props["s2:processing_baseline"])
    uri = str(props.get("s2:product_uri", ""))
    for part in uri.split("_"):
        if len(part) == 5 and part[0] == "N" and part[1:].isdigit():
            return f"{part[1:3]}.{part[3:]}"
    if item.datetime is None:
        return None
    return cfg.s2_offset_baseline if item.datetime.date() >= date.fromisoformat(cfg.s2_offset_from) else "00.00"


def item_scaling(item: pystac.Item, asset_key: str, rule: SourceRule, cfg: CompositeConfig) -> tuple[float, float, int]:
    """(scale, offset, nodata) that turn the asset's DNs into surface reflectance: ρ = DN·scale + offset.

    ``raster:bands`` of the asset is authoritative where it gives scale/offset (Earth Search declares the
    baseline-04.00 offset there, −0.1). Where it gives no offset (Planetary Computer), a Sentinel-2 item
    of baseline ≥ ``cfg.s2_offset_baseline`` gets ``cfg.s2_offset_dn``·scale, unless the archive says it
    already removed the offset (``earthsearch:boa_offset_applied: true``).
    """
    asset = item.assets.get(asset_key)
    if asset is None:
        raise SourceError(f"item {item.id} has no asset {asset_key!r} (needed by the {rule.flavour} {rule.sensor} rule)")
    rb: dict[str, Any] = (asset.extra_fields.get("raster:bands") or [{}])[0]
    scale = float(rb.get("scale", rule.default_scale))
    nodata = int(rb.get("nodata", rule.nodata))
    if "offset" in rb:
        return scale, float(rb["offset"]), nodata
    offset = rule.default_offset
    if rule.sensor == "sentinel2" and not item.properties.get("earthsearch:boa_offset_applied", False):
        baseline = processing_baseline(item, cfg)
        if baseline is not None and baseline >= cfg.s2_offset_baseline:
            offset += cfg.s2_offset_dn * scale
    return scale, offset, nodata
