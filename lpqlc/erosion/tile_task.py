"""One erosion tile built and computed inside its worker task (the pattern of :mod:`lpqlc.composite.tile_task`).

Building a tile's RUSLE graph costs ~15 odc-stac ``load`` calls per quarter (land cover and its gap
fillers, K, LS, slope, FVC and its neighbours), ~0.15 s of client time per tile and quarter: about 15
minutes per plateau year at 2048 px tiles, hours at smaller ones. So the client only chooses the tile's
files (:func:`tile_spec`: the footprints it read once per run tell which files meet the tile) and
submits one small task; the worker builds the tile's layers on the tile's GeoBox
(:func:`lpqlc.erosion.run._quarter_layers`), computes them on its own synchronous scheduler and writes
the tile's COGs (:func:`erosion_tile`), returning only the tile's sums. Memory is that of one tile's
layers; the client's per-tile work is the file choice, the unit key and one submit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from lpqlc.quarter import Quarter
from lpqlc.storage import gdal_env

if TYPE_CHECKING:
    from lpqlc.config import PipelineConfig
    from lpqlc.erosion.run import Footprints, FVCNeighbours

__all__ = ["TileSpec", "tile_spec", "erosion_tile"]


@dataclass
class TileSpec:
    """What a tile task reads: the tile's GeoBox and quarters, and per input only the files meeting the
    tile (static layers by name; per quarter its land cover, land-cover gap fillers, FVC and FVC
    neighbours), with ``footprints`` holding just those files' grids and bounds."""

    gbox: GeoBox
    quarters: list[Quarter]
    static: dict[str, list[str]]
    landcover: dict[Quarter, list[str]]
    landcover_fillers: dict[Quarter, list[list[str]]]
    fvc: dict[Quarter, list[str]]
    fvc_neighbours: dict[Quarter, FVCNeighbours]
    footprints: Footprints
    urls: list[str] = field(default_factory=list)


def tile_spec(footprints: Footprints, gbox: GeoBox, quarters: list[Quarter], static: dict[str, list[str]],
              landcover: dict[Quarter, list[str]], fillers: dict[Quarter, list[list[str]]],
              fvc: dict[Quarter, list[str]], neighbours: dict[Quarter, FVCNeighbours]) -> TileSpec:  # fmt: skip
    """The :class:`TileSpec` of the tile ``gbox``: each file list cut to the files meeting the tile
    (:meth:`Footprints.pick`, bounds read once per run on the client)."""
    from lpqlc.erosion.run import FVCNeighbours

    used: list[str] = []

    def pick(urls: list[str]) -> list[str]:
        # as the load on the worker would choose (the first file when none meets the tile: an FVC layer
        # then reads as NaN, a neighbour as absent — exactly as with the full list)
        chosen = footprints.pick(urls, gbox) if urls else []
        used.extend(chosen)
        return chosen

    def pick_neighbours(nb: FVCNeighbours) -> FVCNeighbours:
        return FVCNeighbours(same_quarter=[[pick(u) for u in ring] for ring in nb.same_quarter],
                             previous=pick(nb.previous), following=pick(nb.following), digests=list(nb.digests))

    chosen = {
        "static": {k: pick(v) for k, v in static.items()},
        "landcover": {q: pick(landcover[q]) for q in quarters},
        "landcover_fillers": {q: [pick(u) for u in fillers[q]] for q in quarters},
        "fvc": {q: pick(fvc[q]) for q in quarters},
        "fvc_neighbours": {q: pick_neighbours(neighbours[q]) for q in quarters},
    }
    urls = list(dict.fromkeys(used))
    return TileSpec(gbox=gbox, quarters=list(quarters), footprints=footprints.subset(urls, gbox.crs), urls=urls,
                    **chosen)  # fmt: skip


def erosion_tile(cfg: PipelineConfig, spec: TileSpec, r_year: xr.DataArray, landcover: str, names: tuple[str, ...],
                 year: int | None, prefix: str, tile: str, factors: bool, features: list[tuple[str, dict[str, Any]]],
                 grade_breaks: tuple[float, ...], grade_colours: dict[int, str] | None,
                 quality_colours: dict[int, str] | None) -> dict[str, Any]:  # fmt: skip
    """Build, compute (synchronously, here on the worker) and write one tile's quarterly and annual
    layers; return its sums per (period, subregion) (:func:`lpqlc.erosion.run._write_year_tile`).

    ``r_year``: the year's quarterly R on the precipitation grid (quarter, y, x), in memory (a few
    hundred pixels a side for the plateau: the run computes it once per year and keeps it on the cluster)."""
    import odc.stac

    from lpqlc.erosion.run import _quarter_layers, _write_year_tile

    odc.stac.configure_rio(cloud_defaults=True, **gdal_env(cfg.store))
    w = int(cfg.science.rusle.r.window_px)  # R's windows as before: the same reprojection, the same values
    r_year = r_year.chunk({r_year.dims[0]: -1, r_year.dims[1]: w, r_year.dims[2]: w})
    layers = {str(q): _quarter_layers(cfg, q, spec.gbox, spec.static, r_year, landcover, spec.fvc[q],
                                      spec.fvc_neighbours[q], spec.landcover_fillers[q], spec.footprints,
                                      lc_urls=spec.landcover[q]) for q in spec.quarters}  # fmt: skip
    lazy = {f"{q}/{name}": layers[q][name].data for q in layers for name in names}
    (arrays,) = dask.compute(lazy, scheduler="synchronous")
    spec.footprints.loads.clear()
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    return _write_year_tile(arrays, list(layers), year, spec.gbox, prefix, tile, cfg.store, factors, features,
                            grade_breaks, grade_colours, cfg.grid.cog_blocksize, quality_colours)  # fmt: skip
