"""Base class of the configuration models: frozen, strict about unknown keys, dask-tokenisable."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator

from lpqlc.quarter import Quarter

__all__ = ["Frozen", "QuarterField"]


class Frozen(BaseModel):
    """Immutable settings: unknown keys are errors (a typo is named, never ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __dask_tokenize__(self) -> Any:
        # Deterministic across processes, so dask keys repeat and reruns are idempotent.
        return (type(self).__qualname__, self.model_dump_json())


def _to_quarter(value: Any) -> Quarter:
    if isinstance(value, Quarter):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a quarter like '2021Q3', got {value!r}")
    return Quarter.parse(value)


#: A quarter given in YAML as ``2021Q3``.
QuarterField = Annotated[Quarter, PlainValidator(_to_quarter), PlainSerializer(str, return_type=str)]
