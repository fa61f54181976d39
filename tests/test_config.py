import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lpqlc.config import CHINA_ALBERS, GridConfig, config_from_dict, load_config
from lpqlc.errors import ConfigError, StorageError
from lpqlc.grid import OutputGrid, load_aoi
from lpqlc.quarter import Quarter
from lpqlc.storage import parse_storage_url

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = {
    "aoi": {"bbox": [110.5, 36.57, 110.54, 36.60]},
    "sources": {"catalog": "/data/catalog.json"},
    "storage": {"url": "/tmp/out"},
}


def write(tmp_path: Path, data: dict | str) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("name", ["sample.yaml", "loess-plateau.yaml"])
def test_shipped_pipelines_load(name: str) -> None:
    cfg = load_config(ROOT / "pipelines" / name)
    assert cfg.quarters[0] == Quarter(2000, 1) and len(cfg.quarters) == 100
    assert cfg.grid.resolution_for(Quarter(2015, 4)) == 30
    assert cfg.grid.resolution_for(Quarter(2016, 1)) == 10
    assert cfg.sources.sensor_for(Quarter(2015, 4)) == "landsat"
    assert cfg.sources.sensor_for(Quarter(2016, 1)) == "sentinel2"


def test_science_defaults_match_science_md() -> None:
    s = config_from_dict(MINIMAL).science
    assert (s.rusle.r.beta, s.rusle.r.alpha_warm, s.rusle.r.alpha_cold, s.rusle.r.threshold_mm) == (
        1.7265, 0.3937, 0.3101, 10.0)  # fmt: skip
    assert s.rusle.r.warm_months == (5, 6, 7, 8, 9)
    assert (s.rusle.k.correction_intercept, s.rusle.k.correction_slope, s.rusle.k.unit_factor) == (
        -0.01383, 0.51575, 0.1317)  # fmt: skip
    assert s.rusle.c.fixed == {50: 0.01, 60: 0.7, 80: 0.0, 90: 0.0}
    assert s.rusle.c.table[30] == (0.450, 0.240, 0.150, 0.090, 0.043, 0.011)
    assert s.rusle.p.cropland_values == (0.49, 0.59, 0.65, 0.70, 0.81, 0.95, 1.0)
    assert s.rusle.grades.breaks == (10, 25, 50, 80, 150)
    assert s.landcover.worldcover_remap == {70: 60, 100: 30, 95: 90}
    assert s.ccts.weight_seg + s.ccts.weight_ic + s.ccts.weight_fp == 1.0
    assert s.regv1.priors["LoessPlateau"]["r_V"].value == 0.12
    assert s.regv1.c_som == pytest.approx(1.724 * 100 / (1300 * 0.2))


def test_overrides_apply(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {**MINIMAL, "science": {"rusle": {"r": {"threshold_mm": 12}}}}))
    assert cfg.science.rusle.r.threshold_mm == 12
    assert cfg.science.rusle.r.beta == 1.7265


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {**MINIMAL, "sources": {"catalog": "arch/catalog.json"}, "storage": {"url": "out"}}))
    assert cfg.sources.catalog == str(tmp_path / "arch" / "catalog.json")
    assert cfg.storage.url == str(tmp_path / "out")


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"science": {"rusle": {"r": {"beta": "steep"}}}}, "science.rusle.r.beta", "valid number"),
        ({"science": {"rusle": {"c": {"tabel": {}}}}}, "science.rusle.c.tabel", "Extra inputs"),
        ({"grid": {"crs": "EPSG:32649"}}, "grid.crs", "not an equal-area"),
        ({"storage": {"url": "ftp://host/x"}}, "storage.url", "unsupported scheme"),
        ({"storage": {"url": "s3://Bad_Bucket/x"}}, "storage.url", "not a valid S3 bucket"),
        ({"storage": {"url": "s3://b1/x", "secret_key": "abc"}}, "storage", "credentials do not belong"),
        ({"period": {"start": "2020Q5"}}, "period.start", "not a quarter"),
        ({"period": {"start": "2024Q1", "end": "2020Q1"}}, "period", "before start"),
        ({"sources": {"catalog": "/c.json", "stac_api": "http://x"}}, "sources", "exactly one"),
        ({"sources": {"stac_api": "earth-search"}}, "sources.stac_api", "not an http"),
        ({"aoi": {"bbox": [114, 41, 100, 33]}}, "aoi", "west,south,east,north"),
        ({"science": {"landcover": {"temporal_window": 4}}}, "science.landcover", "odd"),
        ({"science": {"rusle": {"p": {"cropland_values": [1, 2]}}}}, "science.rusle.p", "one value more"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, patch: dict, field: str, words: str) -> None:
    data = {**MINIMAL, **patch}
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"- {field}" in msg
    assert words in msg


def test_missing_section_and_yaml_syntax(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"- storage: Field required"):
        load_config(write(tmp_path, {k: v for k, v in MINIMAL.items() if k != "storage"}))
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: YAML syntax error"):
        load_config(write(tmp_path, "aoi:\n  bbox: [1, 2\nsources: {}\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "empty"),
        ("s3://", "names no bucket"),
        ("s3://ab/x", "not a valid S3 bucket"),
        ("gs://bucket/x", "unsupported scheme 'gs'"),
        ("s3://bucket/x?versionId=1", "query"),
        ("file://remote/x", "must be local"),
    ],
)
def test_bad_urls_are_named(url: str, words: str) -> None:
    with pytest.raises(StorageError) as err:
        parse_storage_url(url)
    assert words in str(err.value)
    assert repr(url) in str(err.value) or url == ""


def test_good_urls() -> None:
    assert parse_storage_url("s3://bucket/a/b/").url == "s3://bucket/a/b"
    assert parse_storage_url("s3://bucket").join("x", "y.tif") == "s3://bucket/x/y.tif"
    assert parse_storage_url("/tmp/a/").url == "/tmp/a"


def test_grids_nest_and_are_equal_area() -> None:
    cfg = load_config(ROOT / "pipelines" / "sample.yaml")
    grid = OutputGrid.from_config(cfg)
    g30, g10 = grid.geobox(Quarter(2015, 4)), grid.geobox(Quarter(2016, 1))
    assert g30.boundingbox == g10.boundingbox
    assert (g10.shape.y, g10.shape.x) == (3 * g30.shape.y, 3 * g30.shape.x)
    assert all(v % 30 == 0 for v in g30.boundingbox)
    assert g30.crs.epsg == 10594 and "Equal Area" in g30.crs.proj.coordinate_operation.method_name
    custom = OutputGrid(load_aoi(cfg), GridConfig(crs=CHINA_ALBERS)).geobox(Quarter(2016, 1))  # custom CRSs stay possible
    assert custom.crs.epsg is None and "Albers" in custom.crs.proj.coordinate_operation.method_name
    # the AOI bbox is ~3.5 km × 3.6 km: its equal-area area is about 12.6 km²
    assert 10 < grid.area_km2 < 16
    tiles = list(grid.iter_tiles(Quarter(2016, 1)))
    assert tiles and all(gb.shape.x <= cfg.grid.tile_size for _, gb in tiles)


def test_cli_reports_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "science": {"rusle": {"r": {"beta": "steep"}}}})
    res = subprocess.run([sys.executable, "-m", "lpqlc.cli", "check-config", str(path)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "science.rusle.r.beta" in res.stderr and str(path) in res.stderr.replace("\n", "")
    ok = subprocess.run(
        [sys.executable, "-m", "lpqlc.cli", "check-config", str(ROOT / "pipelines" / "sample.yaml")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "valid" in ok.stdout
