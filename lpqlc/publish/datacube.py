"""Kerchunk references that present a product's whole time series as one lazy xarray dataset.

Each published COG is scanned once with ``kerchunk.tiff.tiff_to_zarr`` (its full-resolution level).
Because the output tiles sit on one global tiling whose edges are multiples of the COG block size,
every COG block is exactly one chunk of the mosaic: the references of all tiles and periods are laid
into one ``(time, y, x)`` Zarr array per asset, with ``x``/``y`` cell-centre coordinates, a ``time``
coordinate (period midpoints), and a CF ``spatial_ref`` grid mapping carrying the CRS. Nothing is
copied: reading the dataset reads byte ranges of the published COGs.

A product changes pixel size between eras (30 m Landsat, 10 m Sentinel-2), so there is one datacube
per resolution: ``<collection>/datacube-<res>m.json``. That file is a small index; the references are
partitioned by year (``<collection>/datacube/<YYYY>-<res>m.json``), so an update rewrites only the
years it touched and :func:`open_datacube` downloads only the years asked for, then concatenates them
along ``time`` (lazily). Per-year kerchunk JSON was kept over one kerchunk parquet reference store of
the whole series by measurement (docs/performance.md; ``benchmarks/incremental.py --mode datacube``):
opening a year is as cheap or cheaper (3 requests vs 8), the year is the unit an update rewrites
(a parquet store cannot be appended to), and readers need no parquet engine; parquet would win for
opening all years at once.
"""

from __future__ import annotations

import base64
import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from lpqlc.errors import LpqlcError
from lpqlc.storage import Store, as_store, parse_storage_url, read_bytes

