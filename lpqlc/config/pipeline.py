"""The pipeline configuration: AOI, period, grid, sources, storage, cluster and science.

A pipeline is one YAML file; :func:`load_config` reads it and raises :class:`ConfigError` naming the
file and every field at fault. Relative paths in the file (a static catalog, an AOI GeoJSON, a local
storage root, an external LS raster) are resolved against the file's folder.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pyproj import CRS
from pyproj.exceptions import CRSError

from lpqlc.config.base import Frozen, QuarterField
from lpqlc.config.science import ScienceConfig
from lpqlc.errors import ConfigError, StorageError
from lpqlc.quarter import Quarter, quarter_range
from lpqlc.storage import Store, env_endpoint, parse_storage_url

__all__ = [
    "AOIConfig",
    "PeriodConfig",
    "ResolutionEra",
    "GridConfig",
    "SensorEra",
    "CollectionsConfig",
    "SourcesConfig",
    "StorageConfig",
    "WorkerGroupConfig",
    "KubernetesConfig",
    "ClusterConfig",
    "PublishConfig",
    "ModelConfig",
    "PipelineConfig",
    "load_config",
    "config_from_dict",
    "CHINA_ALBERS",
    "GLANCE_ASIA",
]

#: Albers equal-area conic for China (WGS 84, central meridian 105°E, standard parallels 25°N/47°N).
CHINA_ALBERS = (
    "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
)

#: The default grid CRS: EPSG:10594 "WGS 84 / GLANCE Asia", Lambert azimuthal equal-area centred on
#: 45°N 100°E. Over the plateau (100.9–114.6°E, 33.7–41.3°N) its scale error is under 0.5 % and its
#: angular distortion under 1.1°, against 1.9 % and 2.1° for CHINA_ALBERS; and, EPSG-coded, its
#: published items carry ``proj:epsg`` so stackstac can stack them (docs/configuration.md).
GLANCE_ASIA = "EPSG:10594"

_EQUAL_AREA_METHODS = ("albers", "equal area", "equal-area", "mollweide", "sinusoidal", "eckert iv")


def _http_url(value: str | None, info: ValidationInfo) -> str | None:
    """Field validator: an ``http(s)://`` URL (or unset)."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"{info.field_name} {value!r} is not an http(s) URL")
    return value


def _storage_url(value: str | None) -> str | None:
    """Field validator: a local path or ``s3://bucket/prefix`` (or unset)."""
    if value is not None:
        try:
            parse_storage_url(value)
        except StorageError as exc:
            raise ValueError(str(exc)) from exc
    return value


class AOIConfig(Frozen):
    """Area of interest: a lon/lat bounding box, or a GeoJSON file of polygons (EPSG:4326)."""

    name: str = "aoi"
    bbox: tuple[float, float, float, float] | None = None
    geojson: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AOIConfig:
        if (self.bbox is None) == (self.geojson is None):
            raise ValueError("give exactly one of bbox or geojson")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(f"bbox {list(self.bbox)} is not west,south,east,north in degrees")
        return self


class PeriodConfig(Frozen):
    """The quarters processed, both ends included."""

    start: QuarterField = Quarter(2000, 1)
    end: QuarterField = Quarter(2024, 4)

    @model_validator(mode="after")
    def _check(self) -> PeriodConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def quarters(self) -> list[Quarter]:
        return quarter_range(self.start, self.end)


class ResolutionEra(Frozen):
    """Output pixel size (metres) from a quarter on."""

    start: QuarterField
    resolution: float = Field(gt=0)


