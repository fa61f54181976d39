"""The run lock against the real SeaweedFS server: conditional creation is honoured, a live lease
refuses a second run with a message naming the holder and its age, a stale lease is taken over (and
logged), of two runs racing for one stale lease exactly one wins, a lease is renewed and released."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lpqlc.lock import Lease, LockHeldError, acquire, lock_url, run_lock
from lpqlc.stack import StackState
from lpqlc.storage import create_exclusive, exists, read_bytes, write_bytes

pytestmark = pytest.mark.stack


def _root(stack: StackState) -> str:
    return f"s3://{stack.bucket}/lock-{uuid.uuid4().hex[:8]}/stac"


def test_seaweedfs_honours_if_none_match(stack: StackState) -> None:
    url = f"{_root(stack)}/x.json"
    assert create_exclusive(url, b"one", stack.s3_endpoint)
    assert not create_exclusive(url, b"two", stack.s3_endpoint)
    assert read_bytes(url, stack.s3_endpoint) == b"one"


def test_a_second_run_is_refused_naming_the_holder_then_may_run_after_release(stack: StackState) -> None:
    root = _root(stack)
    with run_lock(root, "update: first", 600, stack.s3_endpoint) as lease:
        with pytest.raises(LockHeldError) as err, run_lock(root, "update: second", 600, stack.s3_endpoint):
            pass
        msg = str(err.value)
        assert lease.run_id in msg and "update: first" in msg and lease.host in msg and "ago" in msg
        assert json.loads(read_bytes(lock_url(root), stack.s3_endpoint))["run_id"] == lease.run_id  # untouched
    assert not exists(lock_url(root), stack.s3_endpoint)
    with run_lock(root, "update: second", 600, stack.s3_endpoint) as again:
        assert again.run_id != lease.run_id


def _stale(root: str, stack: StackState, hours: float = 2.0) -> Lease:
    t = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    dead = Lease("dead" + uuid.uuid4().hex[:8], "crashed-host", 4242, "run: crashed", t, t)
    write_bytes(lock_url(root), dead.to_bytes(), stack.s3_endpoint)
    return dead


def test_a_stale_lease_is_taken_over_and_logged(stack: StackState, caplog: pytest.LogCaptureFixture) -> None:
    root = _root(stack)
    dead = _stale(root, stack)
    with pytest.raises(LockHeldError):  # younger than a 3-hour timeout: still live
        acquire(lock_url(root), "x", 3 * 3600, stack.s3_endpoint)
    with caplog.at_level(logging.WARNING, logger="lpqlc.lock"), run_lock(root, "update: new", 600, stack.s3_endpoint) as lease:
        assert json.loads(read_bytes(lock_url(root), stack.s3_endpoint))["run_id"] == lease.run_id
    assert any("took over the stale lease" in r.message and dead.run_id in r.message for r in caplog.records)
    assert not exists(lock_url(root), stack.s3_endpoint)


def test_of_two_runs_taking_over_one_stale_lease_exactly_one_wins(stack: StackState) -> None:
    root = _root(stack)
    _stale(root, stack)
    barrier = threading.Barrier(2)
    outcome: list[str] = []

    def take() -> None:
        barrier.wait()
        try:
            lease, _ = acquire(lock_url(root), "racer", 600, stack.s3_endpoint)
            outcome.append(lease.run_id)
        except LockHeldError:
            outcome.append("refused")

    threads = [threading.Thread(target=take) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o == "refused" for o in outcome) == [False, True], outcome
    winner = next(o for o in outcome if o != "refused")
    assert json.loads(read_bytes(lock_url(root), stack.s3_endpoint))["run_id"] == winner


def test_the_heartbeat_keeps_a_long_run_alive(stack: StackState) -> None:
    root = _root(stack)
    with run_lock(root, "long", 1.5, stack.s3_endpoint) as lease:
        first = json.loads(read_bytes(lock_url(root), stack.s3_endpoint))["heartbeat"]
        threading.Event().wait(2.0)  # longer than the timeout: only the heartbeat keeps it live
        beat = json.loads(read_bytes(lock_url(root), stack.s3_endpoint))
        assert beat["run_id"] == lease.run_id and beat["heartbeat"] > first
        with pytest.raises(LockHeldError):
            acquire(lock_url(root), "intruder", 1.5, stack.s3_endpoint)


def test_a_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(stack: StackState) -> None:
    import socket
    import subprocess
    import sys

    root = _root(stack)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    t = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a fresh heartbeat: only the dead pid makes it stale
    write_bytes(lock_url(root), Lease("killed", socket.gethostname(), int(gone.stdout), "run", t, t).to_bytes(),
                stack.s3_endpoint)  # fmt: skip
    with run_lock(root, "rerun", 600, stack.s3_endpoint) as lease:
        assert json.loads(read_bytes(lock_url(root), stack.s3_endpoint))["run_id"] == lease.run_id
