"""Session fixtures: a small sample archive on disk, and the real local data plane (SeaweedFS,
PostgreSQL + pgstac, stac-fastapi-pgstac) started on free ports of 127.0.0.1 and torn down after."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lpqlc.quarter import Quarter
from lpqlc.sample.archive import SampleArchive, SampleSpec, generate
from lpqlc.stack import LocalStack, StackState

#: Small but telling: Landsat 7 (SLC-off), 8 and 9, Sentinel-2 A/B across the 2022-01-25 baseline change.
SMALL = SampleSpec(seed=7, size=192, start=Quarter(2021, 4), end=Quarter(2022, 1))


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> SampleArchive:
    return generate(str(tmp_path_factory.mktemp("archive")), SMALL, import_xrspatial=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackState]:
    # PostgreSQL runs as the postgres user: its folder must be world-traversable (not pytest's 0700 tmp).
    folder = Path(tempfile.mkdtemp(prefix="lpqlc-stack-"))
    os.chmod(folder, 0o755)
    local = LocalStack(folder)
    state = local.up(bucket="lpqlc-test")
    mp = pytest.MonkeyPatch()
    for k, v in state.env().items():
        mp.setenv(k, v)
    try:
        yield state
    finally:
        mp.undo()
        local.down(purge=True)


@pytest.fixture(scope="session")
def s3_archive(stack: StackState) -> SampleArchive:
    """The SMALL archive written to the SeaweedFS bucket and upserted into the STAC API."""
    return generate(
        f"s3://{stack.bucket}/sample",
        SMALL,
        endpoint_url=stack.s3_endpoint,
        stac_api=stack.stac_api,
        import_xrspatial=True,
    )
