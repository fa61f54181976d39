"""Storage locations: local paths and ``s3://bucket/prefix`` URLs, atomic writes, the GDAL environment.

Credentials never come from configuration: s3fs and GDAL read ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` from the environment. The endpoint (for a non-AWS S3 server) comes from the
pipeline's storage settings or from ``AWS_ENDPOINT_URL``.

Atomicity: an object is first written under a temporary key beside its destination, then moved into
place: ``os.replace`` for a local file, a server-side copy (then deletion of the temporary key) for S3,
which makes the destination visible whole or not at all. Readers never see a partial object, and a
writer killed mid-way leaves at most a ``.<name>.<random>.tmp`` key, never a half-written destination.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import fsspec

from lpqlc.errors import StorageError

__all__ = ["StorageURL", "parse_storage_url", "open_filesystem", "write_bytes", "read_bytes", "exists", "put_file", "gdal_env",
           "remove", "list_files", "retrying", "transient", "read_versioned", "create_exclusive", "replace_if_match"]

log = logging.getLogger(__name__)

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage location: ``protocol`` is ``file`` or ``s3``; ``root`` has no trailing slash."""

    protocol: str
    root: str

    @property
    def url(self) -> str:
        return self.root if self.protocol == "file" else f"{self.protocol}://{self.root}"

    def join(self, *parts: str) -> str:
        """URL of a key below this location (``/``-joined, for local paths too)."""
        tail = "/".join(p.strip("/") for p in parts if p)
        return f"{self.url.rstrip('/')}/{tail}" if tail else self.url


def parse_storage_url(url: str | os.PathLike[str], *, what: str = "storage URL") -> StorageURL:
    """Validate a local path, ``file://`` URL or ``s3://bucket[/prefix]`` URL.

    Raises :class:`StorageError` naming the URL and what is wrong with it.
    """
    text = os.fspath(url).strip()
    if not text:
        raise StorageError(f"{what} is empty")
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and text[1:3] in (":\\", ":/")):
        path = parsed.path if scheme == "file" else text
        if scheme == "file" and parsed.netloc not in ("", "localhost"):
            raise StorageError(f"{what} {text!r}: file URLs must be local (file:///path)")
        return StorageURL("file", str(Path(path).expanduser().absolute()).rstrip("/") or "/")
    if scheme in ("s3", "s3a"):
        bucket = parsed.netloc
        if not bucket:
            raise StorageError(f"{what} {text!r} names no bucket (expected s3://bucket/prefix)")
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise StorageError(
                f"{what} {text!r}: {bucket!r} is not a valid S3 bucket name "
                "(3–63 characters: lower-case letters, digits, '.' and '-')"
            )
        if parsed.query or parsed.fragment:
            raise StorageError(f"{what} {text!r} must not carry a query or fragment")
        prefix = parsed.path.strip("/")
        return StorageURL("s3", f"{bucket}/{prefix}" if prefix else bucket)
    raise StorageError(
        f"{what} {text!r}: unsupported scheme {parsed.scheme!r}; use a local path or s3://bucket/prefix"
    )


