"""Regression tests of what the fuzzing runs found (docs/testing.md lists each finding).

Each test replays the finding against the real part: the store on a fresh PostgreSQL
database, the API built through ``create_app`` on the real broker.
"""

from __future__ import annotations

import asyncio

import pytest

from services.ingest.store import JobStore


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_ingest_store_opened_by_several_processes_at_once(db_url: str) -> None:
    """``make up`` on a fresh PostgreSQL database: the API and the ingest worker open the
    ingest store at the same moment; racing CREATE TABLEs made the API die at start
    (duplicate key in pg_type)."""
    stores = await asyncio.gather(*(JobStore.open(db_url) for _ in range(6)))
    try:
        assert await stores[0].list_jobs() == []
    finally:
        await asyncio.gather(*(s.close() for s in stores))
