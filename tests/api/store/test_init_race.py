"""TaskStore.init by several API processes at once on one fresh PostgreSQL database."""

from __future__ import annotations

import asyncio

import pytest

from services.api.store import TaskStore


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_concurrent_inits_on_a_fresh_database_all_succeed(db_url: str) -> None:
    """Two (here six) API processes starting together: racing CREATE TABLEs made one die
    with a duplicate key in pg_type; with the schema lock each init succeeds."""
    stores = [TaskStore(db_url) for _ in range(6)]  # one engine (connection pool) each
    try:
        results = await asyncio.gather(*(s.init() for s in stores), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert await stores[0].find() == []
        await stores[1].init()  # a later start on the made table is a no-op
    finally:
        await asyncio.gather(*(s.close() for s in stores))
