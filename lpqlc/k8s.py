"""Kubernetes manifests of a pipeline, rendered from the same cluster factory that runs it.

:func:`render` returns every object a deployment needs: the namespace, a ServiceAccount with a
namespaced Role for the dask operator's custom resources (nothing cluster-wide), a ConfigMap holding the
pipeline YAML, the ``DaskCluster`` (:func:`lpqlc.cluster.cluster_spec`), with ``gpu`` the GPU
``DaskWorkerGroup`` (:func:`lpqlc.cluster.gpu_worker_group_spec`), a ``DaskAutoscaler``, the quarterly
``CronJob`` (``lpqlc update``) and the backfill ``Job`` (``lpqlc run``). Every container's environment
(the storage Secret referenced by name only, S3 endpoint, GDAL, requester-pays, the pipeline config)
comes from :mod:`lpqlc.podenv`; :mod:`lpqlc.k8s_local` runs the rendered containers as local
processes. ``k8s/`` holds these renders of ``pipelines/loess-plateau.yaml``
as a kustomize base and overlays; a test keeps them equal to :func:`render`.
"""

from __future__ import annotations

from typing import Any

import yaml

from lpqlc.cluster import cluster_spec, gpu_worker_group_spec
from lpqlc.config import PipelineConfig
from lpqlc.podenv import CLUSTER_NAME, config_mount, config_volume, container_env, env_from

__all__ = ["render", "render_yaml", "SECRET_NAME", "CLUSTER_NAME"]

#: The default Secret name (``cluster.kubernetes.secret``).
SECRET_NAME = "lpqlc-s3"
_LABELS = {"app.kubernetes.io/name": "lpqlc", "app.kubernetes.io/part-of": "lpqlc"}
_POD_RESOURCES = {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
#: The quarterly CronJob may start this late (seconds) after its schedule (controller down, cluster
#: full); later, that quarter's run is skipped and the next schedule runs `lpqlc update`, which
#: catches up on every quarter anyway.
_STARTING_DEADLINE_S = 6 * 3600


def _meta(name: str, ns: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "labels": dict(_LABELS), **extra}


def _pipeline_container(cfg: PipelineConfig, args: list[str]) -> dict[str, Any]:
    """The Job's and CronJob's container: no ``command``, so the image's ENTRYPOINT (``lpqlc``) runs
    ``args``; ``$(LPQLC_CONFIG)`` expands from the container's env."""
    return {
        "name": "lpqlc",
        "image": cfg.cluster.kubernetes.image,
        "args": args,
        "envFrom": env_from(cfg),
        "env": container_env(cfg, role="job"),
        "resources": _POD_RESOURCES,
        "volumeMounts": [config_mount()],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False},
    }


def _pod_spec(cfg: PipelineConfig, args: list[str]) -> dict[str, Any]:
    return {
        "serviceAccountName": "lpqlc",
        "restartPolicy": "Never",
        "containers": [_pipeline_container(cfg, args)],
        "volumes": [config_volume()],
    }


def render(cfg: PipelineConfig, pipeline_yaml: str, *, gpu: bool = False) -> list[dict[str, Any]]:
    """The manifests (dicts) for ``cfg``; ``pipeline_yaml`` is the YAML text the ConfigMap carries."""
    k = cfg.cluster.kubernetes
    ns = k.namespace
    role_rules = [
        {"apiGroups": ["kubernetes.dask.org"],
         "resources": ["daskclusters", "daskworkergroups", "daskautoscalers", "daskjobs"],
         "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]  # fmt: skip
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(_LABELS)}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("lpqlc", ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta("lpqlc", ns),
         "rules": role_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta("lpqlc", ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lpqlc"},
         "subjects": [{"kind": "ServiceAccount", "name": "lpqlc", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("lpqlc-pipeline", ns),
         "data": {"pipeline.yaml": pipeline_yaml}},
    ]  # fmt: skip
    objs.append(cluster_spec(cfg.cluster, CLUSTER_NAME, pipeline=cfg))
    if gpu:
        objs.append(gpu_worker_group_spec(cfg.cluster, CLUSTER_NAME, pipeline=cfg))
    lo, hi = k.cpu_workers.autoscale_bounds
    # Scales the CPU group (`<cluster>-default`) only; the GPU group keeps its replicas.
    objs.append({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler", "metadata": _meta(CLUSTER_NAME, ns),
        "spec": {"cluster": CLUSTER_NAME, "minimum": lo, "maximum": hi},
    })  # fmt: skip
    run_cfg = ["--config", "$(LPQLC_CONFIG)"]
    objs.append({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("lpqlc-update", ns),
        "spec": {
            # 03:00 UTC on the 15th of the month after each quarter, when its imagery has landed
            "schedule": "0 3 15 1,4,7,10 *", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": _STARTING_DEADLINE_S, "successfulJobsHistoryLimit": 4,
            "failedJobsHistoryLimit": 4,
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": {
                "metadata": {"labels": dict(_LABELS)}, "spec": _pod_spec(cfg, ["update", *run_cfg])}}},
        },
    })  # fmt: skip
    objs.append({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("lpqlc-backfill", ns),
        "spec": {"backoffLimit": 1, "ttlSecondsAfterFinished": k.job_ttl_seconds,
                 "template": {"metadata": {"labels": dict(_LABELS)},
                              "spec": _pod_spec(cfg, ["run", *run_cfg])}},
    })  # fmt: skip
    return objs


def render_yaml(objs: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream."""
    return yaml.safe_dump_all(objs, sort_keys=False, default_flow_style=False)
