"""The job store: one claim per pass, atomic counters, tasks that count once, skipped ticks,
stop (real SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from services.ingest.errors import JobExists, JobNotFound
from services.ingest.store import Job, JobState, JobStore, done_table, next_tick


@pytest.fixture
async def store(db_url):
    s = await JobStore.open(db_url)
    yield s
    await s.close()


async def done_rows(store: JobStore) -> int:
    async with store.engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(done_table)
        return int((await conn.execute(count)).scalar_one())


def job(name="j1", interval=None):
    return Job(name=name, root="/data", target="/tempZone/home/rods/x", interval=interval)


async def test_only_one_claim_wins(store, db_url):
    await store.create(job(), now=100)
    others = [await JobStore.open(db_url) for _ in range(4)]
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
    root = await store.complete("j1", j.generation, "root", children=4, dirs=1)
    assert root is not None and root.pending == 4
    results = await asyncio.gather(
        *(store.complete("j1", j.generation, f"f{i}", files_seen=1) for i in range(4))
    )
    # each decrement sees its own value
    assert sorted(r.pending for r in results if r is not None) == [0, 1, 2, 3]
    done = await store.finish_pass("j1", j.generation)
    assert done is not None and done.state is JobState.COMPLETED
    assert done.counters["files_seen"] == 4 and done.counters["dirs"] == 1


async def test_a_task_counts_once(store):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    g = j.generation
    first = await store.complete("j1", g, "root", children=2, dirs=1, tasks_done=1)
    assert first is not None and first.applied and first.pending == 2 and not first.published
    # the same task again (a redelivery): nothing applies, the first row is reported
    again = await store.complete("j1", g, "root", children=2, dirs=1, tasks_done=1)
    assert again is not None and not again.applied and again.pending == 2
    assert again.children == 2 and not again.published
    await store.published("j1", g, "root")
    seen = await store.task_done("j1", g, "root")
    assert seen is not None and seen.published and seen.pending == 2
    assert await store.task_done("j1", g, "a") is None
    assert (await store.complete("j1", g, "a", files_seen=3)).pending == 1
    assert not (await store.complete("j1", g, "a", files_seen=3)).applied
    assert (await store.complete("j1", g, "b", files_seen=2)).pending == 0
    current = await store.get("j1")
    assert current.counters["files_seen"] == 5 and current.counters["dirs"] == 1
    assert await done_rows(store) == 3
    assert await store.finish_pass("j1", g) is not None
    assert await done_rows(store) == 0  # the table holds running passes only


async def test_concurrent_deliveries_apply_once(store, db_url):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    assert (await store.complete("j1", j.generation, "root", children=1)).pending == 1
    others = [await JobStore.open(db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.complete("j1", j.generation, "child", files_seen=7) for s in [store, *others])
        )
    finally:
        for s in others:
            await s.close()
    assert sorted(r.applied for r in results if r is not None) == [False, False, False, True]
    assert (await store.get("j1")).counters["files_seen"] == 7


async def test_lost_children_are_done(store):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    g = j.generation
    await store.complete("j1", g, "root", children=3)
    assert await store.lost("j1", g, ["x", "y"]) == 1
    assert await store.lost("j1", g, ["x", "y"]) == 1  # reported twice: counted once
    late = await store.complete("j1", g, "x", files_seen=1)  # it was delivered after all
    assert late is not None and not late.applied
    assert (await store.get("j1")).counters["tasks_failed"] == 2


async def test_stale_generation_is_ignored(store):
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100)
    assert j is not None
    stopped = await store.stop("j1")
    assert stopped.state is JobState.STOPPED
    assert await store.complete("j1", j.generation, "late", files_seen=1) is None
    assert await done_rows(store) == 0
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


async def test_a_claim_not_started_within_its_lease_is_taken_over_once(store, db_url):
    """A worker that dies between claiming a pass and publishing its root task leaves the
    pass stalled only until its lease ends; then exactly one worker takes it over (same
    generation), and a started pass is never taken over."""
    await store.create(job(), now=100)
    j = await store.claim("j1", now=100, lease=10)
    assert j is not None and j.next_run_at == 110
    assert await store.stalled(now=109) == []
    assert await store.renew_claim("j1", j.generation, now=105, lease=10)
    assert await store.stalled(now=114) == []
    assert await store.stalled(now=116) == ["j1"]
    others = [await JobStore.open(db_url) for _ in range(3)]
    try:
        taken = await asyncio.gather(
            *(s.reclaim("j1", now=116, lease=10) for s in [store, *others])
        )
    finally:
        for s in others:
            await s.close()
    winners = [t for t in taken if t is not None]
    assert len(winners) == 1 and winners[0].generation == j.generation
    assert winners[0].pending == 1 and winners[0].passes == 1
    # pre_job marked once per pass; a started pass has no lease and is never stalled
    assert not await store.marked("j1", j.generation, "pre_job")
    await store.mark("j1", j.generation, "pre_job")
    await store.mark("j1", j.generation, "pre_job")
    assert await store.marked("j1", j.generation, "pre_job")
    await store.started("j1", j.generation)
    assert (await store.get("j1")).next_run_at is None
    assert await store.stalled(now=10_000) == []
    assert not await store.renew_claim("j1", j.generation, now=200)
    done = await store.complete("j1", j.generation, "root")
    assert done is not None and done.pending == 0
    await store.finish_pass("j1", j.generation)
    assert await done_rows(store) == 0
    # a pass that has a done task has started, whatever its lease says (rows of old code)
    await store.create(job("j2"), now=100)
    j2 = await store.claim("j2", now=100, lease=10)
    assert j2 is not None
    await store.complete("j2", j2.generation, "j2.root", children=1)
    assert await store.stalled(now=200) == []
    assert await store.reclaim("j2", now=200) is None
