"""What every lpqlc container on Kubernetes is given: the storage Secret (by name), the S3 endpoint, GDAL
settings, requester-pays for the Landsat archive, and the pipeline config (a ConfigMap mounted at
:data:`CONFIG_DIR`). One place, so the scheduler, both worker groups, the Job and the CronJob cannot
drift apart (:mod:`lpqlc.cluster` and :mod:`lpqlc.k8s` both use it).
"""

from __future__ import annotations

from typing import Any

from lpqlc.config import PipelineConfig
from lpqlc.quarter import quarter_range
from lpqlc.storage import Store

__all__ = ["CLUSTER_NAME", "CONFIG_DIR", "CONFIG_PATH", "CONFIG_VOLUME", "REQUIRED_SECRET_KEYS",
           "SCHEDULER_HTTP_ROUTES", "scheduler_address", "container_env", "env_from", "config_mount",
           "config_volume", "reads_requester_pays"]

#: The DaskCluster's name (its scheduler Service is ``<name>-scheduler``).
CLUSTER_NAME = "lpqlc"
CONFIG_DIR = "/etc/lpqlc"
CONFIG_PATH = f"{CONFIG_DIR}/pipeline.yaml"
CONFIG_VOLUME = "pipeline"
#: Keys the storage Secret must hold; a pod whose Secret lacks one does not start (secretKeyRef).
REQUIRED_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
#: The scheduler's HTTP routes: dask's defaults plus ``distributed.http.scheduler.api``, whose
#: ``/api/v1/retire_workers`` and ``/api/v1/adaptive_target`` the operator's autoscaler calls first
#: (``controller.retire_workers``, ``get_desired_workers``); without it the operator falls back to the
#: RPC and, if that fails, deletes the newest worker Deployments (LIFO), busy or not.
SCHEDULER_HTTP_ROUTES = [
    "distributed.http.scheduler.prometheus", "distributed.http.scheduler.info",
    "distributed.http.scheduler.json", "distributed.http.health", "distributed.http.proxy",
    "distributed.http.statics", "distributed.http.scheduler.api",
]  # fmt: skip
#: GDAL's raster block cache per process, in MB. Its default is 5 % of the node's RAM per process,
#: filled by every block read and kept: several worker processes on a large node would each grow
#: by gigabytes that no task asked for. Read at GDAL's start, so it is set in the process environment.
GDAL_CACHEMAX_MB = "256"
#: glibc's malloc in a Dask worker process. The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_``
#: (``distributed.nanny.pre-spawn-environ``, so freed memory goes back to the OS); setting any malloc
#: tunable turns off glibc's dynamic mmap threshold, which then stays at 128 KiB: every array above it
#: is a fresh ``mmap``, page-faulted and zeroed again on each allocation (an erosion tile task took
#: 7-17 % more CPU: docs/performance.md, *Terrain*). 32 MiB, the dynamic threshold's own ceiling on
#: 64-bit, lets freed blocks up to that size be reused while trimming still returns memory.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024)}
#: GDAL settings for cloud COGs (no directory listing on open, retries on transient HTTP errors), for
#: writing COGs straight to /vsis3/, and the bounded block cache.
_GDAL = {
    "GDAL_CACHEMAX": GDAL_CACHEMAX_MB,
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "2",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE": "YES",
}


def scheduler_address(cluster: str, namespace: str) -> str:
    """The scheduler Service's address, as the operator injects it into worker pods
    (dask_kubernetes ``operator/controller/controller.py``, ``build_worker_deployment_spec``)."""
    return f"tcp://{cluster}-scheduler.{namespace}.svc.cluster.local:8786"


def reads_requester_pays(cfg: PipelineConfig) -> bool:
    """Whether the pipeline reads Landsat from Earth Search, whose ``landsat-c2-l2`` assets are
    ``s3://usgs-landsat/…`` hrefs in a requester-pays bucket (Earth Search gives requester-pays assets as
    ``s3://`` URLs, public ones as ``https://``); GDAL then needs ``AWS_REQUEST_PAYER=requester``."""
    if cfg.sources.flavour != "earth-search":
        return False
    quarters = quarter_range(cfg.period.start, cfg.period.end)
    return any(cfg.sources.sensor_for(q) == "landsat" for q in quarters)


def env_from(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The storage Secret as a whole (also carries optional AWS_SESSION_TOKEN, AWS_ENDPOINT_URL,
    AWS_REGION); required: a pod whose Secret is missing does not start."""
    return [{"secretRef": {"name": cfg.cluster.kubernetes.secret}}]


def container_env(cfg: PipelineConfig, *, role: str) -> list[dict[str, Any]]:
    """The ``env`` of a container; ``role`` is ``scheduler``, ``worker`` or ``job``.

    Explicit ``env`` entries win over ``envFrom`` in Kubernetes, so nothing here duplicates what the
    Secret may carry, except the two required keys, referenced with ``secretKeyRef`` so that a Secret
    without them stops the pod at start with the key's name instead of failing S3 calls later."""
    secret = cfg.cluster.kubernetes.secret
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key in REQUIRED_SECRET_KEYS
    ]
    plain: dict[str, str] = {"LPQLC_CONFIG": CONFIG_PATH}
    endpoint = cfg.storage.endpoint_url  # the config's, never from the renderer's own environment
    if endpoint:
        plain["AWS_ENDPOINT_URL"] = endpoint
    plain.update(Store(endpoint, gdal=dict(cfg.storage.gdal)).gdal_env())
    plain.update(_GDAL)
    if reads_requester_pays(cfg):
        plain["AWS_REQUEST_PAYER"] = "requester"
    if role == "worker":
        plain.update(MALLOC_ENV)
    if role == "scheduler":
        plain["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"] = repr(SCHEDULER_HTTP_ROUTES)
    if role == "job":
        plain["DASK_SCHEDULER_ADDRESS"] = scheduler_address(CLUSTER_NAME, cfg.cluster.kubernetes.namespace)
    env += [{"name": k, "value": v} for k, v in plain.items()]
    if role in ("worker", "job"):
        # GDAL compresses COG blocks and decodes and warps reads on this many threads of its own: a
        # worker runs one Dask thread per pod (cluster.threads_per_worker) on a pod of several CPUs, and
        # DEFLATE of a published layer is most of a tile's time (docs/performance.md); the container's
        # CPU limit in whole cores (the downward API rounds up), the same bytes written
        env.append({"name": "GDAL_NUM_THREADS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                                   "divisor": "1"}}})  # fmt: skip
    if role in ("worker", "scheduler"):  # the pod's own IP: dask listens (and serves /health) there
        env.append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    return env


def config_mount() -> dict[str, Any]:
    """The container's mount of the pipeline ConfigMap (read-only)."""
    return {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}


def config_volume(configmap: str = "lpqlc-pipeline") -> dict[str, Any]:
    """The pod volume of the pipeline ConfigMap."""
    return {"name": CONFIG_VOLUME, "configMap": {"name": configmap}}
