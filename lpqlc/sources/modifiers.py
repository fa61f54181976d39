"""Asset href modifiers (e.g. Planetary Computer SAS signing), pluggable and used only when configured.

``sources.href_modifier`` names one: ``planetary-computer`` (needs the ``planetary-computer`` package),
or any ``module:function`` that takes a ``pystac.Item`` and changes its asset hrefs in place (or returns
the changed item), the contract of pystac-client's ``modifier``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from lpqlc.errors import ConfigError

__all__ = ["resolve_href_modifier", "HrefModifier"]

HrefModifier = Callable[[Any], Any]


def _planetary_computer() -> HrefModifier:
    try:
        import planetary_computer  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "sources.href_modifier 'planetary-computer' needs the planetary-computer package: "
            "pip install planetary-computer"
        ) from None
    return planetary_computer.sign_inplace  # type: ignore[no-any-return]


def resolve_href_modifier(name: str | None) -> HrefModifier | None:
    """The callable named by ``sources.href_modifier``; ``None`` when none is configured."""
    if name is None:
        return None
    if name == "planetary-computer":
        return _planetary_computer()
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ConfigError(f"sources.href_modifier {name!r} is neither 'planetary-computer' nor 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"sources.href_modifier {name!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"sources.href_modifier {name!r} is not callable")
    return fn  # type: ignore[no-any-return]
