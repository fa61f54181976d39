"""Offline STAC validation: pystac's bundled core schemas plus the extension schemas shipped here
(and PROJ's PROJJSON schema from pyproj's data folder, which the projection extension refers to).

``lpqlc/data/stac-schemas/`` holds copies of the official stac-extensions schemas (each file's ``$id``
says where it is published). They are put into the validator's cache under their ``$id``, so
validating never touches the network.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import pystac
from pystac.validation import validate_dict
from pystac.validation.stac_validator import JsonSchemaSTACValidator

__all__ = ["offline_validator", "validate_stac", "extension_schema_ids"]


def _schemas() -> dict[str, dict[str, Any]]:
    root = resources.files("lpqlc") / "data" / "stac-schemas"
    out: dict[str, dict[str, Any]] = {}
    for ext in root.iterdir():
        if not ext.is_dir():
            continue
        for version in ext.iterdir():
            f = version / "schema.json"
            if f.is_file():
                schema = json.loads(f.read_text(encoding="utf-8"))
                out[schema["$id"].rstrip("#")] = schema
    return out


def _projjson_schema() -> dict[str, Any] | None:
    """PROJ's PROJJSON schema (``proj:projjson`` refers to it), as shipped in pyproj's data folder."""
    from pathlib import Path

    from pyproj.datadir import get_data_dir

    f = Path(get_data_dir()) / "projjson.schema.json"
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def extension_schema_ids() -> list[str]:
    """The extension schema URLs that validate offline."""
    return sorted(_schemas())


@lru_cache(maxsize=1)
def offline_validator() -> JsonSchemaSTACValidator:
    """A pystac validator whose cache already holds every shipped extension schema."""
    validator = JsonSchemaSTACValidator()
    schemas = _schemas()
    projjson = _projjson_schema()
    if projjson is not None:
        schemas[projjson["$id"]] = projjson
    for uri, schema in schemas.items():
        validator.schema_cache[uri] = schema
        validator.schema_cache[uri + "#"] = schema
    return validator


def validate_stac(doc: dict[str, Any]) -> list[str]:
    """Validate a STAC item/collection/catalog dict offline; returns the schema URIs it was checked against.

    Raises :class:`pystac.errors.STACValidationError` naming the object and the failing schema. An
    extension whose schema is not shipped raises too (it would need the network).
    """
    missing = [e for e in doc.get("stac_extensions", []) if e.rstrip("#") not in _schemas()]
    if missing:
        raise pystac.errors.STACValidationError(
            f"{doc.get('type')} {doc.get('id')!r} declares extensions with no offline schema: {missing}"
        )
    return list(validate_dict(doc, validator=offline_validator()))
