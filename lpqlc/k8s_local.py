"""Run rendered Kubernetes containers as local processes: the container contract, checked without a cluster.

No API server, kubelet or container engine exists on the development machines, so this module does the
parts of their work that decide whether a container starts and finds what it needs:

- the image's ``ENTRYPOINT``/``CMD`` come from the Dockerfile's final stage (``dockerfile-parse``);
- argv as the kubelet builds it: ``command`` replaces ENTRYPOINT (and drops CMD), ``args`` replaces CMD,
  and ``$(VAR)`` in either expands from the container's environment (:func:`expand`);
- the environment as the kubelet builds it: ``envFrom`` first, then ``env`` (which wins), each
  ``$(VAR)``-expanded from what precedes it; a missing Secret, or a missing key of it, stops the
  container before it starts (``CreateContainerConfigError``), and so does an unresolvable ``fieldRef``;
- the scheduler and worker pods as the dask-kubernetes operator builds them from a ``DaskCluster`` and
  its ``DaskWorkerGroup`` s, by calling the operator's own functions
  (``dask_kubernetes/operator/controller/controller.py``: ``build_scheduler_deployment_spec``,
  ``build_default_worker_group_spec``, ``build_worker_deployment_spec``, which injects
  ``DASK_WORKER_NAME`` and ``DASK_SCHEDULER_ADDRESS``);
- readiness/liveness ``httpGet`` probes against the pod's address.

Three translations stand in for what only a cluster has, and nothing else is changed: each pod gets its
own loopback address (``127.0.0.N``, its "pod IP"); the scheduler Service's DNS name resolves to the
scheduler pod's address; a ConfigMap volume is written to a local folder that takes the place of its
``mountPath``. The image's ``/opt/venv`` is this interpreter's environment (``PYTHONPATH`` is passed
through so a checkout runs its own code). Nothing else of the caller's environment reaches a container.

The expansion and resolution rules are hand-written because no Python library implements the kubelet's
(the reference is Kubernetes' ``third_party/forked/golang/expansion`` and ``kubelet_pods.go``).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from lpqlc.errors import LpqlcError

__all__ = ["Image", "image_from_dockerfile", "expand", "resolve_argv", "resolve_env", "ContainerConfigError",
           "ContainerStartError", "LocalPod", "LocalCluster", "operator_pods"]  # fmt: skip

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(LpqlcError):
    """The kubelet would not create the container (``CreateContainerConfigError``)."""


class ContainerStartError(LpqlcError):
    """The container was created but its process did not start or did not come up."""


@dataclass(frozen=True)
class Image:
    """An image's start contract: ENTRYPOINT and CMD (exec form; shell form as ``/bin/sh -c``) and ENV."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def _form(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return tuple(parsed)
    return ("/bin/sh", "-c", value)


def image_from_dockerfile(path: str | Path) -> Image:
    """ENTRYPOINT, CMD and ENV of the Dockerfile's final stage (what ``docker build`` produces by default).

    Raises :class:`ContainerConfigError` naming the file when the final stage sets neither ENTRYPOINT nor
    CMD (they would be the base image's, unknown here)."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    stage: list[dict[str, Any]] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            stage = []
        else:
            stage.append(ins)
    entry = [i for i in stage if i["instruction"] == "ENTRYPOINT"]
    cmd = [i for i in stage if i["instruction"] == "CMD"]
    if not entry and not cmd:
        raise ContainerConfigError(f"{path}: the final stage sets no ENTRYPOINT or CMD")
    return Image(entrypoint=_form(entry[-1]["value"]) if entry else (),
                 cmd=_form(cmd[-1]["value"]) if cmd else (), env=dict(parser.envs))  # fmt: skip


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable is replaced, an undefined reference is
    left as written, ``$$`` is an escaped ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def resolve_argv(image: Image, container: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The process argv of ``container`` on ``image``: ``command`` replaces ENTRYPOINT (CMD is then
    ignored), ``args`` replaces CMD; ``$(VAR)`` expands from ``env``."""
    if "command" in container:
        argv = list(container["command"]) + list(container.get("args", []))
    else:
        argv = list(image.entrypoint) + list(container["args"] if "args" in container else image.cmd)
    if not argv:
        raise ContainerConfigError(
            f"container {container.get('name')!r}: no command, no args, no ENTRYPOINT/CMD"
        )
    return [expand(a, env) for a in argv]


def _secret_data(secrets: dict[str, dict[str, Any]], name: str) -> dict[str, str] | None:
    s = secrets.get(name)
    if s is None:
        return None
    data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
    data.update(s.get("stringData") or {})
    return data


