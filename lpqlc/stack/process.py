"""Process helpers for the local data plane: free ports, detached servers, readiness polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lpqlc.errors import StackError

__all__ = ["free_ports", "spawn", "wait_until", "pid_alive", "terminate", "run_checked", "tcp_open"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def spawn(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a server detached in its own session, output appended to ``log``; returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid runs (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def wait_until(
    ready: Callable[[], bool],
    *,
    service: str,
    log: Path,
    timeout: float = 60.0,
    pid: int | None = None,
) -> None:
    """Poll ``ready`` until true; raise :class:`StackError` naming the service and its log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - any failure of a readiness probe means "not yet"
            pass
        if pid is not None and not pid_alive(pid):
            raise StackError(f"{service} exited during start-up; see its log {log}")
        time.sleep(0.25)
    raise StackError(f"{service} did not become ready within {timeout:.0f} s; see its log {log}")


def terminate(pid: int | None, timeout: float = 15.0) -> None:
    """Stop a detached server and its process group: SIGTERM, then SIGKILL after ``timeout``."""
    if not pid_alive(pid):
        return
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def run_checked(cmd: Sequence[str], *, service: str, log: Path, env: Mapping[str, str] | None = None) -> None:
    """Run a set-up command to completion; on failure raise naming the service and the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        code = subprocess.run(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env else None, check=False
        ).returncode
    if code != 0:
        raise StackError(f"{service}: `{' '.join(cmd)}` failed (exit {code}); see its log {log}")