class GridConfig(Frozen):
    """One equal-area output grid for the whole AOI; the pixel size changes by era."""

    crs: str = GLANCE_ASIA
    resolutions: tuple[ResolutionEra, ...] = (
        ResolutionEra(start=Quarter(2000, 1), resolution=30.0),
        ResolutionEra(start=Quarter(2016, 1), resolution=10.0),
    )
    #: Pixel edges are multiples of this (metres), so every era's grid nests in the coarsest.
    anchor: float = Field(30.0, gt=0)
    #: Processing tile edge in pixels, and dask chunk edge in pixels.
    tile_size: int = Field(2048, ge=64)
    chunk_size: int = Field(1024, ge=64)

    @field_validator("crs")
    @classmethod
    def _equal_area(cls, value: str) -> str:
        try:
            crs = CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"not a CRS: {value!r} ({exc})") from exc
        method = ""
        if crs.coordinate_operation is not None:
            method = crs.coordinate_operation.method_name.lower()
        if not crs.is_projected or not any(m in method for m in _EQUAL_AREA_METHODS):
            raise ValueError(
                f"{value!r} is not an equal-area projection (method {method or 'none'!r}); "
                "areas would be counted wrong"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        starts = [r.start for r in self.resolutions]
        if not starts:
            raise ValueError("resolutions is empty")
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ValueError("resolutions must be in increasing order of start quarter")
        for r in self.resolutions:
            ratio = self.anchor / r.resolution
            if round(ratio) < 1 or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"resolution {r.resolution} m does not nest in the {self.anchor} m anchor")
        if self.tile_size % 16:
            raise ValueError(f"tile_size {self.tile_size} is not a multiple of 16 (the smallest COG block)")
        if self.tile_size % self.chunk_size:
            raise ValueError(f"tile_size {self.tile_size} is not a multiple of chunk_size {self.chunk_size}")
        return self

    @property
    def cog_blocksize(self) -> int:
        """Internal tile edge of the published COGs: 512, or the largest power of two dividing
        ``tile_size`` below it, so each COG block is one chunk of the mosaic (kerchunk datacubes)."""
        return math.gcd(self.tile_size, 512)

    def resolution_for(self, quarter: Quarter) -> float:
        """Pixel size in metres for a quarter."""
        applicable = [r for r in self.resolutions if r.start <= quarter]
        if not applicable:
            raise ConfigError(f"grid.resolutions has no era covering {quarter}")
        return applicable[-1].resolution


class SensorEra(Frozen):
    """Which source collection feeds the composites, from a quarter on (until the next era)."""

    start: QuarterField
    sensor: Literal["landsat", "sentinel2"]


class CollectionsConfig(Frozen):
    """STAC collection ids, per role. Defaults are Earth Search v1's (ancillary: the sample archive's)."""

    sentinel2: str = "sentinel-2-l2a"
    landsat: str = "landsat-c2-l2"
    dem: str = "cop-dem-glo-30"
    precipitation: str = "chirps-daily"
    soil: str = "openlandmap-soil"
    worldcover: str = "esa-worldcover"
    subregions: str = "lpqlc-subregions"


class SourcesConfig(Frozen):
    """Where input imagery is searched: a STAC API, or a local/S3 static catalog."""

    stac_api: str | None = None
    catalog: str | None = None
    flavour: Literal["earth-search", "planetary-computer"] = "earth-search"
    collections: CollectionsConfig = CollectionsConfig()
    sensors: tuple[SensorEra, ...] = (
        SensorEra(start=Quarter(1984, 1), sensor="landsat"),
        SensorEra(start=Quarter(2016, 1), sensor="sentinel2"),
    )
    max_cloud_cover: float = Field(80.0, ge=0, le=100)
    #: Asset href signing: ``planetary-computer`` (SAS tokens) or ``module:function``; none unless set.
    href_modifier: str | None = None
    page_limit: int = Field(100, ge=1, le=10000)
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(60.0, gt=0)

    _http = field_validator("stac_api")(_http_url)

    @model_validator(mode="after")
    def _check(self) -> SourcesConfig:
        if (self.stac_api is None) == (self.catalog is None):
            raise ValueError("give exactly one of stac_api or catalog")
        starts = [s.start for s in self.sensors]
        if not starts or starts != sorted(starts):
            raise ValueError("sensors must be a non-empty list in increasing order of start quarter")
        return self

    def sensor_for(self, quarter: Quarter) -> str:
        """The sensor that feeds a quarter."""
        applicable = [s for s in self.sensors if s.start <= quarter]
        if not applicable:
            raise ConfigError(f"sources.sensors has no era covering {quarter}")
        return applicable[-1].sensor


