"""REGv1 observations: the seed's CSV schema, its example files, and V(t) from the pipeline's own FVC.

Schema (seed 004): ``year, location, veg_cover_%, SOM_%, rainfall_mm, runoff_mm, erosion_t/ha``; an empty
cell is a missing value (NaN), never zero. Units: cover and SOM in %, rainfall and runoff in mm/yr,
erosion in t/ha/yr.
"""

from __future__ import annotations

import io
from importlib import resources
from typing import Any

import numpy as np

from lpqlc.errors import LpqlcError
from lpqlc.storage import Store

__all__ = [
    "COLUMNS",
    "EXAMPLES",
    "example_path",
    "observations_from_products",
    "read_observations",
    "read_validation_sites",
]

COLUMNS: tuple[str, ...] = (
    "year",
    "location",
    "veg_cover_%",
    "SOM_%",
    "rainfall_mm",
    "runoff_mm",
    "erosion_t/ha",
)
NUMERIC: tuple[str, ...] = COLUMNS[2:]
SITE_COLUMNS: tuple[str, ...] = (
    "site",
    "climate_zone",
    "MAP_mm",
    "years",
    "V_crit_est_%",
    "SOM_star_est_%",
    "theta_star_est",
)
#: The seed's example files shipped in ``lpqlc/data/regv1`` and the region each belongs to.
EXAMPLES: dict[str, str] = {
    "loess_plateau_1995_2010.csv": "LoessPlateau",
    "johnson_soil_carbon.csv": "ChihuahuanDesert",
}


def example_path(name: str) -> str:
    """Path of one of the seed's example CSVs (``loess_plateau_1995_2010.csv``, ``johnson_soil_carbon.csv``,
    ``validation_sites.csv``)."""
    path = resources.files("lpqlc") / "data" / "regv1" / name
    if not path.is_file():
        raise LpqlcError(f"no example file {name!r} in lpqlc/data/regv1")
    return str(path)


def _read_text(source: str, store: Store | None) -> str:
    from lpqlc.storage import read_bytes

    try:
        return read_bytes(source, store).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, LpqlcError) as exc:
        raise LpqlcError(f"{source}: cannot read: {exc}") from None


