"""The two loaders (odc-stac, stackstac) give the same composite; stackstac's EPSG needs are met or named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pystac
import pytest

from lpqlc.composite import build_composite
from lpqlc.composite.stackstac_loader import with_epsg
from lpqlc.config import CHINA_ALBERS
from lpqlc.config.pipeline import GridConfig
from lpqlc.errors import ConfigError, SourceError
from lpqlc.grid import OutputGrid, load_aoi
from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive
from lpqlc.sources.search import search_quarter

from .conftest import small_config

S2_Q = Quarter(2022, 1)
L_Q = Quarter(2021, 4)


def _both(archive: SampleArchive, quarter: Quarter, resampling: str, chunk: int | None = None,
          **kw: Any) -> tuple[Any, Any]:  # fmt: skip
    out = []
    for loader in ("odc-stac", "stackstac"):
        cfg = small_config(archive.catalog, composite={"loader": loader, "resampling": resampling}, **kw)
        res = search_quarter(cfg, quarter)
        gbox = OutputGrid.from_config(cfg).geobox(quarter)
        comp = build_composite(res.items, res.rule, cfg.science.composite, gbox, chunk or cfg.grid.chunk_size)
        out.append(comp.compute())
    return out[0], out[1]


@pytest.mark.parametrize("quarter,landsat", [(S2_Q, False), (L_Q, True)])
def test_loaders_are_identical_with_nearest(small_archive: SampleArchive, quarter: Quarter,
                                            landsat: bool) -> None:  # fmt: skip
    """Bit-identical when odc-stac's chunks warp the same output row spans as stackstac's WarpedVRT blocks
    (min(width, 512) px wide): GDAL's approximate transformer interpolates along each warped row span, so
    equal spans give equal source positions. The AOI is 201 px wide: one 256 px chunk spans it."""
    odc, sst = _both(small_archive, quarter, "nearest", chunk=256, landsat_only=landsat)
    assert int(odc["count"].sum()) > 0
    for name in odc.data_vars:
        a, b = odc[name].values, sst[name].values
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
        assert same.all(), (name, same.mean())


def test_loaders_differ_only_at_source_pixel_edges_with_other_chunks(small_archive: SampleArchive) -> None:
    """With 64 px chunks the row spans differ: the loaders disagree only where a pixel centre falls within
    GDAL's interpolation error (≪ 0.125 px, measured ~1e-3 px) of a source pixel edge: 0.04 % of pixels."""
    odc, sst = _both(small_archive, S2_Q, "nearest", chunk=64)
    for name in odc.data_vars:
        a, b = odc[name].values, sst[name].values
        same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
        assert same.mean() > 0.995, (name, same.mean())


def test_loaders_agree_within_tolerance_with_bilinear(small_archive: SampleArchive) -> None:
    """GDAL's warper (stackstac) and odc-geo's reprojection weigh bilinear neighbours a little differently:
    reflectance agrees to 0.02 on 99 % of pixels (measured: 0.0065 for red), the clear count on 98 %."""
    odc, sst = _both(small_archive, S2_Q, "bilinear")
    for b in ("blue", "green", "red", "nir", "swir1"):
        a, c = odc[b].values, sst[b].values
        both = np.isfinite(a) & np.isfinite(c)
        assert both.mean() > 0.5 and (np.isfinite(a) == np.isfinite(c)).mean() > 0.99, b
        assert np.quantile(np.abs(a - c)[both], 0.99) < 0.02, (b, np.quantile(np.abs(a - c)[both], 0.99))
    assert (odc["count"].values == sst["count"].values).mean() > 0.98


def test_stackstac_gets_epsg_from_proj_code_or_names_the_item(small_archive: SampleArchive) -> None:
    cfg = small_config(small_archive.catalog)
    item = search_quarter(cfg, S2_Q).items[0]
    code_only = item.clone()
    code_only.properties.pop("proj:epsg", None)
    code_only.properties["proj:code"] = "EPSG:32649"
    assert with_epsg(code_only).properties["proj:epsg"] == 32649 and "proj:epsg" not in code_only.properties
    custom = code_only.clone()
    custom.properties["proj:code"] = None
    for a in custom.assets.values():
        a.extra_fields.pop("proj:epsg", None)
    with pytest.raises(SourceError, match=item.id):
        with_epsg(custom)
    assert isinstance(with_epsg(item), pystac.Item)


def test_stackstac_refuses_a_custom_grid_crs_clearly(small_archive: SampleArchive) -> None:
    cfg = small_config(small_archive.catalog, composite={"loader": "stackstac"})
    res = search_quarter(cfg, S2_Q)
    gbox = OutputGrid(load_aoi(cfg), GridConfig(crs=CHINA_ALBERS, tile_size=128, chunk_size=64)).geobox(S2_Q)
    with pytest.raises(ConfigError, match="EPSG"):
        build_composite(res.items, res.rule, cfg.science.composite, gbox, 64)


def test_default_loader_falls_back_to_odc_stac_on_a_custom_grid_crs(small_archive: SampleArchive) -> None:
    """The default loader is stackstac; left unset, a custom (non-EPSG) grid CRS is loaded with odc-stac."""
    cfg = small_config(small_archive.catalog)
    assert cfg.science.composite.loader == "stackstac"
    res = search_quarter(cfg, S2_Q)
    gbox = OutputGrid(load_aoi(cfg), GridConfig(crs=CHINA_ALBERS, tile_size=128, chunk_size=64)).geobox(S2_Q)
    comp = build_composite(res.items, res.rule, cfg.science.composite, gbox, 64)
    assert "RasterSource" in " ".join(repr(v) for v in dict(comp.red.data.__dask_graph__()).values())
