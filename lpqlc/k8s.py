"""Kubernetes manifests of a pipeline, rendered from the same cluster factory that runs it.

:func:`render` returns every object a deployment needs: the namespace, a ServiceAccount with a
namespaced Role for the dask operator's custom resources (nothing cluster-wide), a ConfigMap holding the
pipeline YAML, the ``DaskCluster`` (:func:`lpqlc.cluster.cluster_spec`), with ``gpu`` the GPU
``DaskWorkerGroup`` (:func:`lpqlc.cluster.gpu_worker_group_spec`), a ``DaskAutoscaler``, the quarterly
``CronJob`` (``lpqlc update``) and the backfill ``Job`` (``lpqlc run``). S3 credentials come from a
Secret referenced by name only. ``k8s/`` holds these renders of ``pipelines/loess-plateau.yaml``
as a kustomize base and overlays; a test keeps them equal to :func:`render`.
"""

from __future__ import annotations

from typing import Any

import yaml

from lpqlc.cluster import cluster_spec, gpu_worker_group_spec
from lpqlc.config import PipelineConfig

__all__ = ["render", "render_yaml", "SECRET_NAME", "CLUSTER_NAME"]

SECRET_NAME = "lpqlc-s3"
CLUSTER_NAME = "lpqlc"
_LABELS = {"app.kubernetes.io/name": "lpqlc", "app.kubernetes.io/part-of": "lpqlc"}
_POD_RESOURCES = {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}


def _meta(name: str, ns: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, "labels": dict(_LABELS), **extra}


def _pipeline_container(cfg: PipelineConfig, args: list[str]) -> dict[str, Any]:
    k = cfg.cluster.kubernetes
    return {
        "name": "lpqlc",
        "image": k.image,
        "args": args,
        "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
        "env": [{"name": "DASK_SCHEDULER_ADDRESS", "value": f"tcp://{CLUSTER_NAME}-scheduler.{k.namespace}.svc:8786"}],
        "resources": _POD_RESOURCES,
        "volumeMounts": [{"name": "pipeline", "mountPath": "/etc/lpqlc", "readOnly": True}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False},
    }


def _pod_spec(cfg: PipelineConfig, args: list[str]) -> dict[str, Any]:
    return {
        "serviceAccountName": "lpqlc",
        "restartPolicy": "Never",
        "containers": [_pipeline_container(cfg, args)],
        "volumes": [{"name": "pipeline", "configMap": {"name": "lpqlc-pipeline"}}],
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
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta("lpqlc", ns), "rules": role_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta("lpqlc", ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lpqlc"},
         "subjects": [{"kind": "ServiceAccount", "name": "lpqlc", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("lpqlc-pipeline", ns),
         "data": {"pipeline.yaml": pipeline_yaml}},
    ]  # fmt: skip
    cluster = cluster_spec(cfg.cluster, CLUSTER_NAME)
    objs.append(cluster)
    if gpu:
        objs.append(gpu_worker_group_spec(cfg.cluster, CLUSTER_NAME))
    w = k.cpu_workers
    objs.append({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler", "metadata": _meta(CLUSTER_NAME, ns),
        "spec": {"cluster": CLUSTER_NAME, "minimum": min(1, w.replicas), "maximum": max(w.replicas, 4 * w.replicas)},
    })  # fmt: skip
    run_cfg = ["--config", "/etc/lpqlc/pipeline.yaml"]
    objs.append({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("lpqlc-update", ns),
        "spec": {
            # 03:00 on the 15th of the month after each quarter, when its imagery has landed
            "schedule": "0 3 15 1,4,7,10 *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 4,
            "failedJobsHistoryLimit": 4,
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": {
                "metadata": {"labels": dict(_LABELS)}, "spec": _pod_spec(cfg, ["update", *run_cfg])}}},
        },
    })  # fmt: skip
    objs.append({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("lpqlc-backfill", ns),
        "spec": {"backoffLimit": 1, "template": {"metadata": {"labels": dict(_LABELS)},
                                                 "spec": _pod_spec(cfg, ["run", *run_cfg])}},
    })  # fmt: skip
    return objs


def render_yaml(objs: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream."""
    return yaml.safe_dump_all(objs, sort_keys=False, default_flow_style=False)
