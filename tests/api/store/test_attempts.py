"""The per-attempt history on SQLite and PostgreSQL: each attempt's worker, start, end,
outcome and error from the events applied (stale ones write nothing), runs kept apart,
purged with the task, and the table added to a store created before it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from services.api.store import new_task_id
from services.api.store.schema import ATTEMPTS
from shared.messaging.messages import TaskState
from tests.api.store.conftest import SVC, T0, ev, make_store, spec


async def test_a_failed_then_successful_attempt_each_keep_their_story(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        t = task.id
        await store.apply_events(
            [
                ev(t, 1, TaskState.ACTIVE, worker="w1:10"),
                ev(t, 2, TaskState.ACTIVE, worker="w1:10"),  # progress: the start stays
                ev(t, 3, TaskState.RETRY, worker="w1:10", error="no answer", error_kind="timeout"),
            ]
        )
        # stale and duplicate events (lower seq, same seq) change nothing
        await store.apply_events(
            [ev(t, 3, TaskState.ARCHIVED, error="x"), ev(t, 0, TaskState.ACTIVE, worker="evil")]
        )
        await store.apply_events([ev(t, 10, TaskState.ACTIVE, attempt=2, worker="w2:20")])
        running = await store.attempts(t)
        assert [(a.attempt, a.outcome, a.ended_at) for a in running] == [
            (1, "retry", T0 + timedelta(seconds=3)),
            (2, None, None),
        ]
        await store.apply_events([ev(t, 11, TaskState.COMPLETED, attempt=2, worker="w2:20")])
        first, second = await store.attempts(t)
        assert (first.run, first.attempt, first.worker) == (1, 1, "w1:10")
        assert first.started_at == T0 + timedelta(seconds=1)
        assert (first.outcome, first.error_kind, first.error) == ("retry", "timeout", "no answer")
        assert (second.attempt, second.worker, second.outcome) == (2, "w2:20", "completed")
        assert second.started_at == T0 + timedelta(seconds=10)
        assert second.ended_at == T0 + timedelta(seconds=11)
        assert second.error is None and second.error_kind is None

        # a restart is a new run: its attempts sit after the first run's
        assert await store.restart(t) is not None
        await store.apply_events([ev(t, 1, TaskState.ACTIVE, run=2, worker="w3:30")])
        assert [(a.run, a.attempt) for a in await store.attempts(t)] == [(1, 1), (1, 2), (2, 1)]
        assert await store.attempts("nope") == []
    finally:
        await store.close()


async def test_attempts_are_purged_with_their_task(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [gone, kept] = await store.add(SVC, [(new_task_id(), spec()), (new_task_id(), spec())])
        for t in (gone.id, kept.id):
            await store.apply_events([ev(t, 1, TaskState.ACTIVE, worker="w:1")])
        await store.apply_events([ev(gone.id, 2, TaskState.COMPLETED, at=T0)])
        n = await store.purge(
            completed_before=T0 + timedelta(seconds=1), archived_before=T0 - timedelta(days=1)
        )
        assert n == 1
        assert await store.attempts(gone.id) == []
        assert len(await store.attempts(kept.id)) == 1
    finally:
        await store.close()


async def test_a_store_older_than_the_table_gets_it(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {ATTEMPTS.name}"))
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        await store.init()  # what an upgraded API does at start

        def tables(sync_conn: object) -> list[str]:
            return list(sa_inspect(sync_conn).get_table_names())

        async with store.engine.connect() as conn:
            assert ATTEMPTS.name in await conn.run_sync(tables)
        await store.apply_events([ev(task.id, 1, TaskState.ACTIVE, worker="w:1")])
        assert [a.worker for a in await store.attempts(task.id)] == ["w:1"]
    finally:
        await store.close()
