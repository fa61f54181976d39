"""Storage locations: local paths and ``s3://bucket/prefix`` URLs, validated and normalised."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from lpqlc.errors import StorageError

__all__ = ["StorageURL", "parse_storage_url"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage location: ``protocol`` is ``file`` or ``s3``; ``root`` has no trailing slash."""

    protocol: str
    root: str

    @property
    def url(self) -> str:
        return self.root if self.protocol == "file" else f"{self.protocol}://{self.root}"

    @property
    def path(self) -> str:
        """The location as its fsspec filesystem names it (``bucket/key`` for S3, the path for a file)."""
        return self.root

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