def _endpoint(endpoint_url: str | None) -> str | None:
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def open_filesystem(url: str | StorageURL, endpoint_url: str | None = None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for a location; S3 credentials come from the environment only."""
    loc = url if isinstance(url, StorageURL) else parse_storage_url(url)
    if loc.protocol == "file":
        return fsspec.filesystem("file", auto_mkdir=True)
    options: dict[str, Any] = {}
    endpoint = _endpoint(endpoint_url)
    if endpoint:
        options["endpoint_url"] = endpoint
    return fsspec.filesystem("s3", skip_instance_cache=False, **options)


#: How long S3 calls keep retrying a transient failure (connection refused or reset, timeouts, 5xx,
#: throttling) with exponential backoff before giving up, seconds.
S3_RETRY_SECONDS = float(os.environ.get("LPQLC_S3_RETRY_SECONDS", "90"))


def transient(exc: BaseException) -> bool:
    """Whether an S3 failure is worth retrying (never a missing object or a refused permission)."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    name = type(exc).__name__
    text = str(exc)
    if any(k in name for k in ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeout", "ConnectTimeout",
                               "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "Timeout")):
        return True
    if any(code in text for code in ("500", "502", "503", "504", "SlowDown", "InternalError", "ServiceUnavailable",
                                     "Could not connect", "Connection refused", "Failed to connect",
                                     "Connection reset", "timed out", "Empty reply from server")):
        return True
    return isinstance(exc, ConnectionError | TimeoutError) or (isinstance(exc, OSError) and exc.errno is None)


def retrying(call: Callable[[], Any], what: str) -> Any:
    """Run an S3 call, retrying transient failures with exponential backoff (0.25 s doubling to 8 s)
    for up to :data:`S3_RETRY_SECONDS`; the last error propagates."""
    deadline = time.monotonic() + S3_RETRY_SECONDS
    delay = 0.25
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 — classified by transient(), re-raised otherwise
            cause = exc.__cause__ or exc.__context__ or exc
            if not (transient(exc) or transient(cause)) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: %s: %s; retrying in %.1f s", what, type(exc).__name__, str(exc)[:200], delay)
            time.sleep(delay)
            delay = min(8.0, delay * 2)


def _strip(url: str) -> str:
    return url.split("://", 1)[1] if "://" in url else url


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


def write_bytes(url: str, data: bytes, endpoint_url: str | None = None) -> None:
    """Write ``data`` to ``url`` so that readers see the old object or the whole new one, never a part."""
    loc = parse_storage_url(url, what="output URL")
    if loc.protocol == "file":
        _replace_atomically(Path(loc.root), lambda fh: fh.write(data))
        return
    _s3_commit(loc, endpoint_url, lambda fs, tmp: fs.pipe_file(tmp, data))


def _s3_commit(loc: StorageURL, endpoint_url: str | None, fill: Callable[[Any, str], None]) -> None:
    """Write an S3 object under a temporary sibling key with ``fill(fs, key)``, then move it into place."""
    fs = open_filesystem(loc, endpoint_url)
    dest = _strip(loc.url)
    head, _, name = dest.rpartition("/")
    tmp = f"{head}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        retrying(lambda: fill(fs, tmp), f"writing {loc.url}")
        retrying(lambda: fs.copy(tmp, dest), f"moving {loc.url} into place")
    except OSError as exc:
        raise StorageError(f"cannot write {loc.url}: {exc}") from exc
    finally:
        try:
            retrying(lambda: fs.rm_file(tmp), f"removing s3://{tmp}")
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove the temporary object s3://%s", tmp)


def put_file(local_path: str | os.PathLike[str], url: str, endpoint_url: str | None = None) -> None:
    """Copy a finished local file to ``url`` atomically (see :func:`write_bytes`)."""
    loc = parse_storage_url(url, what="output URL")
    if loc.protocol == "file":
        with open(local_path, "rb") as src:
            _replace_atomically(Path(loc.root), lambda fh: shutil.copyfileobj(src, fh, 1 << 22))
        return
    _s3_commit(loc, endpoint_url, lambda fs, tmp: fs.put_file(os.fspath(local_path), tmp))


def gdal_env(endpoint_url: str | None = None) -> dict[str, str]:
    """GDAL configuration options for reading ``s3://`` objects from the given (or env) endpoint.

    Empty when no custom endpoint is set (plain AWS). Keys stay in the environment: rasterio refuses
    them as options.
    """
    endpoint = _endpoint(endpoint_url)
    if not endpoint:
        return {}
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parsed.hostname:
        raise StorageError(f"S3 endpoint {endpoint!r} names no host")
    host = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    return {
        "AWS_S3_ENDPOINT": host,
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_HTTPS": "YES" if parsed.scheme == "https" else "NO",
    }


def read_bytes(url: str, endpoint_url: str | None = None) -> bytes:
    """The whole object at ``url`` (local path or ``s3://``)."""
    loc = parse_storage_url(url, what="input URL")
    try:
        if loc.protocol == "file":
            return Path(loc.root).read_bytes()
        fs = open_filesystem(loc, endpoint_url)
        return bytes(retrying(lambda: fs.cat_file(_strip(loc.url)), f"reading {loc.url}"))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {loc.url}: {exc}") from exc


def exists(url: str, endpoint_url: str | None = None) -> bool:
    """Whether an object (or local file) exists at ``url``."""
    loc = parse_storage_url(url, what="URL")
    if loc.protocol == "file":
        return Path(loc.root).exists()
    fs = open_filesystem(loc, endpoint_url)
    fs.invalidate_cache(_strip(loc.url))
    return bool(retrying(lambda: fs.exists(_strip(loc.url)), f"looking for {loc.url}"))


def remove(url: str, endpoint_url: str | None = None, *, recursive: bool = False) -> None:
    """Delete an object (or, with ``recursive``, everything under a prefix); missing is not an error."""
    loc = parse_storage_url(url, what="URL")
    fs = open_filesystem(loc, endpoint_url)
    path = loc.root if loc.protocol == "file" else _strip(loc.url)
    try:
        if fs.exists(path):
            fs.rm(path, recursive=recursive)
    except OSError as exc:
        raise StorageError(f"cannot delete {loc.url}: {exc}") from exc


def list_files(url: str, pattern: str, endpoint_url: str | None = None) -> list[str]:
    """URLs of the objects under ``url`` matching the glob ``pattern`` (e.g. ``*/*.json``), sorted."""
    loc = parse_storage_url(url, what="URL")
    fs = open_filesystem(loc, endpoint_url)
    base = loc.root if loc.protocol == "file" else _strip(loc.url)
    fs.invalidate_cache()  # other processes write here too: never answer from a stale listing
    found = retrying(lambda: fs.glob(f"{base.rstrip('/')}/{pattern}"), f"listing {loc.url}")
    prefix = "" if loc.protocol == "file" else f"{loc.protocol}://"
    return sorted(f"{prefix}{p}" if loc.protocol != "file" else p for p in found)


# ----------------------------------------------------------------------------------- conditional writes
#: What a conditional write reports when its precondition did not hold (the object exists, or changed).
_PRECONDITION_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _precondition_failed(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    code = str(getattr(cause, "response", {}).get("Error", {}).get("Code", "")) if cause is not None else ""
    return code in _PRECONDITION_CODES or "pre-condition" in str(exc) or "precondition" in str(exc).lower()


def read_versioned(url: str, endpoint_url: str | None = None) -> tuple[bytes, str] | None:
    """The object at ``url`` and its version tag (the S3 ETag; a content digest for a local file), or
    None when there is none. Pass the tag to :func:`replace_if_match` to swap it only if unchanged."""
    import hashlib

    loc = parse_storage_url(url, what="URL")
    if loc.protocol == "file":
        try:
            data = Path(loc.root).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()
    fs = open_filesystem(loc, endpoint_url)
    bucket, key, _ = fs.split_path(_strip(loc.url))
    try:
        resp = retrying(lambda: fs.call_s3("get_object", Bucket=bucket, Key=key), f"reading {loc.url}")
        body = _sync_read(fs, resp["Body"])
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {loc.url}: {exc}") from exc
    return bytes(body), str(resp["ETag"])


def _sync_read(fs: Any, body: Any) -> bytes:
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with body as stream:
            return bytes(await stream.read())

    return bytes(sync(fs.loop, read))


def create_exclusive(url: str, data: bytes, endpoint_url: str | None = None) -> bool:
    """Create the object at ``url`` only if there is none: True when this call created it, False when
    an object was already there. S3: one ``PUT`` with ``If-None-Match: *`` (atomic on AWS S3 and
    SeaweedFS; a server that ignores the header would make this unsafe — see docs/updates.md);
    local: ``O_CREAT | O_EXCL``."""
    loc = parse_storage_url(url, what="URL")
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
    return _conditional_put(loc, endpoint_url, data, "create", IfNoneMatch="*")


def replace_if_match(url: str, data: bytes, tag: str, endpoint_url: str | None = None) -> bool:
    """Overwrite ``url`` with ``data`` only if it still has version ``tag`` (from :func:`read_versioned`):
    True when replaced, False when it changed or vanished meanwhile. S3: ``PUT`` with ``If-Match``;
    local: compare and rename under an exclusive ``flock`` of a sibling ``.guard`` file."""
    loc = parse_storage_url(url, what="URL")
    if loc.protocol == "file":
        import fcntl

        path = Path(loc.root)
        with open(path.with_name(f".{path.name}.guard"), "a+b") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            now = read_versioned(url)
            if now is None or now[1] != tag:
                return False
            _replace_atomically(path, lambda fh: fh.write(data))
            return True
    return _conditional_put(loc, endpoint_url, data, "replace", IfMatch=tag)


def _conditional_put(loc: Any, endpoint_url: str | None, data: bytes, verb: str, **condition: str) -> bool:
    """S3 ``PUT`` of ``data`` under ``condition`` (``IfNoneMatch``/``IfMatch``): False when the server says
    the precondition failed (or, for a replace, the object vanished), True when written."""
    fs = open_filesystem(loc, endpoint_url)
    bucket, key, _ = fs.split_path(_strip(loc.url))
    try:
        retrying(lambda: fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition),
                 f"{verb.removesuffix('e')}ing {loc.url}")  # fmt: skip
    except OSError as exc:
        if _precondition_failed(exc) or (verb == "replace" and isinstance(exc, FileNotFoundError)):
            return False
        raise StorageError(f"cannot {verb} {loc.url}: {exc}") from exc
    finally:
        fs.invalidate_cache(_strip(loc.url))
    return True
