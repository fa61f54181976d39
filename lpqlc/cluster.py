"""The Dask cluster a pipeline runs on: a local one (default), the dask-kubernetes operator's
``KubeCluster`` (a CPU worker group and an optional GPU worker group), or an existing scheduler.

GPU workers declare the Dask resource ``GPU=1`` (``--resources GPU=1``) and request ``nvidia.com/gpu``;
inference asks for ``GPU`` only when the cluster has such workers (:func:`has_gpu_workers`).
:func:`cluster_spec` and :func:`gpu_worker_group_spec` are the one source of the cluster's shape:
the Kubernetes manifests are rendered from them too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dask

from lpqlc.config.pipeline import ClusterConfig, PipelineConfig
from lpqlc.podenv import CLUSTER_NAME, config_mount, config_volume, container_env, env_from
from lpqlc.storage import S3_RETRY_SECONDS, retrying, transient

log = logging.getLogger(__name__)

__all__ = ["open_client", "compute_bounded", "cluster_spec", "gpu_worker_group_spec", "has_gpu_workers", "peak_rss_mb"]


@contextmanager
def open_client(cfg: ClusterConfig | PipelineConfig) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the configured cluster, closed (and a local cluster stopped) after.

    ``kind: kubernetes`` inside a pod of the k8s/ manifests (``DASK_SCHEDULER_ADDRESS`` set, as the Job
    and CronJob are) connects to that DaskCluster's scheduler Service; elsewhere it creates the cluster
    of :func:`cluster_spec` with the operator's ``KubeCluster`` (pass the :class:`PipelineConfig` so its
    pods get the storage Secret, endpoint and GDAL settings) and removes it on exit."""
    from dask.distributed import Client, LocalCluster

    pipeline = cfg if isinstance(cfg, PipelineConfig) else None
    cluster_cfg = cfg.cluster if isinstance(cfg, PipelineConfig) else cfg
    if cluster_cfg.kind == "local":
        from lpqlc.podenv import GDAL_CACHEMAX_MB, MALLOC_ENV

        # as the pods have it: a bounded block cache, GDAL's own threads for COG compression and reads
        # sharing the cores the Dask threads leave (one each at least), and malloc's mmap threshold
        gdal_threads = max(1, (os.cpu_count() or 1) // (cluster_cfg.n_workers * cluster_cfg.threads_per_worker))
        with LocalCluster(
            n_workers=cluster_cfg.n_workers,
            threads_per_worker=cluster_cfg.threads_per_worker,
            memory_limit=cluster_cfg.memory_limit,
            processes=True,
            dashboard_address=None,
            env={"GDAL_CACHEMAX": os.environ.get("GDAL_CACHEMAX", GDAL_CACHEMAX_MB),
                 "GDAL_NUM_THREADS": os.environ.get("GDAL_NUM_THREADS", str(gdal_threads)),
                 **{k: os.environ.get(k, v) for k, v in MALLOC_ENV.items()}},
        ) as cluster, Client(cluster) as client:  # fmt: skip
            yield client
    elif cluster_cfg.kind == "address":
        with Client(cluster_cfg.address) as client:
            yield client
    elif os.environ.get("DASK_SCHEDULER_ADDRESS"):
        address = os.environ["DASK_SCHEDULER_ADDRESS"]
        log.info("connecting to the DaskCluster's scheduler at %s (DASK_SCHEDULER_ADDRESS)", address)
        with Client(address, timeout=_CONNECT_TIMEOUT) as client:
            yield client
    else:
        from dask_kubernetes.operator import KubeCluster

        k = cluster_cfg.kubernetes
        spec = cluster_spec(cluster_cfg, pipeline=pipeline)
        with KubeCluster(namespace=k.namespace, custom_cluster_spec=spec) as cluster:
            if k.gpu_workers.replicas and cluster.shutdown_on_close:
                group = gpu_worker_group_spec(cluster_cfg, pipeline=pipeline)
                cluster.add_worker_group(name="gpu", n_workers=k.gpu_workers.replicas,
                                         custom_spec=group["spec"]["worker"])  # fmt: skip
            with Client(cluster) as client:
                yield client


#: How long a pod waits for the scheduler Service (the scheduler pod may still be starting).
_CONNECT_TIMEOUT = os.environ.get("LPQLC_SCHEDULER_TIMEOUT", "300s")


def _resources(group: Any) -> dict[str, dict[str, str]]:
    req = {"cpu": group.cpu, "memory": group.memory}
    lim = dict(req)
    if group.gpus:
        lim["nvidia.com/gpu"] = str(group.gpus)
        req["nvidia.com/gpu"] = str(group.gpus)
    return {"requests": req, "limits": lim}


def _dask_container(container: dict[str, Any], role: str, pipeline: PipelineConfig | None) -> None:
    """Make a container of ``make_cluster_spec`` independent of the image's ENTRYPOINT: the operator's
    templates put the whole command in ``args`` (``dask-worker …``) for the dask image's entrypoint;
    ours is ``lpqlc``, so the program goes to ``command`` (which replaces ENTRYPOINT) and the rest stays
    in ``args``. Workers listen and serve ``/health`` on the pod IP (the downward API's ``POD_IP``), the
    scheduler's dashboard on the pod IP and localhost (no wildcard binds beyond the scheduler's port)."""
    args = list(container.pop("args"))
    program = args.pop(0)
    sub = {"dask-scheduler": "scheduler", "dask-worker": "worker"}[program]
    container["command"] = ["dask", sub]
    if role == "worker":
        i = args.index("--dashboard-address")
        args[i + 1] = f"$(POD_IP):{args[i + 1]}"
        args += ["--host", "$(POD_IP)"]
        container["livenessProbe"] = {"httpGet": {"port": "http-dashboard", "path": "/health"},
                                      "initialDelaySeconds": 30, "periodSeconds": 20, "timeoutSeconds": 10,
                                      "failureThreshold": 6}  # fmt: skip
    if role == "scheduler":  # the Service reaches the pod IP, `kubectl port-forward` the pod's localhost
        args += ["--dashboard-address", "$(POD_IP):8787,127.0.0.1:8787"]
    container["args"] = args
    if pipeline is not None:
        container["env"] = container_env(pipeline, role=role)
        container["envFrom"] = env_from(pipeline)
        container["volumeMounts"] = [config_mount()]
    else:
        container["env"] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


def _pod(pod: dict[str, Any], role: str, pipeline: PipelineConfig | None) -> None:
    for c in pod["containers"]:
        _dask_container(c, role, pipeline)
    if pipeline is not None:
        pod["volumes"] = [config_volume()]
    if role == "worker":  # time for a retiring worker to hand its results over before SIGKILL
        pod["terminationGracePeriodSeconds"] = 120


def cluster_spec(cfg: ClusterConfig, name: str = CLUSTER_NAME, *,
                 pipeline: PipelineConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """The ``DaskCluster`` (kubernetes.dask.org/v1) of the config: scheduler + the CPU worker group, on
    the CPU image; with ``pipeline``, every container gets its environment (:mod:`lpqlc.podenv`)."""
    from dask_kubernetes.operator import make_cluster_spec

    k = cfg.kubernetes
    w = k.cpu_workers
    spec: dict[str, Any] = make_cluster_spec(
        name=name, image=k.image, n_workers=w.replicas, resources=_resources(w),
        worker_command=["dask-worker", "--nthreads", str(cfg.threads_per_worker),
                        "--memory-limit", w.memory.replace("Gi", "GiB")],
    )  # fmt: skip
    spec["metadata"]["namespace"] = k.namespace
    pod = spec["spec"]["worker"]["spec"]
    _pod(pod, "worker", pipeline)
    _pod(spec["spec"]["scheduler"]["spec"], "scheduler", pipeline)
    if w.node_selector:
        pod["nodeSelector"] = dict(w.node_selector)
    sched = spec["spec"]["scheduler"]["spec"]["containers"][0]
    sched["resources"] = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    return spec


def gpu_worker_group_spec(cfg: ClusterConfig, cluster: str = CLUSTER_NAME, *,
                          pipeline: PipelineConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """The ``DaskWorkerGroup`` of GPU workers on the CUDA image (``cuda_image``): ``nvidia.com/gpu``, a
    toleration, a node selector and the Dask resource ``GPU=1``."""
    from dask_kubernetes.operator import make_worker_spec

    k = cfg.kubernetes
    g = k.gpu_workers
    worker = make_worker_spec(
        image=k.cuda_image, n_workers=g.replicas, resources=_resources(g),
        worker_command=["dask-worker", "--nthreads", "1", "--resources", f"GPU={g.gpus or 1}",
                        "--memory-limit", g.memory.replace("Gi", "GiB")],
    )  # fmt: skip
    pod = worker["spec"]
    _pod(pod, "worker", pipeline)
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod["nodeSelector"] = dict(g.node_selector) or {"nvidia.com/gpu.present": "true"}
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{cluster}-gpu", "namespace": k.namespace},
        "spec": {"cluster": cluster, "worker": worker},
    }


def has_gpu_workers(client: Any) -> bool:
    """Whether any worker of ``client``'s cluster declares the Dask resource ``GPU``."""
    if client is None:
        return False
    info = client.scheduler_info().get("workers", {})
    return any("GPU" in (w.get("resources") or {}) for w in info.values())


def compute_bounded(tasks: list[Any], client: Any, stage: str = "",
                    progress: Callable[[str, int, int], None] | None = None,
                    on_result: Callable[[int, Any], None] | None = None) -> list[Any]:  # fmt: skip
    """Compute Dask collections one future each (on ``client`` if given, at most two per worker thread
    in flight, so memory stays bounded whatever their number); results in input order.
    ``progress(stage, done, total)`` is called as each finishes. Without a client they run one after
    another on the local scheduler. A unit that fails transiently (S3 or HTTP unreachable, 5xx,
    timeouts: :func:`lpqlc.storage.transient`) is resubmitted with backoff for up to
    ``LPQLC_S3_RETRY_SECONDS``; a lost worker's tasks are rescheduled by Dask itself.
    ``on_result(i, result)`` runs on the client as unit ``i`` finishes (e.g. to record it done)."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(stage, done, len(tasks))

    if client is None:
        out = []
        for i, t in enumerate(tasks):
            out.append(retrying(lambda t=t: dask.compute(t)[0], f"{stage or 'task'}"))
            if on_result is not None:
                on_result(i, out[-1])
            tick()
        return out
    from dask.distributed import as_completed

    limit = max(2, 2 * sum(client.nthreads().values()))
    pending = list(enumerate(tasks))
    results: dict[int, Any] = {}
    index: dict[Any, int] = {}
    ac = as_completed()
    for _ in range(min(limit, len(pending))):
        i, t = pending.pop(0)
        fut = client.compute(t)
        index[fut.key] = i
        ac.add(fut)
    first_failure: dict[int, float] = {}
    attempts: dict[int, int] = {}
    for fut in ac:
        i = index[fut.key]
        try:
            results[i] = fut.result()
        except Exception as exc:  # noqa: BLE001 — transient I/O failures are resubmitted, the rest re-raised
            start = first_failure.setdefault(i, time.monotonic())
            if not transient(exc) or time.monotonic() - start > S3_RETRY_SECONDS:
                raise
            attempts[i] = attempts.get(i, 0) + 1
            delay = min(8.0, 0.25 * 2 ** attempts[i])
            log.warning("%s: unit %d failed (%s: %s); resubmitting in %.1f s", stage, i, type(exc).__name__,
                        str(exc)[:200], delay)  # fmt: skip
            time.sleep(delay)
            client.retry([fut])
            ac.add(fut)
            continue
        if on_result is not None:
            on_result(i, results[i])
        tick()
        if pending:
            i, t = pending.pop(0)
            nxt = client.compute(t)
            index[nxt.key] = i
            ac.add(nxt)
    return [results[i] for i in range(len(tasks))]


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: ``VmHWM`` of ``/proc/self/status`` on Linux (the
    high-water mark of this program's own address space), else ``ru_maxrss``. On Linux ``ru_maxrss``
    survives ``exec``: a process started by a large parent (a benchmark's driver, a nanny) reports at
    least the parent's size at the fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)
