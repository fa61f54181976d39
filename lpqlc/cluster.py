"""The Dask cluster a pipeline runs on: a local one (default) or an existing scheduler's address.

The Kubernetes operator (``cluster.kind: kubernetes``) belongs here too; until it lands, that kind is
refused with a clear error rather than silently run locally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lpqlc.config.pipeline import ClusterConfig
from lpqlc.errors import ConfigError

__all__ = ["open_client"]


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
