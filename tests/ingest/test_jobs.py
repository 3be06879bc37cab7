"""The job store: one claim per pass, atomic counters, skipped ticks, stop (real SQLite)."""

from __future__ import annotations

import asyncio

import pytest

from shared.ingest.errors import JobExists, JobNotFound
from shared.ingest.jobs import Job, JobState, JobStore, next_tick


@pytest.fixture
async def store(tmp_path):
    s = await JobStore.open(f"sqlite+aiosqlite:///{tmp_path}/jobs.sqlite")
    yield s
    await s.close()


def job(name="j1", interval=None):
    return Job(name=name, root="/data", target="/tempZone/home/rods/x", interval=interval)


async def test_only_one_claim_wins(store, tmp_path):
    await store.create(job(), now=100)
    others = [await JobStore.open(f"sqlite+aiosqlite:///{tmp_path}/jobs.sqlite") for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.claim("j1", now=101) for s in [store, *others]))
    finally:
        for s in others:
            await s.close()
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1 and claimed[0].state is JobState.RUNNING and claimed[0].pending == 1


async def test_pending_reaches_zero_once(store):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    # the root task adds four children and releases itself: 1 + 4 - 1
    assert await store.apply("j1", j.generation, pending_delta=3, dirs=1) == 4
    results = await asyncio.gather(
        *(store.apply("j1", j.generation, -1, files_seen=1) for _ in range(4))
    )
    assert sorted(results) == [0, 1, 2, 3]  # each decrement sees its own value
    done = await store.finish_pass("j1", j.generation)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.counters["files_seen"] == 4 and done.counters["dirs"] == 1


async def test_stale_generation_is_ignored(store):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    stopped = await store.stop("j1")
    assert stopped.state is JobState.STOPPED
    assert await store.apply("j1", j.generation, -1) is None
    assert not await store.current("j1", j.generation)


async def test_periodic_pass_waits_for_the_next_tick(store):
    await store.create(job(interval=10), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    done = await store.finish_pass("j1", j.generation, now=135)  # took 3.5 intervals
    assert done is not None and done.state is JobState.WAITING and done.next_run_at == 140
    assert await store.claim("j1", now=139) is None
    assert await store.claim("j1", now=140) is not None


def test_next_tick():
    assert next_tick(100, 10, 100) == 110
    assert next_tick(100, 10, 109.9) == 110
    assert next_tick(100, 10, 110) == 120


async def test_names_are_unique_while_active(store):
    await store.create(job())
    with pytest.raises(JobExists):
        await store.create(job())
    await store.stop("j1")
    again = await store.create(job())
    assert again.state is JobState.WAITING and again.generation > 0


async def test_unknown_job(store):
    with pytest.raises(JobNotFound):
        await store.get("nope")
    with pytest.raises(JobNotFound):
        await store.stop("nope")
