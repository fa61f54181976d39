"""The Dask cluster a pipeline runs on: a local one (default) or an existing scheduler's address.

The Kubernetes operator (``cluster.kind: kubernetes``) belongs here too; until it lands, that kind is
refused with a clear error rather than silently run locally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dask

from lpqlc.config.pipeline import ClusterConfig
from lpqlc.errors import ConfigError

__all__ = ["open_client", "compute_bounded"]


@contextmanager
def open_client(cfg: ClusterConfig) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the configured cluster, closed (and a local cluster stopped) after."""
    from dask.distributed import Client, LocalCluster

    if cfg.kind == "local":
        with LocalCluster(
            n_workers=cfg.n_workers,
            threads_per_worker=cfg.threads_per_worker,
            memory_limit=cfg.memory_limit,
            processes=True,
            dashboard_address=None,
        ) as cluster, Client(cluster) as client:  # fmt: skip
            yield client
    elif cfg.kind == "address":
        with Client(cfg.address) as client:
            yield client
    else:
        raise ConfigError("cluster.kind 'kubernetes' is not available in this version: use local or address")


def compute_bounded(tasks: list[Any], client: Any, tick: Callable[[], None]) -> list[Any]:
    """Compute Dask collections one future each (on ``client`` if given, at most two per worker thread
    in flight, so memory stays bounded whatever their number); results in input order. ``tick`` is
    called as each finishes. Without a client they run one after another on the local scheduler."""
    if client is None:
        out = []
        for t in tasks:
            out.append(dask.compute(t)[0])
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
    for fut in ac:
        results[index[fut.key]] = fut.result()
        tick()
        if pending:
            i, t = pending.pop(0)
            nxt = client.compute(t)
            index[nxt.key] = i
            ac.add(nxt)
    return [results[i] for i in range(len(tasks))]
