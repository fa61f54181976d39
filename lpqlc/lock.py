"""The run lock: one writer per publish URL at a time.

``lpqlc run`` and ``lpqlc update`` hold a lease, ``<publish.url>/_lock.json``, while they write, so
two runs on the same catalog (a CronJob overlapping a backfill) never interleave their writes:

- **acquire**: create the lease with one conditional write (S3 ``PUT`` with ``If-None-Match: *``;
  honoured by AWS S3 and by SeaweedFS — checked against the test server; ``O_EXCL`` for a local
  catalog). It holds the run's id, host, process id, command, start time and last heartbeat.
- **held by another run**: :class:`LockHeldError` names the holder, its host and command, and how
  long ago it started and last renewed; the CLI exits non-zero with that message.
- **renew**: a daemon thread rewrites the heartbeat every ``lock_timeout / 3`` with ``If-Match`` on
  the lease's ETag, so a slow run keeps its lease however long it lasts.
- **stale**: a lease whose heartbeat is older than ``publish.lock_timeout`` (its run crashed or was
  killed), or whose holder ran on this host and its process is gone, is taken over with a compare-and-swap (``If-Match`` on the stale lease's ETag: of two runs
  taking over at once exactly one wins); the takeover is logged with the old holder.
- **release**: the lease is deleted at the end, only if it is still ours.

Hand-written because no maintained library offers an S3 lease; the atomic parts are the storage
server's own conditional writes (:func:`lpqlc.storage.create_exclusive`, :func:`~lpqlc.storage.replace_if_match`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from lpqlc.config import PipelineConfig
from lpqlc.errors import LpqlcError
from lpqlc.storage import Store, create_exclusive, read_versioned, remove, replace_if_match

__all__ = ["Lease", "LockHeldError", "run_lock", "lock_url", "acquire", "release", "publish_lock", "command_line"]

log = logging.getLogger(__name__)


class LockHeldError(LpqlcError):
    """Another run holds the publish URL's lease; the message names it and its age."""


