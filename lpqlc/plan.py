"""The work of a run, without reading a pixel: ``lpqlc plan`` (and the plan ``lpqlc run`` logs first).

Per quarter: the sensor and collection, the output tiles, items per tile and time slices per tile
(min/median/max, from the per-tile sources of :mod:`lpqlc.composite.tiles`), tasks per stage (one
unit per tile for the composite, FVC, classify and erosion stages: the Dask tasks the client submits;
a composite unit builds and runs its tile's odc-stac/stackstac graph inside the worker, see
:mod:`lpqlc.composite.tile_task`; ``--graphs`` also counts those inner tasks by building each tile's
graph as its worker will, which is slow), input bytes (each asset's ``file:size`` where the item gives it,
else its ``proj:shape`` × dtype, weighted by the share of the item's footprint inside each tile),
output bytes (uncompressed composite layers) and the seconds the client took to search and plan.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lpqlc.config import PipelineConfig
from lpqlc.quarter import Quarter

if TYPE_CHECKING:
    import pystac

    from lpqlc.sources.rules import SourceRule

__all__ = ["QuarterPlan", "plan_quarter", "plan_quarters", "asset_bytes", "plan_command", "log_plan"]

log = logging.getLogger(__name__)


def _spread(values: list[int]) -> tuple[int, float, int]:
    """(min, median, max) of ``values``, zeros when empty."""
    return (min(values), float(statistics.median(values)), max(values)) if values else (0, 0.0, 0)


@dataclass
class QuarterPlan:
    """What compositing (and the stages after it) of one quarter will do. Bytes are bytes; seconds, seconds."""

    quarter: str
    sensor: str
    collection: str
    resolution_m: float
    items: int
    tiles: int
    items_per_tile: tuple[int, float, int]
    slices_per_tile: tuple[int, float, int]
    tasks: dict[str, int] = field(default_factory=dict)
    input_bytes: int = 0
    output_bytes: int = 0
    search_seconds: float = 0.0
    plan_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable plan, a few lines."""
        ipt, spt = self.items_per_tile, self.slices_per_tile
        tasks = ", ".join(f"{k} {v}" for k, v in self.tasks.items())
        return [
            f"{self.quarter} {self.sensor} ({self.collection}, {self.resolution_m:g} m): {self.items} items, "
            f"{self.tiles} tiles",
            f"  items per tile min/median/max {ipt[0]}/{ipt[1]:g}/{ipt[2]}, "
            f"time slices per tile {spt[0]}/{spt[1]:g}/{spt[2]}",
            f"  tasks: {tasks} (a composite unit: one task per tile, its graph built and run on the worker)",
            f"  input {self.input_bytes / 1e9:.3f} GB, output {self.output_bytes / 1e9:.3f} GB (uncompressed)",
            f"  client: search {self.search_seconds:.2f} s, plan {self.plan_seconds:.2f} s "
            f"({1000 * self.plan_seconds / max(self.tiles, 1):.1f} ms per tile)",
        ]


_ITEMSIZE = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "float32": 4, "float64": 8}


def asset_bytes(item: pystac.Item, key: str, default_dtype: str) -> int:
    """Bytes of one asset: its ``file:size``, else ``proj:shape`` (asset, then item) × the item size of its
    ``raster:bands`` data type (else ``default_dtype``); 0 when neither is known."""
    asset = item.assets.get(key)
    if asset is None:
        return 0
    extra = asset.extra_fields
    if "file:size" in extra:
        return int(extra["file:size"])
    shape = extra.get("proj:shape") or item.properties.get("proj:shape")
    if not shape:
        return 0
    dtype = ((extra.get("raster:bands") or [{}])[0]).get("data_type", default_dtype)
    return math.prod(int(n) for n in shape) * _ITEMSIZE.get(str(dtype), 2)


def _item_bytes(item: pystac.Item, rule: SourceRule) -> int:
    return sum(asset_bytes(item, a, rule.dtype) for a in rule.bands.values()) + asset_bytes(
        item, rule.mask_asset, rule.mask_dtype
    )


