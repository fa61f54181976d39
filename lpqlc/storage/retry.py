"""Retrying transient S3 failures (connection refused or reset, timeouts, 5xx, throttling)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RetryPolicy", "S3_RETRY_SECONDS", "transient", "retrying"]

log = logging.getLogger("lpqlc.storage")

#: How long S3 calls keep retrying a transient failure with exponential backoff before giving up,
#: seconds (the default of :class:`RetryPolicy`; ``LPQLC_S3_RETRY_SECONDS`` overrides it).
S3_RETRY_SECONDS = float(os.environ.get("LPQLC_S3_RETRY_SECONDS", "90"))


_TRANSIENT_ERRORS = ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeout", "ConnectTimeout",
                     "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "Timeout")
_TRANSIENT_TEXTS = ("500", "502", "503", "504", "SlowDown", "InternalError", "ServiceUnavailable",
                    "Could not connect", "Connection refused", "Failed to connect", "Connection reset",
                    "timed out", "Empty reply from server")


def transient(exc: BaseException) -> bool:
    """Whether an S3 failure is worth retrying (never a missing object or a refused permission)."""
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    name = type(exc).__name__
    text = str(exc)
    if any(k in name for k in _TRANSIENT_ERRORS):
        return True
    if any(code in text for code in _TRANSIENT_TEXTS):
        return True
    return isinstance(exc, ConnectionError | TimeoutError) or (isinstance(exc, OSError) and exc.errno is None)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures: ``first_delay`` seconds doubling up to ``max_delay``,
    for at most ``seconds`` in all; then the last error propagates."""

    seconds: float = S3_RETRY_SECONDS
    first_delay: float = 0.25
    max_delay: float = 8.0

    def run(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``, retried while it fails transiently (:func:`transient`, of the error or its cause)."""
        deadline = time.monotonic() + self.seconds
        delay = self.first_delay
        while True:
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 — classified by transient(), re-raised otherwise
                cause = exc.__cause__ or exc.__context__ or exc
                if not (transient(exc) or transient(cause)) or time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: %s: %s; retrying in %.1f s", what, type(exc).__name__, str(exc)[:200], delay)
                time.sleep(delay)
                delay = min(self.max_delay, delay * 2)


def retrying(call: Callable[[], Any], what: str) -> Any:
    """Run an S3 call under the default :class:`RetryPolicy`."""
    return RetryPolicy().run(call, what)