__all__ = ["scan_cog", "build_references", "open_datacube", "register_codecs", "datacube_name", "partition_name",
           "parse_years"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def register_codecs() -> None:
    """Make the TIFF predictors (imagecodecs' floatpred/delta) known to numcodecs/zarr."""
    import imagecodecs.numcodecs

    imagecodecs.numcodecs.register_codecs(verbose=False)


def _storage_options(url: str, store: Store | None) -> dict[str, Any]:
    return as_store(store).storage_options(url)


def scan_cog(url: str, store: Store | None = None) -> dict[str, Any]:
    """References of a COG's full-resolution level: ``.zarray`` (dict) and ``"i.j"`` → [url, offset, size]."""
    from kerchunk.tiff import tiff_to_zarr

    loc = parse_storage_url(url, what="COG URL")
    refs = tiff_to_zarr(loc.url, remote_options=_storage_options(url, store))
    level = "0/" if "0/.zarray" in refs else ""
    zarray = json.loads(refs[f"{level}.zarray"])
    chunks = {}
    for key, value in refs.items():
        if not key.startswith(level) or key[len(level):].startswith("."):
            continue
        name = key[len(level):]
        if "/" in name:
            continue
        href, offset, size = value
        chunks[name] = [loc.url if href in (url, loc.root, loc.url) else href, offset, size]
    return {"zarray": zarray, "chunks": chunks}


def datacube_name(resolution: float) -> str:
    """``datacube-10m.json``."""
    return f"datacube-{resolution:g}m.json"


def partition_name(year: int, resolution: float) -> str:
    """``2021-10m.json``: the references of one year at one resolution (under ``datacube/``)."""
    return f"{year}-{resolution:g}m.json"


def parse_years(text: str | None) -> tuple[int, int] | None:
    """``2020:2024`` (inclusive; either end may be omitted) or ``2021`` → (first, last); None for all."""
    if not text:
        return None
    a, _, b = text.partition(":") if ":" in text else (text, ":", text)
    try:
        return (int(a) if a else 0, int(b) if b else 9999)
    except ValueError:
        raise LpqlcError(f"--years {text!r}: expected YEAR or FIRST:LAST, e.g. 2020:2024") from None


def _inline(arr: np.ndarray) -> str:
    return "base64:" + base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _zarray(shape: Sequence[int], chunks: Sequence[int], dtype: str, fill: Any = None,
            compressor: Any = None, filters: Any = None) -> str:  # fmt: skip
    if isinstance(fill, float) and math.isnan(fill):
        fill = "NaN"  # the Zarr v2 spelling
    return json.dumps({"chunks": list(chunks), "compressor": compressor, "dtype": dtype, "fill_value": fill,
                       "filters": filters, "order": "C", "shape": list(shape), "zarr_format": 2})  # fmt: skip


def build_references(
    items: Sequence[Mapping[str, Any]],
    scans: Mapping[tuple[str, str], Mapping[str, Any]],
    assets: Sequence[str],
    *,
    title: str,
) -> dict[str, Any]:
    """One kerchunk reference set (version 1) for ``items`` of one grid resolution.

    ``scans`` maps (item id, asset key) to :func:`scan_cog` output. Raises :class:`LpqlcError` when
    the tiles do not align with the COG blocks or the assets disagree in type or encoding.
    """
    if not items:
        raise LpqlcError("no items to build a datacube from")
    p0 = items[0]["properties"]
    res = p0["proj:transform"][0]
    yres = p0["proj:transform"][4]
    x0 = min(i["properties"]["proj:transform"][2] for i in items)
    y0 = max(i["properties"]["proj:transform"][5] for i in items)
    x1 = max(i["properties"]["proj:bbox"][2] for i in items)
    y1 = min(i["properties"]["proj:bbox"][1] for i in items)
    width, height = round((x1 - x0) / res), round((y1 - y0) / yres)
    periods = sorted({i["properties"]["datetime"] for i in items})
    t_index = {t: n for n, t in enumerate(periods)}
    refs: dict[str, Any] = {".zgroup": json.dumps({"zarr_format": 2})}
    wkt = p0.get("proj:wkt2")
    if wkt is None:
        from pyproj import CRS

        wkt = CRS.from_user_input(p0["proj:code"]).to_wkt()
    refs[".zattrs"] = json.dumps({"title": title, "Conventions": "CF-1.8", "crs_wkt": wkt})
    xs = x0 + res * (np.arange(width) + 0.5)
    ys = y0 + yres * (np.arange(height) + 0.5)
    secs = np.array([(datetime.fromisoformat(t.replace("Z", "+00:00")) - _EPOCH).total_seconds() for t in periods],
                    dtype="<i8")  # fmt: skip
    for name, values, attrs in (
        ("x", xs.astype("<f8"), {"_ARRAY_DIMENSIONS": ["x"], "standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}),
        ("y", ys.astype("<f8"), {"_ARRAY_DIMENSIONS": ["y"], "standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"}),
        ("time", secs, {"_ARRAY_DIMENSIONS": ["time"], "standard_name": "time", "units": "seconds since 1970-01-01T00:00:00Z", "calendar": "proleptic_gregorian"}),
    ):  # fmt: skip
        refs[f"{name}/.zarray"] = _zarray([len(values)], [len(values)], values.dtype.str)
        refs[f"{name}/.zattrs"] = json.dumps(attrs)
        refs[f"{name}/0"] = _inline(values)
    transform = [x0, res, 0.0, y0, 0.0, yres]
    refs["spatial_ref/.zarray"] = _zarray([], [], "<i4")
    refs["spatial_ref/.zattrs"] = json.dumps({"_ARRAY_DIMENSIONS": [], "crs_wkt": wkt, "spatial_ref": wkt,
                                              "GeoTransform": " ".join(f"{v!r}" for v in transform)})  # fmt: skip
    refs["spatial_ref/0"] = _inline(np.zeros((), "<i4"))
    for asset in assets:
        _lay_out_asset(refs, items, scans, asset, t_index, (x0, y0, res, yres), (height, width))
    return {"version": 1, "refs": refs}


def _lay_out_asset(refs: dict[str, Any], items: Sequence[Mapping[str, Any]], scans: Mapping[tuple[str, str], Mapping[str, Any]],
                   asset: str, t_index: dict[str, int], origin: tuple[float, float, float, float],
                   shape: tuple[int, int]) -> None:  # fmt: skip
    x0, y0, res, yres = origin
    height, width = shape
    first = scans[(items[0]["id"], asset)]["zarray"]
    bh, bw = first["chunks"]
    encoding = (first["dtype"], first["compressor"], first["filters"], first["fill_value"])
    for it in items:
        scan = scans[(it["id"], asset)]
        z = scan["zarray"]
        if (z["dtype"], z["compressor"], z["filters"], z["fill_value"]) != encoding or z["chunks"] != [bh, bw]:
            raise LpqlcError(f"item {it['id']} asset {asset!r}: encoding differs from {items[0]['id']} "
                             f"({z['dtype']}, {z['chunks']}) — republish it")  # fmt: skip
        t = it["properties"]["proj:transform"]
        ox, oy = (t[2] - x0) / res, (t[5] - y0) / yres
        if abs(ox - round(ox)) > 1e-6 or abs(oy - round(oy)) > 1e-6 or round(ox) % bw or round(oy) % bh:
            raise LpqlcError(f"item {it['id']}: tile origin is not on the {bw}-pixel block grid of the datacube")
        th, tw = z["shape"]
        if (th % bh and round(oy) + th != height) or (tw % bw and round(ox) + tw != width):
            raise LpqlcError(f"item {it['id']}: a partial block inside the mosaic (tile {tw}×{th} px, blocks {bw})")
        ti = t_index[it["properties"]["datetime"]]
        by, bx = round(oy) // bh, round(ox) // bw
        for key, ref in scan["chunks"].items():
            i, j = (int(v) for v in key.split("."))
            refs[f"{asset}/{ti}.{by + i}.{bx + j}"] = ref
    fill = encoding[3]
    attrs: dict[str, Any] = {"_ARRAY_DIMENSIONS": ["time", "y", "x"], "grid_mapping": "spatial_ref"}
    band = items[0]["assets"][asset].get("raster:bands", [{}])[0]
    if band.get("unit"):
        attrs["units"] = band["unit"]
    if items[0]["assets"][asset].get("title"):
        attrs["long_name"] = items[0]["assets"][asset]["title"]
    classes = items[0]["assets"][asset].get("classification:classes")
    if classes:
        attrs["flag_values"] = [c["value"] for c in classes]
        attrs["flag_meanings"] = " ".join(c["name"] for c in classes)
    refs[f"{asset}/.zarray"] = _zarray([len(t_index), height, width], [1, bh, bw], encoding[0], fill,
                                        encoding[1], _with_time_axis(encoding[2]))  # fmt: skip
    refs[f"{asset}/.zattrs"] = json.dumps(attrs)


def _with_time_axis(filters: Any) -> Any:
    """TIFF predictor filters decode a (y, x) block; our chunks are (1, y, x): give them the 3-D shape."""
    if not filters:
        return filters
    out = []
    for f in filters:
        f = dict(f)
        if "shape" in f:
            f["shape"] = [1, *f["shape"]]
        out.append(f)
    return out


def _open_refs(refs: Mapping[str, Any], url: str, store: Store | None, chunks: Mapping[str, int] | None) -> Any:
    import xarray as xr

    some = next((v for k, v in refs["refs"].items() if isinstance(v, list)), None)
    remote = parse_storage_url(some[0]) if some else parse_storage_url(posixpath.dirname(url))
    remote_options = {**_storage_options(remote.url, store), "asynchronous": True}
    ds = xr.open_dataset(
        "reference://",
        engine="zarr",
        chunks=dict(chunks) if chunks is not None else {},
        mask_and_scale=False,  # class codes stay integers; nodata is in each variable's _FillValue encoding
        backend_kwargs={
            "consolidated": False,
            "storage_options": {"fo": dict(refs), "remote_protocol": remote.protocol, "remote_options": remote_options,
                                "asynchronous": True},
        },
    )  # fmt: skip
    return ds.set_coords("spatial_ref")


def _join(base: str, href: str) -> str:
    if "://" in href or href.startswith("/"):
        return href
    return f"{posixpath.dirname(base.rstrip('/'))}/{posixpath.normpath(href)}"


def open_datacube(url: str, store: Store | None = None, *, chunks: Mapping[str, int] | None = None,
                  years: tuple[int, int] | None = None) -> Any:  # fmt: skip
    """Open a datacube (local or ``s3://``) as a lazy, dask-backed ``xarray.Dataset`` (time, y, x).

    ``url`` is a datacube index (``<collection>/datacube-<res>m.json``) or one year's reference file.
    With an index only the reference files of ``years`` (first, last; inclusive) are downloaded, each
    opened and the years concatenated along ``time`` (an outer join in space: a tile missing in a year
    reads as the fill value). Raises :class:`LpqlcError` when no published year falls in ``years``.
    """
    import xarray as xr

    register_codecs()
    doc = json.loads(read_bytes(url, store))
    if "partitions" not in doc:
        if years is not None:
            raise LpqlcError(f"{url} is one reference file, not a datacube index: --years needs the index "
                             "(<collection>/datacube-<res>m.json)")  # fmt: skip
        return _open_refs(doc, url, store, chunks)
    parts = {int(y): h for y, h in doc["partitions"].items()}
    first, last = years or (min(parts), max(parts))
    chosen = [parts[y] for y in sorted(parts) if first <= y <= last]
    if not chosen:
        raise LpqlcError(f"{url}: no published year in {first}–{last} (published: {', '.join(map(str, sorted(parts)))})")
    sets = []
    for href in chosen:
        part = _join(url, href)
        sets.append(_open_refs(json.loads(read_bytes(part, store)), part, store, chunks))
    if len(sets) == 1:
        return sets[0]
    first_ds = sets[0]
    fill = {v: first_ds[v].attrs.get("_FillValue", first_ds[v].encoding.get("_FillValue", 0))
            for v in first_ds.data_vars}  # fmt: skip
    ds = xr.concat(sets, dim="time", join="outer", data_vars="minimal", coords="minimal", compat="override",
                   combine_attrs="override", fill_value=fill)  # fmt: skip
    if not ds.indexes["x"].is_monotonic_increasing:
        ds = ds.sortby("x")
    if not ds.indexes["y"].is_monotonic_decreasing:
        ds = ds.sortby("y", ascending=False)
    return ds