@dataclass(frozen=True)
class Lease:
    """What the lease object holds (times are ISO 8601 UTC)."""

    run_id: str
    host: str
    pid: int
    command: str
    started: str
    heartbeat: str

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Lease:
        try:
            doc = json.loads(data)
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            # an unreadable lease cannot be trusted to be live or stale: a human must look
            raise LpqlcError(f"the run lock {where} is not a lease document ({exc}); delete it if no run is active") from None

    def age(self, now: datetime | None = None) -> tuple[float, float]:
        """Seconds since the run started and since its last heartbeat."""
        now = now or datetime.now(UTC)
        return (now - _parse(self.started)).total_seconds(), (now - _parse(self.heartbeat)).total_seconds()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _span(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else (f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s")


def _dead_here(holder: Lease) -> bool:
    """Whether the holder ran on this host and its process is gone (killed): stale at once, no need
    to wait for the timeout. Other hosts (other pods) are judged by their heartbeat only."""
    if holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def lock_url(publish_url: str) -> str:
    """``<publish_url>/_lock.json``."""
    return f"{publish_url.rstrip('/')}/_lock.json"


def acquire(url: str, command: str, timeout: float, store: Store | None = None) -> tuple[Lease, str]:
    """Take the lease at ``url`` (see the module doc); returns it and its version tag.

    Raises :class:`LockHeldError` when a live run holds it (heartbeat younger than ``timeout`` seconds).
    """
    ts = _now()
    mine = Lease(uuid.uuid4().hex, socket.gethostname(), os.getpid(), command, ts, ts)
    for _ in range(5):  # a lease released or taken over between our reads: look again
        if create_exclusive(url, mine.to_bytes(), store):
            got = read_versioned(url, store)
            if got is not None and Lease.from_bytes(got[0], url).run_id == mine.run_id:
                log.info("run lock %s taken (run %s)", url, mine.run_id)
                return mine, got[1]
            continue
        got = read_versioned(url, store)
        if got is None:
            continue
        holder = Lease.from_bytes(got[0], url)
        if holder.run_id == mine.run_id:  # our create succeeded but its answer was lost and retried
            return mine, got[1]
        started, beat = holder.age()
        if beat < timeout and not _dead_here(holder):
            raise LockHeldError(
                f"another run holds the lock {url}: run {holder.run_id} ({holder.command!r}) on {holder.host} "
                f"pid {holder.pid}, started {holder.started} ({_span(started)} ago), last heartbeat "
                f"{_span(beat)} ago; try again when it has finished (a lease is taken over after "
                f"{_span(timeout)} without a heartbeat)"
            )
        if replace_if_match(url, mine.to_bytes(), got[1], store):
            log.warning("run lock %s: took over the stale lease of run %s (%r on %s pid %d, started %s, no heartbeat "
                        "for %s)", url, holder.run_id, holder.command, holder.host, holder.pid, holder.started, _span(beat))  # fmt: skip
            now = read_versioned(url, store)
            if now is not None and Lease.from_bytes(now[0], url).run_id == mine.run_id:
                return mine, now[1]
    raise LockHeldError(f"could not take the lock {url}: other runs keep changing it")


def release(url: str, lease: Lease, store: Store | None = None) -> None:
    """Delete the lease if it is still ``lease`` (a run that lost it to a takeover leaves it alone)."""
    got = read_versioned(url, store)
    if got is None:
        log.warning("run lock %s was gone before run %s released it", url, lease.run_id)
        return
    holder = Lease.from_bytes(got[0], url)
    if holder.run_id != lease.run_id:
        log.warning("run lock %s: run %s lost its lease to run %s; not deleting it", url, lease.run_id, holder.run_id)
        return
    remove(url, store)
    log.info("run lock %s released (run %s)", url, lease.run_id)


class _Heartbeat(threading.Thread):
    """Renews the lease every ``period`` seconds while the run goes on."""

    def __init__(self, url: str, lease: Lease, tag: str, period: float, store: Store | None):
        super().__init__(name="lpqlc-lock-heartbeat", daemon=True)
        self.url, self.lease, self.tag, self.period, self.store = url, lease, tag, period, store
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            beat = Lease(**{**asdict(self.lease), "heartbeat": _now()})
            try:
                if not replace_if_match(self.url, beat.to_bytes(), self.tag, self.store):
                    self.lost = True
                    log.error("run lock %s: the lease of run %s was taken over by another run", self.url, self.lease.run_id)
                    return
                got = read_versioned(self.url, self.store)
                if got is None:
                    self.lost = True
                    return
                self.tag = got[1]
            except LpqlcError as exc:  # storage briefly unreachable: try again at the next beat
                log.warning("run lock %s: heartbeat failed: %s", self.url, exc)


@contextmanager
def run_lock(publish_url: str, command: str, timeout: float, store: Store | None = None) -> Iterator[Lease]:
    """Hold the lease of ``publish_url`` for the block (acquire, heartbeat, release; module doc).

    ``command`` names the run in the message another run gets; ``timeout`` (seconds) is how long a
    lease may go without a heartbeat before it counts as stale and is taken over.
    """
    url = lock_url(publish_url)
    lease, tag = acquire(url, command, timeout, store)
    beat = _Heartbeat(url, lease, tag, max(0.5, timeout / 3), store)
    beat.start()
    try:
        yield lease
    finally:
        beat.stopped.set()
        beat.join(timeout=30)
        release(url, lease, store)


def command_line() -> str:
    """The current process's command line, for the lease (``lpqlc update --config …``)."""
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]


def publish_lock(cfg: PipelineConfig, what: str) -> AbstractContextManager[Lease]:
    """:func:`run_lock` of ``cfg.publish_url`` with ``publish.lock_timeout``; ``what`` names the run."""
    return run_lock(cfg.publish_url, f"{what}: {command_line()}", cfg.publish.lock_timeout, cfg.store)