def resolve_env(container: dict[str, Any], *, image: Image, secrets: dict[str, dict[str, Any]],
                fields: dict[str, str]) -> dict[str, str]:  # fmt: skip
    """The container's environment: the image's ENV, then ``envFrom`` (Secrets), then ``env`` in order,
    each value ``$(VAR)``-expanded from those before it. ``fields`` answers ``fieldRef`` paths
    (``status.podIP``, ``metadata.name``, …). Raises :class:`ContainerConfigError` like the kubelet."""
    name = container.get("name", "?")
    env: dict[str, str] = {k: v for k, v in image.env.items() if k != "PATH"}
    for src in container.get("envFrom", []):
        if "secretRef" not in src:
            raise ContainerConfigError(f"container {name!r}: envFrom {src} is not supported here")
        ref = src["secretRef"]
        data = _secret_data(secrets, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f"container {name!r}: secret {ref['name']!r} not found")
        env.update({src.get("prefix", "") + k: v for k, v in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
            continue
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = _secret_data(secrets, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                what = "not found" if data is None else f"has no key {ref['key']!r}"
                raise ContainerConfigError(
                    f"container {name!r}: env {var['name']}: secret {ref['name']!r} {what}"
                )
            env[var["name"]] = data[ref["key"]]
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise ContainerConfigError(
                    f"container {name!r}: env {var['name']}: fieldRef {path} is unknown"
                )
            env[var["name"]] = fields[path]
        else:
            env[var["name"]] = ""
    return env


def operator_pods(
    cluster: dict[str, Any], groups: list[dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(pod name, role, pod spec) of the scheduler and every worker replica, built by the operator's
    own functions from the ``DaskCluster`` and the extra ``DaskWorkerGroup`` s."""
    from dask_kubernetes.operator.controller.controller import (
        build_default_worker_group_spec,
        build_scheduler_deployment_spec,
        build_worker_deployment_spec,
    )

    name = cluster["metadata"]["name"]
    ns = cluster["metadata"]["namespace"]
    spec = copy.deepcopy(cluster["spec"])
    sched = build_scheduler_deployment_spec(name, spec["scheduler"]["spec"], {}, {})
    out = [(sched["metadata"]["name"], "scheduler", sched["spec"]["template"]["spec"])]
    default = build_default_worker_group_spec(name, spec["worker"], {}, {})
    for g in [default, *copy.deepcopy(groups)]:
        for _ in range(g["spec"]["worker"]["replicas"]):
            d = build_worker_deployment_spec(g["metadata"]["name"], ns, name, uuid.uuid4().hex[:10],
                                             g["spec"]["worker"]["spec"], {}, {})  # fmt: skip
            out.append((d["metadata"]["name"], "worker", d["spec"]["template"]["spec"]))
    return out


@dataclass
class LocalPod:
    """A running (or finished) local stand-in for a one-container pod."""

    name: str
    ip: str
    argv: list[str]
    env: dict[str, str]
    container: dict[str, Any]
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class LocalCluster:
    """Pods started as processes on loopback addresses, with the ConfigMaps and Secrets given."""

    def __init__(self, workdir: Path, *, image: Image, namespace: str, secrets: list[dict[str, Any]],
                 configmaps: list[dict[str, Any]]) -> None:  # fmt: skip
        self.workdir, self.image, self.namespace = Path(workdir), image, namespace
        self.secrets = {s["metadata"]["name"]: s for s in secrets}
        self.configmaps = {c["metadata"]["name"]: c for c in configmaps}
        self.services: dict[str, str] = {}  # DNS name → pod IP
        self.pods: list[LocalPod] = []
        self._next_ip = 2

    # -- the three translations ------------------------------------------------------------------
    def _mounts(self, pod: str, spec: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        out = {}
        for m in container.get("volumeMounts", []):
            vol = volumes.get(m["name"])
            if vol is None or "configMap" not in vol:
                raise ContainerConfigError(f"pod {pod}: volumeMount {m['name']!r} has no ConfigMap volume")
            cm = self.configmaps.get(vol["configMap"]["name"])
            if cm is None:
                raise ContainerConfigError(f"pod {pod}: configmap {vol['configMap']['name']!r} not found")
            folder = self.workdir / pod / m["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for key, text in (cm.get("data") or {}).items():
                (folder / key).write_text(text)
            out[m["mountPath"].rstrip("/")] = str(folder)
        return out

    def _local(self, text: str, mounts: dict[str, str]) -> str:
        for path, folder in mounts.items():
            if text == path or text.startswith(path + "/"):
                text = folder + text[len(path) :]
        for host, ip in self.services.items():
            text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w.-])", ip, text)
        return text

    def _image_path(self) -> str:
        venv_bin = str(Path(sys.executable).parent)
        path = self.image.env.get("PATH", "")
        return (
            ":".join(venv_bin if p == "/opt/venv/bin" else p for p in path.split(":") if p) + ":/usr/bin:/bin"
        )

    # -- pods --------------------------------------------------------------------------------------
    def start(self, pod: str, spec: dict[str, Any]) -> LocalPod:
        """Start the pod's (single) container; raises :class:`ContainerConfigError` or
        :class:`ContainerStartError` where the kubelet would report them."""
        if len(spec["containers"]) != 1:
            raise ContainerConfigError(f"pod {pod}: one container expected, got {len(spec['containers'])}")
        container = spec["containers"][0]
        ip = f"127.0.0.{self._next_ip}"
        self._next_ip += 1
        fields = {"status.podIP": ip, "metadata.name": pod, "metadata.namespace": self.namespace}
        env = resolve_env(container, image=self.image, secrets=self.secrets, fields=fields)
        argv = resolve_argv(self.image, container, env)
        mounts = self._mounts(pod, spec, container)
        env = {k: self._local(v, mounts) for k, v in env.items()}
        argv = [self._local(a, mounts) for a in argv]
        home = self.workdir / pod / "home"
        home.mkdir(parents=True, exist_ok=True)
        env["PATH"] = self._image_path()
        env.setdefault("HOME", str(home))
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        exe = shutil.which(argv[0], path=env["PATH"]) if "/" not in argv[0] else argv[0]
        if exe is None:
            raise ContainerStartError(f"pod {pod}: exec: {argv[0]!r}: executable file not found in $PATH")
        log = self.workdir / pod / "log.txt"
        with log.open("wb") as fh:
            proc = subprocess.Popen([exe, *argv[1:]], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    cwd=str(home), start_new_session=True)  # fmt: skip
        p = LocalPod(pod, ip, argv, env, container, log, proc)
        self.pods.append(p)
        return p

    def start_dask(
        self, cluster: dict[str, Any], groups: list[dict[str, Any]], timeout: float = 180
    ) -> list[LocalPod]:
        """The operator's pods of the cluster: the scheduler (its Service name resolving to its address),
        ready, then every worker, alive."""
        pods = operator_pods(cluster, groups)
        name = cluster["metadata"]["name"]
        sched_name, _, sched_spec = pods[0]
        sched = self.start(sched_name, sched_spec)
        svc = f"{name}-scheduler"
        for host in (f"{svc}.{self.namespace}.svc.cluster.local", f"{svc}.{self.namespace}.svc",
                     f"{name}-scheduler.{self.namespace}", f"{name}-scheduler"):  # fmt: skip
            self.services[host] = sched.ip
        self.wait_probe(sched, timeout)
        workers = [self.start(n, s) for n, _, s in pods[1:]]
        for w in workers:
            self.wait_probe(w, timeout)
        return [sched, *workers]

    def wait_probe(self, pod: LocalPod, timeout: float) -> None:
        """Poll the container's readiness (else liveness) ``httpGet`` probe at the pod's address until
        it answers 2xx/3xx; raises :class:`ContainerStartError` with the log if the process exits or
        the time runs out."""
        c = pod.container
        probe = c.get("readinessProbe") or c.get("livenessProbe")
        if probe is None or "httpGet" not in probe:
            raise ContainerStartError(f"pod {pod.name}: no httpGet probe to wait on")
        port = probe["httpGet"]["port"]
        if isinstance(port, str):
            named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            if port not in named:
                raise ContainerConfigError(
                    f"pod {pod.name}: probe port {port!r} is not a named container port"
                )
            port = named[port]
        url = f"http://{pod.ip}:{port}{probe['httpGet'].get('path', '/')}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pod.process.poll() is not None:
                raise ContainerStartError(f"pod {pod.name} exited ({pod.process.returncode}) before probe "
                                          f"{url} answered; argv {pod.argv}\n{pod.log_tail()}")  # fmt: skip
            try:
                if requests.get(url, timeout=2).status_code < 400:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise ContainerStartError(
            f"pod {pod.name}: probe {url} did not answer in {timeout:.0f} s\n{pod.log_tail()}"
        )

    def run_to_completion(self, pod: str, spec: dict[str, Any], timeout: float) -> LocalPod:
        """Start a Job's pod and wait for it to exit; raises :class:`ContainerStartError` (with its log)
        unless it exits 0."""
        p = self.start(pod, spec)
        try:
            p.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop(p)
            raise ContainerStartError(
                f"pod {pod} did not finish in {timeout:.0f} s\n{p.log_tail()}"
            ) from None
        if p.process.returncode != 0:
            raise ContainerStartError(
                f"pod {pod} failed (exit {p.process.returncode}); argv {p.argv}\n{p.log_tail()}"
            )
        return p

    @staticmethod
    def _stop(p: LocalPod) -> None:
        if p.process.poll() is None:
            p.process.terminate()
            try:
                p.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.process.kill()
                p.process.wait(timeout=10)

    def close(self) -> None:
        """Stop every pod (workers first, then the scheduler)."""
        for p in reversed(self.pods):
            self._stop(p)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
