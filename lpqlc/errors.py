"""The package's exception tree and warnings.

Every error names what is at fault: the setting (with the file), the item and asset, the URL, or the
service with its log. Catch :class:`LpqlcError` to handle all of them.
"""

from __future__ import annotations

__all__ = [
    "LpqlcError",
    "ConfigError",
    "StorageError",
    "SourceError",
    "StackError",
    "SampleArchiveError",
    "LpqlcWarning",
]


class LpqlcError(Exception):
    """Base of every error raised on purpose by lpqlc."""


class ConfigError(LpqlcError, ValueError):
    """A pipeline configuration is invalid; the message names the file and each field at fault."""


class StorageError(LpqlcError, ValueError):
    """A storage URL is malformed, unsupported or unreachable; the message names the URL."""


class SourceError(LpqlcError):
    """A STAC source (API or static catalog) cannot be read; the message names the URL or item."""


class StackError(LpqlcError, RuntimeError):
    """A local data-plane service failed; the message names the service and its log file."""


class SampleArchiveError(LpqlcError):
    """The offline sample archive cannot be generated or imported."""


class LpqlcWarning(UserWarning):
    """Base of lpqlc's typed warnings."""
