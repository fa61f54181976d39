"""The storage object every stage receives: one :class:`Store`, made once from the config.

It holds what reading and writing a URL needs besides the URL: the S3 endpoint and extra s3fs options
(its fsspec filesystems), the GDAL configuration options (for rasterio and odc-stac reads, also inside
Dask tasks: a Store pickles with its settings) and the retry policy for transient S3 failures. URLs
stay URLs (config, CLI, item hrefs); the Store resolves them.

Credentials never come from configuration: s3fs and GDAL read ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` from the environment. The endpoint (for a non-AWS S3 server) comes from the
pipeline's storage settings or from ``AWS_ENDPOINT_URL``, resolved when the Store is made.

Atomicity: an object is first written under a temporary key beside its destination, then moved into
place: ``os.replace`` for a local file, a server-side copy (then deletion of the temporary key) for S3,
which makes the destination visible whole or not at all. Readers never see a partial object, and a
writer killed mid-way leaves at most a ``.<name>.<random>.tmp`` key, never a half-written destination.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import fsspec

from lpqlc.errors import StorageError
from lpqlc.storage.retry import RetryPolicy
from lpqlc.storage.urls import StorageURL, parse_storage_url

__all__ = ["Store", "env_endpoint"]

log = logging.getLogger("lpqlc.storage")

#: What a conditional write reports when its precondition did not hold (the object exists, or changed).
_PRECONDITION_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def env_endpoint() -> str | None:
    """The S3 endpoint named by the environment (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _loc(url: str | StorageURL, what: str = "URL") -> StorageURL:
    return url if isinstance(url, StorageURL) else parse_storage_url(url, what=what)


@dataclass(frozen=True)
class Store:
    """How to reach storage: S3 ``endpoint_url`` (None: AWS), extra s3fs ``s3_options``, extra GDAL
    configuration options ``gdal`` and the ``retry`` policy. Immutable, cheap, picklable (Dask tasks
    carry it); filesystems come from fsspec's instance cache."""

    endpoint_url: str | None = None
    s3_options: Mapping[str, Any] = field(default_factory=dict)
    gdal: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, endpoint_url: str | None = None, *, s3_options: Mapping[str, Any] | None = None,
                      gdal: Mapping[str, str] | None = None, retry_seconds: float | None = None) -> Store:
        """A Store from storage settings; the endpoint defaults to the environment's
        (:func:`env_endpoint`)."""
        retry = RetryPolicy() if retry_seconds is None else RetryPolicy(seconds=retry_seconds)
        return cls(endpoint_url or env_endpoint(), dict(s3_options or {}), dict(gdal or {}), retry)

    def __hash__(self) -> int:
        options = repr(sorted(self.s3_options.items())), repr(sorted(self.gdal.items()))
        return hash((self.endpoint_url, options, self.retry))

    # ------------------------------------------------------------------------------- filesystems
    def filesystem(self, url: str | StorageURL) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem for a location (local, or s3fs with this Store's endpoint and options)."""
        if _loc(url).protocol == "file":
            return fsspec.filesystem("file", auto_mkdir=True)
        return fsspec.filesystem("s3", skip_instance_cache=False, **self.storage_options(url))

    def storage_options(self, url: str | StorageURL = "s3://bucket") -> dict[str, Any]:
        """fsspec ``storage_options`` for opening ``url`` with another library (kerchunk, xarray, zarr)."""
        if _loc(url).protocol == "file":
            return {}
        options: dict[str, Any] = dict(self.s3_options)
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        return options

    def open(self, url: str, mode: str = "rb", **kwargs: Any) -> Any:
        """An open file-like object (reads; writes go through :meth:`write_bytes` to be atomic)."""
        loc = _loc(url)
        return self.filesystem(loc).open(loc.path, mode, **kwargs)

    # ------------------------------------------------------------------------------------- GDAL
    def gdal_env(self) -> dict[str, str]:
        """GDAL configuration options for reading ``s3://`` objects from this Store's endpoint, plus its
        extra ``gdal`` options. Without a custom endpoint or options: empty (plain AWS). Keys stay in
        the environment: rasterio refuses them as options."""
        out: dict[str, str] = {}
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url if "://" in self.endpoint_url else f"http://{self.endpoint_url}")
            if not parsed.hostname:
                raise StorageError(f"S3 endpoint {self.endpoint_url!r} names no host")
            out = {
                "AWS_S3_ENDPOINT": parsed.hostname + (f":{parsed.port}" if parsed.port else ""),
                "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_HTTPS": "YES" if parsed.scheme == "https" else "NO",
            }
        return {**out, **{k: str(v) for k, v in self.gdal.items()}}

    @contextmanager
    def rio_env(self, **extra: Any) -> Iterator[Any]:
        """A ``rasterio.Env`` with this Store's GDAL options (and ``extra``) for the block."""
        import rasterio

        with rasterio.Env(**self.gdal_env(), **extra) as env:
            yield env

    # ------------------------------------------------------------------------------------ reads
    def read_bytes(self, url: str) -> bytes:
        """The whole object at ``url`` (local path or ``s3://``)."""
        loc = _loc(url, "input URL")
        try:
            if loc.protocol == "file":
                return Path(loc.root).read_bytes()
            fs = self.filesystem(loc)
            return bytes(self.retry.run(lambda: fs.cat_file(loc.path), f"reading {loc.url}"))
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {loc.url}: {exc}") from exc

    def exists(self, url: str) -> bool:
        """Whether an object (or local file) exists at ``url``."""
        loc = _loc(url)
        if loc.protocol == "file":
            return Path(loc.root).exists()
        fs = self.filesystem(loc)
        fs.invalidate_cache(loc.path)
        return bool(self.retry.run(lambda: fs.exists(loc.path), f"looking for {loc.url}"))

    def list_files(self, url: str, pattern: str) -> list[str]:
        """URLs of the objects under ``url`` matching the glob ``pattern`` (e.g. ``*/*.json``), sorted."""
        loc = _loc(url)
        fs = self.filesystem(loc)
        fs.invalidate_cache()  # other processes write here too: never answer from a stale listing
        found = self.retry.run(lambda: fs.glob(f"{loc.path.rstrip('/')}/{pattern}"), f"listing {loc.url}")
        return sorted(p if loc.protocol == "file" else f"{loc.protocol}://{p}" for p in found)

    def read_versioned(self, url: str) -> tuple[bytes, str] | None:
        """The object at ``url`` and its version tag (the S3 ETag; a content digest for a local file), or
        None when there is none. Pass the tag to :meth:`replace_if_match` to swap it only if unchanged."""
        loc = _loc(url)
        if loc.protocol == "file":
            try:
                data = Path(loc.root).read_bytes()
            except FileNotFoundError:
                return None
            return data, hashlib.sha256(data).hexdigest()
        fs = self.filesystem(loc)
        bucket, key, _ = fs.split_path(loc.path)
        try:
            resp = self.retry.run(lambda: fs.call_s3("get_object", Bucket=bucket, Key=key),
                                  f"reading {loc.url}")
            body = _sync_read(fs, resp["Body"])
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {loc.url}: {exc}") from exc
        return bytes(body), str(resp["ETag"])

    # ----------------------------------------------------------------------------------- writes
    def write_bytes(self, url: str, data: bytes) -> None:
        """Write ``data`` to ``url`` so that readers see the old object or the whole new one, never a part."""
        loc = _loc(url, "output URL")
        if loc.protocol == "file":
            _replace_atomically(Path(loc.root), lambda fh: fh.write(data))
            return
        self._s3_commit(loc, lambda fs, tmp: fs.pipe_file(tmp, data))

    def put_file(self, local_path: str | os.PathLike[str], url: str) -> None:
        """Copy a finished local file to ``url`` atomically (see :meth:`write_bytes`)."""
        loc = _loc(url, "output URL")
        if loc.protocol == "file":
            with open(local_path, "rb") as src:
                _replace_atomically(Path(loc.root), lambda fh: shutil.copyfileobj(src, fh, 1 << 22))
            return
        self._s3_commit(loc, lambda fs, tmp: fs.put_file(os.fspath(local_path), tmp))

    def remove(self, url: str, *, recursive: bool = False) -> None:
        """Delete an object (or, with ``recursive``, everything under a prefix); missing is not an error."""
        loc = _loc(url)
        fs = self.filesystem(loc)
        try:
            if fs.exists(loc.path):
                fs.rm(loc.path, recursive=recursive)
        except OSError as exc:
            raise StorageError(f"cannot delete {loc.url}: {exc}") from exc

    def create_exclusive(self, url: str, data: bytes) -> bool:
        """Create the object at ``url`` only if there is none: True when this call created it, False when
        an object was already there. S3: one ``PUT`` with ``If-None-Match: *`` (atomic on AWS S3 and
        SeaweedFS; a server that ignores the header would make this unsafe — see docs/updates.md);
        local: ``O_CREAT | O_EXCL``."""
        loc = _loc(url)
        if loc.protocol == "file":
            path = Path(loc.root)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return True
        return self._conditional_put(loc, data, "create", IfNoneMatch="*")

    def replace_if_match(self, url: str, data: bytes, tag: str) -> bool:
        """Overwrite ``url`` with ``data`` only if it still has version ``tag`` (from :meth:`read_versioned`):
        True when replaced, False when it changed or vanished meanwhile. S3: ``PUT`` with ``If-Match``;
        local: compare and rename under an exclusive ``flock`` of a sibling ``.guard`` file."""
        loc = _loc(url)
        if loc.protocol == "file":
            import fcntl

            path = Path(loc.root)
            with open(path.with_name(f".{path.name}.guard"), "a+b") as guard:
                fcntl.flock(guard, fcntl.LOCK_EX)
                now = self.read_versioned(url)
                if now is None or now[1] != tag:
                    return False
                _replace_atomically(path, lambda fh: fh.write(data))
                return True
        return self._conditional_put(loc, data, "replace", IfMatch=tag)

    # ---------------------------------------------------------------------------------- helpers
    def _s3_commit(self, loc: StorageURL, fill: Callable[[Any, str], None]) -> None:
        """Write an S3 object under a temporary sibling key with ``fill(fs, key)``, then move it in place."""
        fs = self.filesystem(loc)
        dest = loc.path
        head, _, name = dest.rpartition("/")
        tmp = f"{head}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            self.retry.run(lambda: fill(fs, tmp), f"writing {loc.url}")
            self.retry.run(lambda: fs.copy(tmp, dest), f"moving {loc.url} into place")
        except OSError as exc:
            raise StorageError(f"cannot write {loc.url}: {exc}") from exc
        finally:
            try:
                self.retry.run(lambda: fs.rm_file(tmp), f"removing s3://{tmp}")
            except FileNotFoundError:
                pass
            except OSError:
                log.warning("could not remove the temporary object s3://%s", tmp)

    def _conditional_put(self, loc: StorageURL, data: bytes, verb: str, **condition: str) -> bool:
        """S3 ``PUT`` of ``data`` under ``condition`` (``IfNoneMatch``/``IfMatch``): False when the server
        says the precondition failed (or, for a replace, the object vanished), True when written."""
        fs = self.filesystem(loc)
        bucket, key, _ = fs.split_path(loc.path)
        try:
            self.retry.run(lambda: fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition),
                           f"{verb.removesuffix('e')}ing {loc.url}")  # fmt: skip
        except OSError as exc:
            if _precondition_failed(exc) or (verb == "replace" and isinstance(exc, FileNotFoundError)):
                return False
            raise StorageError(f"cannot {verb} {loc.url}: {exc}") from exc
        finally:
            fs.invalidate_cache(loc.path)
        return True


def _replace_atomically(dest: Path, fill: Callable[[BinaryIO], None]) -> None:
    """Write a local file through a temporary sibling, then rename it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", "")) if cause is not None else ""
    return code in _PRECONDITION_CODES or "pre-condition" in str(exc) or "precondition" in str(exc).lower()


def _sync_read(fs: Any, body: Any) -> bytes:
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with body as stream:
            return bytes(await stream.read())

    return bytes(sync(fs.loop, read))