def plan_quarter(cfg: PipelineConfig, quarter: Quarter, *, graphs: bool = False) -> QuarterPlan:
    """The plan of ``quarter`` (see the module doc). ``plan_seconds`` is the client work the run does
    before submitting but the items' JSON for the tasks (per-tile sources and time slices). ``graphs=True``
    also builds every tile's composite graph, as each tile's worker task will, to count its tasks
    (``composite graph tasks (in workers)``); ``plan_seconds`` then includes that cost, which the
    run's client does not pay."""
    from lpqlc.composite.build import plan_slices
    from lpqlc.composite.run import layer_names, tile_graph
    from lpqlc.composite.tiles import ItemIndex, tile_sources
    from lpqlc.grid import OutputGrid
    from lpqlc.sources.search import search_quarter

    t0 = time.perf_counter()
    result = search_quarter(cfg, quarter)
    t1 = time.perf_counter()
    grid = OutputGrid.from_config(cfg)
    tiles = list(grid.iter_tiles(quarter))
    index = ItemIndex(result.items, grid.crs)
    names = layer_names(cfg)
    sizes = {it.id: _item_bytes(it, result.rule) for it in result.items}
    pos = {it.id: i for i, it in enumerate(result.items)}
    n_items, n_slices, graph_tasks, bytes_in, bytes_out = [], [], 0, 0.0, 0
    per_pixel = 4 * (len(cfg.science.composite.bands) + 2) + 2  # bands, NDVI, FVC as float32; count as uint16
    for ts in tile_sources(index, tiles):
        n_items.append(len(ts.items))
        if graphs:
            block, slices = tile_graph(ts, result.rule, cfg, names)
            graph_tasks += len(block.__dask_graph__())
        else:
            slices = len(plan_slices(list(ts.items), result.rule, cfg.science.composite, ts.gbox)[0])
        n_slices.append(slices)
        bytes_in += sum(sizes[it.id] * index.overlap_fraction(pos[it.id], ts.gbox) for it in ts.items)
        bytes_out += math.prod(ts.gbox.shape.yx) * per_pixel
    t2 = time.perf_counter()
    tasks = {"composite units": len(tiles), "fvc units": len(tiles), "classify units": len(tiles),
             "erosion units": len(tiles)}  # fmt: skip
    if graphs:
        tasks["composite graph tasks (in workers)"] = graph_tasks
    return QuarterPlan(
        quarter=str(quarter), sensor=result.rule.sensor, collection=result.report.collection,
        resolution_m=float(cfg.grid.resolution_for(quarter)), items=len(result.items), tiles=len(tiles),
        items_per_tile=_spread(n_items), slices_per_tile=_spread(n_slices), tasks=tasks,
        input_bytes=int(round(bytes_in)), output_bytes=bytes_out, search_seconds=t1 - t0, plan_seconds=t2 - t1,
    )  # fmt: skip


def plan_quarters(cfg: PipelineConfig, quarters: list[Quarter], *, graphs: bool = False) -> list[QuarterPlan]:
    """:func:`plan_quarter` of each quarter, in order."""
    return [plan_quarter(cfg, q, graphs=graphs) for q in quarters]


def log_plan(cfg: PipelineConfig, quarters: list[Quarter]) -> list[QuarterPlan]:
    """Log (INFO) the plan of ``quarters`` without building graphs: what ``lpqlc run`` does first."""
    plans = plan_quarters(cfg, quarters, graphs=False)
    for p in plans:
        for line in p.lines():
            log.info("plan: %s", line)
    total_in = sum(p.input_bytes for p in plans)
    total_out = sum(p.output_bytes for p in plans)
    log.info("plan: %d quarters, %d tile composites, input %.3f GB, output %.3f GB", len(plans),
             sum(p.tiles for p in plans), total_in / 1e9, total_out / 1e9)  # fmt: skip
    return plans


def plan_command(
    config: Annotated[Path, typer.Option(help="Pipeline YAML.")],
    quarters: Annotated[str | None, typer.Option(help="Quarters (default: the configured period), e.g. 2021Q3:2022Q4.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    graphs: Annotated[bool, typer.Option(
        "--graphs", help="Also count the tasks of each tile's composite graph (built inside its worker task "
        "during a run; here on the client, slowly).")] = False,
) -> None:
    """The work of a run without reading pixels: per quarter, tiles, items and time slices per tile,
    tasks per stage (a composite unit is one Dask task per tile that builds and runs the tile's graph on
    its worker), input and output bytes, and the client's planning time."""
    from rich.console import Console

    from lpqlc.config import load_config
    from lpqlc.errors import LpqlcError
    from lpqlc.quarter import parse_quarters

    cfg = load_config(config)
    try:
        qs = parse_quarters(quarters) if quarters else cfg.quarters
    except ValueError as exc:
        raise LpqlcError(f"--quarters: {exc}") from None
    plans = plan_quarters(cfg, qs, graphs=graphs)
    out = Console()
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in plans], indent=2))
        return
    for p in plans:
        for line in p.lines():
            out.print(line, soft_wrap=True, markup=False)
