"""Units of work (quarter × tile) that are skipped when their outputs already exist for the same inputs.

A unit's task writes its outputs (each atomically); when it has finished, the client writes a small
marker beside them (``_unit.json``: the key of the unit's inputs and its small result). A rerun, say
after the whole run was killed, finds the marker with the same key and reuses the result instead of
computing the unit again; a unit whose inputs changed (another key) or that never finished (no marker)
runs again. Outputs are therefore never trusted without their marker, and a marker never precedes
its outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lpqlc.cluster import compute_bounded
from lpqlc.storage import Store, exists, list_files, read_bytes, write_bytes

__all__ = ["Unit", "unit_key", "run_units", "marker_key", "existing_markers"]

log = logging.getLogger(__name__)


def unit_key(*parts: Any) -> str:
    """A digest of everything a unit's outputs depend on (JSON-serialisable parts)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def marker_key(folder: str, store: Store | None = None) -> str:
    """The key recorded by the finished unit whose outputs are in ``folder`` ("" if none): a downstream
    unit's key includes its upstream units' keys, so it reruns exactly when they changed."""
    url = f"{folder}/_unit.json"
    if not exists(url, store):
        return ""
    return str(json.loads(read_bytes(url, store)).get("key", ""))


@dataclass(frozen=True)
class Unit:
    """A Dask task, the folder its outputs go to, and the key of its inputs."""

    task: Any
    folder: str
    key: str

    @property
    def marker(self) -> str:
        return f"{self.folder}/_unit.json"


def existing_markers(units: Sequence[Unit], store: Store | None = None) -> set[str]:
    """The markers of ``units`` that exist, found with one listing per parent folder of the units'
    folders (``…/<quarter>/*/_unit.json``) instead of one request per unit."""
    by_parent: dict[str, list[Unit]] = {}
    for u in units:
        by_parent.setdefault(posixpath.dirname(u.folder.rstrip("/")), []).append(u)
    found: set[str] = set()
    for parent, group in by_parent.items():
        if len(group) == 1:  # a listing costs as much as one look-up
            found.update(u.marker for u in group if exists(u.marker, store))
            continue
        listed = set(list_files(parent, "*/_unit.json", store))
        found.update(u.marker for u in group if u.marker in listed)
    return found


def run_units(units: Sequence[Unit], client: Any, stage: str, *, store: Store | None = None,
              progress: Callable[[str, int, int], None] | None = None,
              encode: Callable[[Any], Any] = lambda r: r, decode: Callable[[Any], Any] = lambda r: r) -> list[Any]:  # fmt: skip
    """Results of ``units`` in order: reused from their markers where the key matches, computed
    (:func:`lpqlc.cluster.compute_bounded`) otherwise. ``encode``/``decode`` map a result to JSON and back."""
    results: list[Any] = [None] * len(units)
    todo = []
    present = existing_markers(units, store)
    for i, u in enumerate(units):
        if u.marker in present:
            doc = json.loads(read_bytes(u.marker, store))
            if doc.get("key") == u.key:
                results[i] = decode(doc["result"])
                continue
        todo.append(i)
    if len(todo) < len(units):
        log.info("%s: %d of %d units done before, reused", stage, len(units) - len(todo), len(units))

    def done(j: int, result: Any) -> None:
        u = units[todo[j]]
        results[todo[j]] = result
        write_bytes(u.marker, json.dumps({"key": u.key, "result": encode(result)}).encode("utf-8"), store)

    compute_bounded([units[i].task for i in todo], client, stage, progress, on_result=done)
    return results