class StorageConfig(Frozen):
    """Where outputs go: a local path or ``s3://bucket/prefix``; credentials come from the environment.

    ``s3_options``: extra s3fs options (e.g. ``{"client_kwargs": {"region_name": "cn-north-1"}}``);
    ``gdal``: extra GDAL configuration options for raster reads (e.g. ``GDAL_HTTP_MAX_RETRY``);
    ``retry_seconds``: how long S3 calls retry transient failures (default ``LPQLC_S3_RETRY_SECONDS``
    or 90 s). :attr:`store` is the :class:`~lpqlc.storage.Store` made from them."""

    url: str
    endpoint_url: str | None = None
    s3_options: dict[str, Any] = Field(default_factory=dict)
    gdal: dict[str, str] = Field(default_factory=dict)
    retry_seconds: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            options = data.get("s3_options")
            keys = [*data, *(options if isinstance(options, dict) else [])]
            secret = [k for k in keys if any(w in str(k).lower() for w in ("key", "secret", "token", "pass"))]
            if secret:
                raise ValueError(
                    f"credentials do not belong in the config ({', '.join(map(str, secret))}): "
                    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                )
        return data

    _url = field_validator("url")(_storage_url)
    _endpoint = field_validator("endpoint_url")(_http_url)

    @property
    def store(self) -> Store:
        """The :class:`~lpqlc.storage.Store` of these settings (made once per settings and environment)."""
        return _store(self.model_dump_json(), env_endpoint())


@functools.lru_cache(maxsize=16)
def _store(settings: str, env: str | None) -> Store:
    doc = json.loads(settings)
    return Store.from_settings(doc["endpoint_url"] or env, s3_options=doc["s3_options"], gdal=doc["gdal"],
                               retry_seconds=doc["retry_seconds"])  # fmt: skip


class WorkerGroupConfig(Frozen):
    """A Kubernetes Dask worker group. ``min_replicas``/``max_replicas`` bound the operator's
    ``DaskAutoscaler`` (CPU group only; default: ``replicas`` … 2 × ``replicas``)."""

    replicas: int = Field(2, ge=0)
    cpu: str = "2"
    memory: str = "8Gi"
    gpus: int = Field(0, ge=0)
    node_selector: dict[str, str] = Field(default_factory=dict)
    min_replicas: int | None = Field(None, ge=0)
    max_replicas: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> WorkerGroupConfig:
        lo, hi = self.autoscale_bounds
        if lo > hi:
            raise ValueError(f"min_replicas ({lo}) is above max_replicas ({hi})")
        return self

    @property
    def autoscale_bounds(self) -> tuple[int, int]:
        """(minimum, maximum) workers of the autoscaler."""
        lo = self.replicas if self.min_replicas is None else self.min_replicas
        hi = max(1, 2 * self.replicas) if self.max_replicas is None else self.max_replicas
        return lo, hi


class KubernetesConfig(Frozen):
    """The Dask Kubernetes operator's cluster. ``image`` is the CPU image (scheduler, CPU workers, Job,
    CronJob); ``gpu_image`` the CUDA image of the GPU worker group (default: ``image``'s tag with
    ``-cpu`` replaced by, or else suffixed with, ``-cuda``). ``secret`` names the Secret holding the
    S3 credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``); it is referenced, never rendered."""

    namespace: str = "lpqlc"
    image: str = "ghcr.io/lpqlc/lpqlc:latest"
    cpu_workers: WorkerGroupConfig = WorkerGroupConfig()
    gpu_workers: WorkerGroupConfig = WorkerGroupConfig(replicas=0, gpus=1, memory="24Gi", cpu="4")
    gpu_image: str | None = None
    secret: str = Field("lpqlc-s3", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    #: Seconds a finished backfill Job (and its pod, with the logs) is kept before Kubernetes deletes it.
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=0)

    @model_validator(mode="after")
    def _images(self) -> KubernetesConfig:
        if self.cuda_image == self.image:
            raise ValueError(f"gpu_image must differ from image ({self.image}): GPU workers need CUDA")
        return self

    @property
    def cuda_image(self) -> str:
        """The GPU worker group's image (``gpu_image``, else derived from ``image``)."""
        if self.gpu_image:
            return self.gpu_image
        repo, sep, tag = self.image.rpartition(":")
        if not sep or "/" in tag:  # no tag: ``repo`` → ``repo:latest-cuda``
            return f"{self.image}:latest-cuda"
        return f"{repo}:{tag.removesuffix('-cpu')}-cuda"


class ClusterConfig(Frozen):
    """The Dask cluster: a local one (default), the Kubernetes operator, or an existing scheduler."""

    kind: Literal["local", "kubernetes", "address"] = "local"
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    address: str | None = None
    kubernetes: KubernetesConfig = KubernetesConfig()

    @model_validator(mode="after")
    def _check(self) -> ClusterConfig:
        if self.kind == "address" and not self.address:
            raise ValueError("kind 'address' needs address (e.g. tcp://scheduler:8786)")
        return self


