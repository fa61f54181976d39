"""The container contract of the rendered manifests, as close to a cluster as this machine gets: the
Dockerfile's ENTRYPOINT/CMD and each container's command/args/env resolved the way the kubelet does, the
operator's own pod builders for the scheduler and workers, and every container run as a local process
(lpqlc.k8s_local) against the test SeaweedFS and STAC API: the scheduler, two CPU workers, with the gpu
overlay one GPU-group worker (CPU torch here), then the backfill Job's command, which must publish."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from lpqlc.config import config_from_dict
from lpqlc.k8s import render
from lpqlc.k8s_local import (
    ContainerConfigError,
    ContainerStartError,
    Image,
    LocalCluster,
    expand,
    image_from_dockerfile,
    operator_pods,
    resolve_argv,
    resolve_env,
)
from lpqlc.stack import StackState
from lpqlc.storage import exists, list_files, put_file
from tests.conftest import small_config
from tests.test_publish import SCIENCE, _model

ROOT = Path(__file__).resolve().parent.parent
IMAGE = image_from_dockerfile(ROOT / "Dockerfile")


def _secret(stack: StackState, name: str = "lpqlc-s3") -> dict[str, Any]:
    """The Secret as docs/deploy.md tells the platform engineer to create it (kubectl, client-side)."""
    lits = {"AWS_ACCESS_KEY_ID": stack.access_key, "AWS_SECRET_ACCESS_KEY": stack.secret_key}
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        import base64

        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in lits.items()}}  # fmt: skip
    cmd = [kubectl, "create", "secret", "generic", name, "-n", "lpqlc", "--dry-run=client", "-o", "yaml"]
    cmd += [f"--from-literal={k}={v}" for k, v in lits.items()]
    return yaml.safe_load(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout)


def _pipeline(stack: StackState, tmp_path: Path, prefix: str, landsat: bool) -> tuple[Any, str]:
    """The SMALL sample pipeline on the test stack, cut to its smallest publishing run (one quarter, one
    tile), the model checkpoint on S3, a kubernetes cluster. ``landsat``: Landsat from "Earth Search",
    so the manifests carry requester-pays (which the S3 server must tolerate)."""
    storage = f"s3://{stack.bucket}/{prefix}"
    cfg = small_config(stac_api=stack.stac_api, storage=storage, endpoint_url=stack.s3_endpoint,
                       landsat_only=landsat, **SCIENCE)  # fmt: skip
    doc = json.loads(cfg.model_dump_json())
    doc["period"] = {"start": "2022Q1", "end": "2022Q1"}
    doc["grid"]["tile_size"] = 256
    model = f"s3://{stack.bucket}/{prefix}/models/model.pt"
    put_file(_model(tmp_path / "model.pt"), model, stack.s3_endpoint)
    doc["model"] = {"checkpoint": model}
    doc["cluster"] = {"kind": "kubernetes", "threads_per_worker": 1, "kubernetes": {
        "namespace": "lpqlc", "image": "registry.example/lpqlc:test-cpu",
        "cpu_workers": {"replicas": 2, "cpu": "1", "memory": "2Gi"},
        "gpu_workers": {"replicas": 1, "cpu": "1", "memory": "3Gi", "gpus": 1}}}  # fmt: skip
    text = yaml.safe_dump(doc, sort_keys=False)
    return config_from_dict(yaml.safe_load(text)), text


def _objs(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _job_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return _objs(objs, "Job")[0]["spec"]["template"]["spec"]


@pytest.mark.stack
@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_rendered_containers_start_and_the_backfill_job_publishes(
    overlay: str, stack: StackState, s3_archive: Any, tmp_path: Path
) -> None:
    gpu = overlay == "gpu"
    prefix = f"k8s-{overlay}-{uuid.uuid4().hex[:6]}"
    cfg, text = _pipeline(stack, tmp_path, prefix, landsat=gpu)
    objs = render(cfg, text, gpu=gpu)
    cluster = _objs(objs, "DaskCluster")[0]
    groups = _objs(objs, "DaskWorkerGroup")
    assert len(groups) == int(gpu)
    if gpu:  # the GPU group runs the CUDA image, the rest the CPU one
        assert (
            groups[0]["spec"]["worker"]["spec"]["containers"][0]["image"]
            == "registry.example/lpqlc:test-cuda"
        )
    with LocalCluster(tmp_path / "pods", image=IMAGE, namespace="lpqlc", secrets=[_secret(stack)],
                      configmaps=_objs(objs, "ConfigMap")) as lc:  # fmt: skip
        pods = lc.start_dask(cluster, groups)
        sched, workers = pods[0], pods[1:]
        assert len(workers) == 2 + int(gpu)
        assert sched.argv[:2] == ["dask", "scheduler"] and all(
            w.argv[:2] == ["dask", "worker"] for w in workers
        )
        # the operator's autoscaler asks the scheduler's HTTP API first (graceful retirement)
        r = requests.get(f"http://{sched.ip}:8787/api/v1/adaptive_target", timeout=10)
        assert r.status_code == 200 and "workers" in r.json()

        from dask.distributed import Client

        with Client(f"tcp://{sched.ip}:8786", timeout="60s") as client:
            client.wait_for_workers(len(workers), timeout=120)
            info = client.scheduler_info()["workers"]
            names = sorted(w["name"] for w in info.values())
            assert names == sorted(w.env["DASK_WORKER_NAME"] for w in workers)  # the operator's names
            gpu_workers = [a for a, w in info.items() if "GPU" in (w.get("resources") or {})]
            assert len(gpu_workers) == int(gpu)

            job = lc.run_to_completion("lpqlc-backfill", _job_pod(objs), timeout=900)
            assert job.argv[:2] == ["lpqlc", "run"], job.argv  # ENTRYPOINT + args, $(LPQLC_CONFIG) expanded
            assert "DASK_SCHEDULER_ADDRESS" in job.env
            assert (job.env.get("AWS_REQUEST_PAYER") == "requester") == gpu  # Landsat from Earth Search
            if gpu:  # model inference ran on the GPU-group worker (on CPU torch here)
                done = client.run(lambda dask_worker: dask_worker.state.executed_count, workers=gpu_workers)
                assert all(n > 0 for n in done.values()), done
            else:  # the quarterly CronJob's container, after the backfill: nothing new to do
                cron = _objs(objs, "CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                upd = lc.run_to_completion("lpqlc-update", cron, timeout=600)
                assert upd.argv[:2] == ["lpqlc", "update"] and "plan:" in upd.log.read_text(errors="replace")
    publish = cfg.publish_url
    assert exists(f"{publish}/catalog.json", stack.s3_endpoint)
    items = list_files(publish, "*/*/*.json", stack.s3_endpoint)
    assert any("landcover" in u for u in items) and any("erosion" in u for u in items), items[:10]


# ----------------------------------------------------------------- what the contract test catches
@pytest.fixture(scope="module")
def rendered() -> tuple[Any, str, list[dict[str, Any]]]:
    cfg = small_config(
        stac_api="http://127.0.0.1:1", storage="s3://lpqlc-test/contract", endpoint_url="http://127.0.0.1:2"
    )
    doc = json.loads(cfg.model_dump_json())
    doc["cluster"] = {
        "kind": "kubernetes",
        "kubernetes": {"cpu_workers": {"replicas": 1}, "gpu_workers": {"replicas": 1, "gpus": 1}},
    }
    text = yaml.safe_dump(doc)
    cfg = config_from_dict(yaml.safe_load(text))
    return cfg, text, render(cfg, text, gpu=True)


def test_a_missing_secret_or_key_stops_every_container(rendered: Any) -> None:
    _, _, objs = rendered
    # the pods as the operator builds them (it injects DASK_WORKER_NAME and DASK_SCHEDULER_ADDRESS)
    pods = operator_pods(_objs(objs, "DaskCluster")[0], _objs(objs, "DaskWorkerGroup"))
    dask = {spec["containers"][0]["image"] + role: spec["containers"][0] for _, role, spec in pods}
    containers = [*dask.values()] + [
        c for o in objs if o["kind"] in ("Job", "CronJob") for c in _containers(o)
    ]
    assert len(containers) == 5  # scheduler, CPU workers, GPU workers, CronJob, Job
    for c in containers:
        with pytest.raises(ContainerConfigError, match="secret 'lpqlc-s3' not found"):
            resolve_env(c, image=IMAGE, secrets={}, fields={"status.podIP": "127.0.0.9"})
        partial = {"lpqlc-s3": {"stringData": {"AWS_ACCESS_KEY_ID": "k"}}}
        with pytest.raises(ContainerConfigError, match="no key 'AWS_SECRET_ACCESS_KEY'"):
            resolve_env(c, image=IMAGE, secrets=partial, fields={"status.podIP": "127.0.0.9"})
        ok = {"lpqlc-s3": {"stringData": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}}}
        env = resolve_env(c, image=IMAGE, secrets=ok, fields={"status.podIP": "127.0.0.9"})
        assert env["AWS_SECRET_ACCESS_KEY"] == "s" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:2"
        assert env["AWS_S3_ENDPOINT"] == "127.0.0.1:2" and env["LPQLC_CONFIG"] == "/etc/lpqlc/pipeline.yaml"
        argv = resolve_argv(IMAGE, c, env)
        assert not any("$(" in a for a in argv), argv  # every reference resolves


def _containers(o: dict[str, Any]) -> list[dict[str, Any]]:
    if o["kind"] == "CronJob":
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    if o["kind"] == "Job":
        return o["spec"]["template"]["spec"]["containers"]
    return []


def _run_job(tmp_path: Path, image: Image, objs: list[dict[str, Any]], secrets: list[dict[str, Any]]) -> None:
    with LocalCluster(tmp_path, image=image, namespace="lpqlc", secrets=secrets,
                      configmaps=_objs(objs, "ConfigMap")) as lc:  # fmt: skip
        lc.run_to_completion("lpqlc-backfill", _job_pod(objs), timeout=120)


SECRET = {
    "metadata": {"name": "lpqlc-s3"},
    "stringData": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
}


def test_a_wrong_entrypoint_fails_the_job(rendered: Any, tmp_path: Path) -> None:
    _, _, objs = rendered
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        (ROOT / "Dockerfile").read_text().replace('ENTRYPOINT ["lpqlc"]', 'ENTRYPOINT ["lpqlc-cli"]')
    )
    with pytest.raises(ContainerStartError, match="'lpqlc-cli': executable file not found"):
        _run_job(tmp_path / "a", image_from_dockerfile(bad), objs, [SECRET])
    # an entrypoint that exists but is not ours: `dask run --config …` is not a command either
    bad.write_text((ROOT / "Dockerfile").read_text().replace('ENTRYPOINT ["lpqlc"]', 'ENTRYPOINT ["dask"]'))
    with pytest.raises(ContainerStartError, match="failed"):
        _run_job(tmp_path / "b", image_from_dockerfile(bad), objs, [SECRET])


def test_a_command_the_cli_lacks_fails_the_job(rendered: Any, tmp_path: Path) -> None:
    _, _, objs = rendered
    objs = json.loads(json.dumps(objs))
    _job_pod(objs)["containers"][0]["args"][0] = "backfill"
    with pytest.raises(ContainerStartError, match="No such command"):
        _run_job(tmp_path, IMAGE, objs, [SECRET])


def test_kubelet_expansion_and_argv_rules() -> None:
    env = {"A": "1", "B": "x y"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-x y-$(C)-$(A)"
    image = Image(entrypoint=("lpqlc",), cmd=("--help",))
    assert resolve_argv(image, {}, env) == ["lpqlc", "--help"]
    assert resolve_argv(image, {"args": ["run", "$(A)"]}, env) == ["lpqlc", "run", "1"]
    assert resolve_argv(image, {"command": ["dask", "worker"]}, env) == ["dask", "worker"]  # CMD dropped
    assert resolve_argv(image, {"command": ["dask"], "args": ["scheduler"]}, env) == ["dask", "scheduler"]
    e = resolve_env({"env": [{"name": "X", "value": "$(A)/z"}, {"name": "A", "value": "2"}]},
                    image=Image((), ("sh",), {"A": "0"}), secrets={}, fields={})  # fmt: skip
    assert e["X"] == "0/z" and e["A"] == "2"  # env refers to what precedes it, later entries win


def _contract(c: dict[str, Any]) -> tuple[Any, ...]:
    """What decides whether a container starts and finds its inputs, minus values the config sets."""
    config_dependent = {
        "AWS_ENDPOINT_URL",
        "AWS_S3_ENDPOINT",
        "AWS_VIRTUAL_HOSTING",
        "AWS_HTTPS",
        "AWS_REQUEST_PAYER",
    }
    env = sorted(
        (e["name"], json.dumps(e.get("valueFrom"), sort_keys=True))
        for e in c["env"]
        if e["name"] not in config_dependent
    )
    options = [a for a in c["args"] if a.startswith("--") or "$(" in a]
    ports = sorted(json.dumps(p, sort_keys=True) for p in c.get("ports", []))
    return (c.get("command"), options, c["envFrom"], env, c.get("volumeMounts"), ports)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_checked_in_overlays_have_the_contract_the_run_tested(overlay: str, rendered: Any) -> None:
    """The overlays in k8s/ (loess-plateau.yaml) start their containers exactly as the renders the
    run above starts (same command, options, env sources, mounts, ports)."""
    _, _, tested = rendered
    cmd = ["kubectl", "kustomize", str(ROOT / "k8s" / "overlays" / overlay)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    applied = [d for d in yaml.safe_load_all(out.stdout) if d]

    def containers(objs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        out: dict[str, tuple[Any, ...]] = {}
        for o in objs:
            if o["kind"] == "DaskCluster":
                for part in ("scheduler", "worker"):
                    out[part] = _contract(o["spec"][part]["spec"]["containers"][0])
            elif o["kind"] == "DaskWorkerGroup":
                out["gpu"] = _contract(o["spec"]["worker"]["spec"]["containers"][0])
            else:
                for c in _containers(o):
                    out[o["kind"]] = _contract(c)
        return out

    mine, theirs = containers(tested), containers(applied)
    assert set(theirs) == (
        {"scheduler", "worker", "Job", "CronJob"} | ({"gpu"} if overlay == "gpu" else set())
    )
    for name, contract in theirs.items():
        assert contract == mine[name], name
