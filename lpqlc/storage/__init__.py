"""Storage: URLs (:mod:`~lpqlc.storage.urls`), the :class:`Store` every stage receives
(:mod:`~lpqlc.storage.store`) and the retry policy (:mod:`~lpqlc.storage.retry`).

The functions below are the Store's methods as plain functions, for scripts and tests: ``store`` is a
:class:`Store` (an S3 endpoint URL string is still accepted — a thin compatibility for callers that
only know an endpoint; None means the environment's settings). Pipeline code passes a Store.
"""

from __future__ import annotations

import os

import fsspec

from lpqlc.storage.retry import S3_RETRY_SECONDS, RetryPolicy, retrying, transient
from lpqlc.storage.store import Store, env_endpoint
from lpqlc.storage.urls import StorageURL, parse_storage_url

__all__ = ["Store", "RetryPolicy", "StoreLike", "as_store", "StorageURL", "parse_storage_url",
           "open_filesystem", "write_bytes", "read_bytes", "exists", "put_file", "gdal_env", "remove",
           "list_files", "retrying", "transient", "read_versioned", "create_exclusive", "replace_if_match",
           "S3_RETRY_SECONDS", "env_endpoint"]

#: A Store, an S3 endpoint URL (compatibility), or None (the environment's settings).
StoreLike = Store | str | None


def as_store(store: StoreLike) -> Store:
    """``store`` itself, or a Store for an endpoint URL / the environment."""
    return store if isinstance(store, Store) else Store.from_settings(store)


def open_filesystem(url: str | StorageURL, store: StoreLike = None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for a location (see :meth:`Store.filesystem`)."""
    return as_store(store).filesystem(url)


def gdal_env(store: StoreLike = None) -> dict[str, str]:
    """GDAL configuration options (see :meth:`Store.gdal_env`)."""
    return as_store(store).gdal_env()


def write_bytes(url: str, data: bytes, store: StoreLike = None) -> None:
    """See :meth:`Store.write_bytes`."""
    as_store(store).write_bytes(url, data)


def put_file(local_path: str | os.PathLike[str], url: str, store: StoreLike = None) -> None:
    """See :meth:`Store.put_file`."""
    as_store(store).put_file(local_path, url)


def read_bytes(url: str, store: StoreLike = None) -> bytes:
    """See :meth:`Store.read_bytes`."""
    return as_store(store).read_bytes(url)


def exists(url: str, store: StoreLike = None) -> bool:
    """See :meth:`Store.exists`."""
    return as_store(store).exists(url)


def remove(url: str, store: StoreLike = None, *, recursive: bool = False) -> None:
    """See :meth:`Store.remove`."""
    as_store(store).remove(url, recursive=recursive)


def list_files(url: str, pattern: str, store: StoreLike = None) -> list[str]:
    """See :meth:`Store.list_files`."""
    return as_store(store).list_files(url, pattern)


def read_versioned(url: str, store: StoreLike = None) -> tuple[bytes, str] | None:
    """See :meth:`Store.read_versioned`."""
    return as_store(store).read_versioned(url)


def create_exclusive(url: str, data: bytes, store: StoreLike = None) -> bool:
    """See :meth:`Store.create_exclusive`."""
    return as_store(store).create_exclusive(url, data)


def replace_if_match(url: str, data: bytes, tag: str, store: StoreLike = None) -> bool:
    """See :meth:`Store.replace_if_match`."""
    return as_store(store).replace_if_match(url, data, tag)