def _frame(source: str, text: str, expected: tuple[str, ...]) -> Any:
    import pandas as pd

    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LpqlcError(f"{source}: not a readable CSV: {exc}") from None
    header = [c.strip() for c in raw.columns]
    if header != list(expected):
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        raise LpqlcError(
            f"{source}, line 1: wrong header {header}; expected {list(expected)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )
    raw.columns = header
    return raw.apply(lambda c: c.str.strip())


def _numbers(source: str, raw: Any, columns: tuple[str, ...], *, required: tuple[str, ...] = ()) -> Any:
    import pandas as pd

    out = {}
    for col in columns:
        text = raw[col]
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = (text != "") & values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LpqlcError(f"{source}, line {i + 2}, column {col!r}: {text.iloc[i]!r} is not a number")
        if col in required and (text == "").any():
            i = int(np.flatnonzero((text == "").to_numpy())[0])
            raise LpqlcError(f"{source}, line {i + 2}, column {col!r}: a value is required")
        out[col] = values.astype(float)
    return out


def read_observations(csv: str, store: Store | None = None) -> Any:
    """The seed's observation CSV (local path or ``s3://``) as a ``pandas.DataFrame`` with its columns
    (year int, location str, the rest float with NaN for empty cells), sorted by location and year.

    Raises :class:`LpqlcError` naming the file, line and column of a wrong header, a non-number, a missing
    year or location, a negative value or a cover outside 0–100 %."""
    raw = _frame(csv, _read_text(csv, store), COLUMNS)
    nums = _numbers(csv, raw, ("year", *NUMERIC), required=("year",))
    df = raw[["location"]].copy()
    for i, loc in enumerate(df["location"]):
        if not loc:
            raise LpqlcError(f"{csv}, line {i + 2}, column 'location': a value is required")
    for col, values in nums.items():
        df[col] = values
    if (df["year"] % 1 != 0).any():
        i = int(np.flatnonzero((df["year"] % 1 != 0).to_numpy())[0])
        raise LpqlcError(f"{csv}, line {i + 2}, column 'year': {raw['year'].iloc[i]!r} is not a whole year")
    for col in NUMERIC:
        neg = df[col] < 0
        if neg.any():
            i = int(np.flatnonzero(neg.to_numpy())[0])
            raise LpqlcError(f"{csv}, line {i + 2}, column {col!r}: {raw[col].iloc[i]!r} is negative")
    over = df["veg_cover_%"] > 100
    if over.any():
        i = int(np.flatnonzero(over.to_numpy())[0])
        raise LpqlcError(
            f"{csv}, line {i + 2}, column 'veg_cover_%': {raw['veg_cover_%'].iloc[i]!r} exceeds 100 %"
        )
    df["year"] = df["year"].astype(int)
    dup = df.duplicated(["location", "year"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise LpqlcError(
            f"{csv}, line {i + 2}: year {df['year'].iloc[i]} of {df['location'].iloc[i]!r} appears twice"
        )
    return df[list(COLUMNS)].sort_values(["location", "year"], kind="stable").reset_index(drop=True)


def _range(text: str) -> tuple[float, float]:
    parts = [p for p in text.replace("–", "-").replace("—", "-").split("-") if p.strip()]
    lo, hi = float(parts[0]), float(parts[-1])
    return lo, hi


def read_validation_sites(csv: str, store: Store | None = None) -> Any:
    """The seed's ``validation_sites.csv``: one row per site with MAP_mm (float) and each ``a–b`` range
    split into ``<column>_lo`` / ``<column>_hi`` floats. Errors name the file, line and column."""
    raw = _frame(csv, _read_text(csv, store), SITE_COLUMNS)
    df = raw[["site", "climate_zone", "years"]].copy()
    df["MAP_mm"] = _numbers(csv, raw, ("MAP_mm",))["MAP_mm"]
    for col in ("V_crit_est_%", "SOM_star_est_%", "theta_star_est"):
        lo, hi = [], []
        for i, text in enumerate(raw[col]):
            try:
                a, b = _range(text) if text else (np.nan, np.nan)
            except ValueError:
                raise LpqlcError(
                    f"{csv}, line {i + 2}, column {col!r}: {text!r} is not a number or a range a–b"
                ) from None
            lo.append(a)
            hi.append(b)
        df[f"{col}_lo"], df[f"{col}_hi"] = lo, hi
    return df


def _label_block(
    block: np.ndarray, shapes: list[tuple[Any, int]], gbox: Any, block_info: dict[Any, Any] | None = None
) -> np.ndarray:
    """Subregion codes (0 = none) of one chunk, rasterised on the chunk's own part of the grid."""
    from rasterio.features import rasterize

    if not shapes:
        return np.zeros(block.shape, np.int32)
    (y0, y1), (x0, x1) = block_info[0]["array-location"]  # type: ignore[index]
    sub = gbox[y0:y1, x0:x1]
    return rasterize(shapes, out_shape=block.shape, transform=sub.transform, fill=0, dtype="int32")


def observations_from_products(
    cfg: Any, comp_dir: str, quarters: list[Any], *, out: str | None = None
) -> Any:
    """V(t) from the pipeline's published quarterly FVC (``comp_dir``/<quarter>/<tile>/fvc.tif, the
    composites of ``lpqlc composite``), averaged per management subregion and year, in the seed's schema.

    One lazy dask graph per quarter: the FVC mosaic (:func:`lpqlc.composite.run.composite_layer`), the
    subregion codes rasterised chunk by chunk, and a weighted ``bincount`` — sums and pixel counts per
    subregion are the only things computed (one ``dask.compute`` for all quarters). A year's value is the
    mean of its quarters' means (quarters weigh equally, whatever their sensor's pixel size); ``location``
    is the subregion code, plus the AOI name for the whole area. Other columns are empty (missing).
    Writes the CSV to ``out`` when given. Returns the ``pandas.DataFrame``.
    """
    import dask
    import dask.array as da
    import pandas as pd
    from odc.geo import geom

    from lpqlc.composite.run import composite_layer
    from lpqlc.erosion.inputs import subregion_features
    from lpqlc.grid import OutputGrid
    from lpqlc.storage import write_bytes

    if not quarters:
        raise LpqlcError("observations_from_products: no quarters given")
    features = subregion_features(cfg)
    codes = [c for c, _ in features]
    n = len(codes)
    grid = OutputGrid.from_config(cfg)
    lazy = []
    for q in quarters:
        fvc = composite_layer(cfg, comp_dir, q, "fvc", chunks=cfg.grid.chunk_size).data
        gbox = grid.geobox(q)
        shapes = [
            (geom.Geometry(g, "EPSG:4326").to_crs(gbox.crs).geom, i + 1) for i, (_, g) in enumerate(features)
        ]
        labels = da.map_blocks(_label_block, fvc, shapes, gbox, dtype=np.int32)
        valid = da.isfinite(fvc)
        index = da.where(valid, labels, n + 1).ravel()  # n + 1: no data
        sums = da.bincount(
            index, weights=da.where(valid, fvc, 0.0).ravel().astype(np.float64), minlength=n + 2
        )
        counts = da.bincount(index, minlength=n + 2)
        lazy.append((sums, counts))
    done = dask.compute(*lazy)
    rows: dict[tuple[int, str], list[float]] = {}
    for q, (sums, counts) in zip(quarters, done, strict=True):
        per = {cfg.aoi.name: (sums[: n + 1].sum(), counts[: n + 1].sum())}
        per.update({c: (sums[i + 1], counts[i + 1]) for i, c in enumerate(codes)})
        for loc, (s, k) in per.items():
            if k > 0:
                rows.setdefault((q.year, loc), []).append(100.0 * float(s) / float(k))
    table = pd.DataFrame(
        [
            {"year": y, "location": loc, "veg_cover_%": float(np.mean(v))}
            for (y, loc), v in sorted(rows.items())
        ],
        columns=["year", "location", "veg_cover_%"],
    )
    for col in COLUMNS[3:]:
        table[col] = np.nan
    table = table[list(COLUMNS)]
    if out:
        write_bytes(out, table.to_csv(index=False, float_format="%.4f").encode(), cfg.store)
    return table
