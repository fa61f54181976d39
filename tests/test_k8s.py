"""Kubernetes manifests: kustomize renders, offline schema validation (core and dask operator CRDs),
the manifests equal what the cluster factory renders, and the Dockerfile's hygiene."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lpqlc.config import load_config
from lpqlc.k8s import render
from lpqlc.podenv import MALLOC_ENV

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "pipelines" / "loess-plateau.yaml"
kubectl = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(kubectl is None, reason="kubectl is not installed")


def _kustomize(overlay: str) -> list[dict[str, Any]]:
    assert kubectl is not None
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _key(o: dict[str, Any]) -> tuple[str, str]:
    return o["kind"], o["metadata"]["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay,gpu", [("cpu", False), ("gpu", True)])
def test_overlays_render_and_equal_the_cluster_factory(overlay: str, gpu: bool) -> None:
    rendered = {_key(o): o for o in _kustomize(overlay)}
    expected = {_key(o): o for o in render(load_config(CONFIG), CONFIG.read_text(), gpu=gpu)}
    assert set(rendered) == set(expected)
    for key, obj in expected.items():
        assert rendered[key] == obj, f"{key} in k8s/ drifted from lpqlc.k8s.render: re-render it"
    workers = [o for o in rendered.values() if o["kind"] in ("DaskCluster", "DaskWorkerGroup")]
    assert len(workers) == (2 if gpu else 1)
    for o in workers:  # the worker containers' env: GDAL's own threads (their CPU limit), malloc (podenv)
        spec = o["spec"]["worker"]["spec"]
        for c in spec["containers"]:
            env = {e["name"]: e for e in c["env"]}
            assert env["GDAL_NUM_THREADS"]["valueFrom"]["resourceFieldRef"] == {"resource": "limits.cpu", "divisor": "1"}
            assert env["MALLOC_MMAP_THRESHOLD_"]["value"] == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]  # see podenv
            assert int(c["resources"]["limits"]["cpu"]) >= 1


@needs_kubectl
def test_core_objects_validate_strictly_offline(tmp_path: Path) -> None:
    docs = [o for o in _kustomize("gpu") if not o["apiVersion"].startswith("kubernetes.dask.org")]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    res = subprocess.run([sys.executable, "-m", "kubernetes_validate", "-k", "1.32.0", "--strict", str(path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("passed") == len(docs)
    for o in docs:  # resources set everywhere
        for pod in _pods(o):
            for c in pod["containers"]:
                assert c["resources"]["requests"] and c["resources"]["limits"]


def _pods(o: dict[str, Any]) -> list[dict[str, Any]]:
    if o["kind"] == "CronJob":
        return [o["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if o["kind"] == "Job":
        return [o["spec"]["template"]["spec"]]
    return []


def _crd_schema(kind: str) -> dict[str, Any]:
    """The operator CRD's schema with its python:// references resolved (dask templates + the k8s
    definitions bundled with kubernetes-validate)."""
    import dask_kubernetes
    import kubernetes_validate

    crds = Path(dask_kubernetes.__file__).parent / "operator" / "customresources"
    crd = yaml.safe_load((crds / f"{kind.lower()}.yaml").read_text())
    templates = yaml.safe_load((crds / "templates.yaml").read_text())["definitions"]
    k8s_defs = json.loads((Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" /
                           "v1.32.0-local-strict" / "_definitions.json").read_text())["$defs"]  # fmt: skip

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: fix(v) for k, v in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and "#/" in ref:  # python://…#/definitions/X or #/$defs/X → one namespace
                out["$ref"] = "#/definitions/" + ref.rsplit("/", 1)[1]
            return out
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    schema = fix(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    schema["definitions"] = {**{k: fix(v) for k, v in k8s_defs.items()}, **{k: fix(v) for k, v in templates.items()}}
    return schema


@needs_kubectl
def test_dask_custom_resources_validate_against_the_operator_crds() -> None:
    objs = [o for o in _kustomize("gpu") if o["apiVersion"].startswith("kubernetes.dask.org")]
    assert {o["kind"] for o in objs} == {"DaskCluster", "DaskWorkerGroup", "DaskAutoscaler"}
    for o in objs:
        jsonschema.validate(o, _crd_schema(o["kind"]))
    bad = json.loads(json.dumps(next(o for o in objs if o["kind"] == "DaskAutoscaler")))
    bad["spec"]["minimum"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _crd_schema("DaskAutoscaler"))
    typo = json.loads(json.dumps(next(o for o in objs if o["kind"] == "DaskCluster")))
    typo["spec"]["worker"]["spec"]["containers"][0]["resourcez"] = {}  # the pod spec is checked strictly
    with pytest.raises(jsonschema.ValidationError, match="resourcez"):
        jsonschema.validate(typo, _crd_schema("DaskCluster"))


def test_gpu_group_and_cli_render() -> None:
    from typer.testing import CliRunner

    from lpqlc.cli import app

    res = CliRunner().invoke(app, ["k8s", "render", "--config", str(CONFIG), "--gpu"])
    assert res.exit_code == 0, res.output
    docs = [d for d in yaml.safe_load_all(res.output) if d]
    g = next(d for d in docs if d["kind"] == "DaskWorkerGroup")
    c = g["spec"]["worker"]["spec"]["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1" and "GPU=1" in c["args"]
    assert g["spec"]["worker"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    secret_refs = [e for d in docs for p in _pods(d) for c in p["containers"] for e in c.get("envFrom", [])]
    assert secret_refs and all(set(e) == {"secretRef"} for e in secret_refs)
    assert not any(d["kind"] == "Secret" for d in docs)  # a reference by name, never values


def test_dockerfile_runs_as_non_root_and_copies_no_credentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["lpqlc"\]', text, re.M)
    assert "ARG VARIANT" in text and "org.opencontainers.image" in text
    copies = re.findall(r"^COPY\s+(.+)$", text, re.M)
    assert copies and not any(re.search(r"\.aws|\.env|secret|credential|\.stack|identity", c, re.I) for c in copies)
    ignore = (ROOT / ".dockerignore").read_text()
    for pattern in (".venv", ".stack", ".env", ".git"):
        assert pattern in ignore


def test_job_and_cronjob_run_commands_the_cli_has() -> None:
    """The backfill Job runs `lpqlc run`, the CronJob `lpqlc update`: both exist and take --config."""
    objs = render(load_config(CONFIG), CONFIG.read_text())
    jobs = {o["kind"]: o for o in objs if o["kind"] in ("Job", "CronJob")}
    specs = {"Job": jobs["Job"]["spec"]["template"]["spec"],
             "CronJob": jobs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]}  # fmt: skip
    commands = {}
    for kind, pod in specs.items():
        args = pod["containers"][0]["args"]
        commands[kind] = args[0]
        res = subprocess.run([sys.executable, "-m", "lpqlc.cli", args[0], "--help"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert res.returncode == 0, res.stderr
        for opt in (a for a in args if a.startswith("--")):
            assert opt in res.stdout, f"{kind}: `lpqlc {args[0]}` has no option {opt}"
    assert commands == {"Job": "run", "CronJob": "update"}


def test_images_autoscaler_and_job_settings_come_from_the_config() -> None:
    from pydantic import ValidationError

    from lpqlc.config.pipeline import KubernetesConfig, WorkerGroupConfig

    assert KubernetesConfig(image="r.io/lpqlc:0.2.0-cpu").cuda_image == "r.io/lpqlc:0.2.0-cuda"
    assert KubernetesConfig(image="r.io:5000/lpqlc").cuda_image == "r.io:5000/lpqlc:latest-cuda"
    assert KubernetesConfig(image="a:1", gpu_image="b:2").cuda_image == "b:2"
    with pytest.raises(ValidationError, match="gpu_image must differ"):
        KubernetesConfig(image="a:1", gpu_image="a:1")
    with pytest.raises(ValidationError, match="min_replicas"):
        WorkerGroupConfig(replicas=4, min_replicas=5, max_replicas=4)
    objs = {o["kind"]: o for o in render(load_config(CONFIG), CONFIG.read_text(), gpu=True)}
    k = load_config(CONFIG).cluster.kubernetes
    scaler = objs["DaskAutoscaler"]["spec"]
    assert (scaler["minimum"], scaler["maximum"]) == (k.cpu_workers.min_replicas, k.cpu_workers.max_replicas)
    images = {objs["DaskWorkerGroup"]["spec"]["worker"]["spec"]["containers"][0]["image"]}
    cpu = {objs["DaskCluster"]["spec"][p]["spec"]["containers"][0]["image"] for p in ("scheduler", "worker")}
    cpu |= {c["image"] for kind in ("Job", "CronJob") for p in _pods(objs[kind]) for c in p["containers"]}
    assert images == {k.cuda_image} and cpu == {k.image} and k.image != k.cuda_image
    cron = objs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["startingDeadlineSeconds"] > 0
    assert cron["jobTemplate"]["spec"]["backoffLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    assert objs["Job"]["spec"]["ttlSecondsAfterFinished"] == k.job_ttl_seconds
    sched = objs["DaskCluster"]["spec"]["scheduler"]["spec"]["containers"][0]
    assert sched["readinessProbe"] and sched["livenessProbe"]
    routes = {e["name"]: e.get("value") for e in sched["env"]}["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]
    assert "distributed.http.scheduler.api" in routes  # the operator retires workers through it
    worker = objs["DaskCluster"]["spec"]["worker"]["spec"]["containers"][0]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health" and worker["command"] == ["dask", "worker"]


def test_requester_pays_only_where_landsat_comes_from_earth_search() -> None:
    from lpqlc.config import config_from_dict
    from lpqlc.podenv import container_env, reads_requester_pays

    base = {"aoi": {"bbox": [110.0, 36.0, 110.1, 36.1]}, "storage": {"url": "s3://bucket/p"},
            "sources": {"stac_api": "https://earth-search.aws.element84.com/v1"}}  # fmt: skip

    def cfg(start: str, end: str, flavour: str = "earth-search") -> Any:
        return config_from_dict({**base, "period": {"start": start, "end": end},
                                 "sources": {**base["sources"], "flavour": flavour}})  # fmt: skip

    assert reads_requester_pays(cfg("2015Q1", "2016Q2"))  # the Landsat era (to 2015Q4) is read
    assert not reads_requester_pays(cfg("2020Q1", "2020Q4"))  # Sentinel-2 only: public https assets
    assert not reads_requester_pays(cfg("2010Q1", "2010Q4", "planetary-computer"))
    env = {e["name"]: e for e in container_env(cfg("2010Q1", "2010Q4"), role="job")}
    assert env["AWS_REQUEST_PAYER"]["value"] == "requester"
    assert "AWS_S3_ENDPOINT" not in env  # no endpoint configured: never the renderer's own environment
