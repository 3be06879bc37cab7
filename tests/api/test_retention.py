"""Retention on SQLite and PostgreSQL: finished tasks are purged once past their age."""

from __future__ import annotations

from datetime import timedelta

from services.api.retention import RetentionSettings, purge_once
from services.api.store import new_task_id
from shared.messaging.messages import TaskEvent, TaskState, utcnow
from tests.api.store.conftest import SVC, apply, make_store, spec


async def test_retention_purges_old_finished_tasks(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        ids = [new_task_id() for _ in range(4)]
        await store.add(SVC, [(i, spec()) for i in ids])
        old = utcnow() - timedelta(days=3)
        ancient = utcnow() - timedelta(days=100)
        await apply(
            store, TaskEvent(task_id=ids[0], attempt=1, seq=1, state=TaskState.COMPLETED, at=old)
        )
        await apply(store, TaskEvent(task_id=ids[1], attempt=1, seq=1, state=TaskState.COMPLETED))
        await apply(
            store, TaskEvent(task_id=ids[2], attempt=5, seq=1, state=TaskState.ARCHIVED, at=old)
        )
        await apply(
            store, TaskEvent(task_id=ids[3], attempt=5, seq=1, state=TaskState.ARCHIVED, at=ancient)
        )
        assert await purge_once(store, RetentionSettings()) == 2
        left = {t.id for t in await store.find()}
        assert left == {ids[1], ids[2]}
        later = utcnow() + timedelta(hours=49)
        assert await purge_once(store, RetentionSettings(), now=later) == 1
    finally:
        await store.close()


async def test_retention_purges_deleted_tasks_like_others(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        await apply(store, TaskEvent(task_id=task.id, attempt=1, seq=1, state=TaskState.COMPLETED))
        assert await store.mark_deleted(task.id) is not None
        assert await purge_once(store, RetentionSettings()) == 0  # kept until its time
        assert await store.get(task.id) is not None
        later = utcnow() + timedelta(hours=49)
        assert await purge_once(store, RetentionSettings(), now=later) == 1
        assert await store.get(task.id) is None
    finally:
        await store.close()