class PublishConfig(Frozen):
    """Where and how the products are published: a static STAC catalog of COGs (by default
    ``<storage.url>/stac``), its indexes, and optionally a STAC API to ingest into."""

    url: str | None = None
    #: A STAC API with the Transactions extension (stac-fastapi-pgstac) that receives the items.
    stac_api: str | None = None
    #: Prefix of the published collection ids: ``<prefix>-landcover``, ``<prefix>-erosion``, …
    collection_prefix: str = Field("lpqlc", pattern=r"^[a-z0-9][a-z0-9-]*$")
    #: What becomes of a replaced version's assets: kept under ``<item>/v<N>/`` (and linked as the
    #: predecessor), or deleted once the new version is committed.
    superseded: Literal["keep", "delete"] = "keep"
    geoparquet: bool = True
    kerchunk: bool = True
    #: Also publish the R, K, LS, C, P layers with each quarterly erosion item.
    erosion_factors: bool = False
    license: str = "CC-BY-4.0"
    #: Seconds a run lock (``<publish.url>/_lock.json``) may go without a heartbeat before another run
    #: counts it as stale (its run crashed) and takes it over; the holder renews it every third of this.
    lock_timeout: float = Field(900.0, gt=0)
    #: ``lpqlc update`` without ``--rescan``, when the source cannot be asked for items changed since
    #: the last run: re-search the last this many quarters of the period (and any never published).
    lookback_quarters: int = Field(4, ge=1)

    _url = field_validator("url")(_storage_url)
    _http = field_validator("stac_api")(_http_url)


class ModelConfig(Frozen):
    """The land-cover model used by ``lpqlc run`` (a checkpoint made by ``lpqlc train``)."""

    checkpoint: str | None = None


class PipelineConfig(Frozen):
    """A whole pipeline: what, where, when, with which constants."""

    name: str = "lpqlc"
    aoi: AOIConfig
    period: PeriodConfig = PeriodConfig()
    grid: GridConfig = GridConfig()
    sources: SourcesConfig
    storage: StorageConfig
    cluster: ClusterConfig = ClusterConfig()
    model: ModelConfig = ModelConfig()
    publish: PublishConfig = PublishConfig()
    science: ScienceConfig = ScienceConfig()
    #: Where the YAML came from (set by :func:`load_config`; not read from the file).
    source_file: str | None = Field(default=None, exclude=True)

    @property
    def quarters(self) -> list[Quarter]:
        return self.period.quarters

    @property
    def store(self) -> Store:
        """The storage object every stage uses (:attr:`StorageConfig.store`)."""
        return self.storage.store

    @property
    def publish_url(self) -> str:
        """Root of the published static catalog: ``publish.url`` or ``<storage.url>/stac``."""
        return self.publish.url or parse_storage_url(self.storage.url).join("stac")


def _resolve_relative(data: dict[str, Any], base: Path) -> None:
    """Make the file's relative local paths relative to its folder, in place."""

    def fix(section: dict[str, Any] | None, key: str) -> None:
        if not isinstance(section, dict):
            return
        value = section.get(key)
        if isinstance(value, str) and value and "://" not in value and not os.path.isabs(value):
            section[key] = str((base / os.path.expanduser(value)).resolve())

    fix(data.get("aoi"), "geojson")
    fix(data.get("sources"), "catalog")
    fix(data.get("storage"), "url")
    fix(data.get("publish"), "url")
    fix(data.get("model"), "checkpoint")
    science = data.get("science")
    if isinstance(science, dict) and isinstance(science.get("rusle"), dict):
        fix(science["rusle"].get("ls"), "external")


def _format_errors(path: str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid pipeline configuration ({exc.error_count()} error(s)):"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
        lines.append(f"  - {where}: {msg}{shown}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> PipelineConfig:
    """Validate a mapping as a pipeline config; errors name ``source`` and each field."""
    try:
        return PipelineConfig.model_validate({**data, "source_file": source})
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a pipeline YAML file.

    Raises :class:`ConfigError` naming the file, and the line for YAML syntax errors or the dotted
    field path (``science.rusle.r.beta``) for invalid values.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: pipeline configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the configuration: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}:{where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a pipeline configuration must be a YAML mapping, got {type(data).__name__}")
    _resolve_relative(data, p.parent.resolve())
    return config_from_dict(data, source=str(p))
