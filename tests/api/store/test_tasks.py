"""Task rows on SQLite and PostgreSQL: restart starts a new run; concurrent adds are
group-committed together, and a failing insert fails only its own call."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError

from services.api.store import Task, new_task_id
from shared.messaging.messages import TaskEvent, TaskState
from tests.api.store.conftest import SVC, apply, make_store, spec


async def test_restart_starts_a_new_run(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        assert await store.restart(task.id) is None  # pending: not restartable
        await apply(store, TaskEvent(task_id=task.id, attempt=3, seq=1, state=TaskState.ARCHIVED))
        again = await store.restart(task.id)
        assert again is not None and again.run == 2 and again.state == TaskState.PENDING
        assert again.attempt == 0 and not again.dispatched
        assert not await apply(
            store, TaskEvent(task_id=task.id, run=1, attempt=4, seq=1, state=TaskState.COMPLETED)
        )
        assert again.message().run == 2
    finally:
        await store.close()


async def test_concurrent_adds_commit_together_and_fail_alone(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        taken = new_task_id()
        await store.add(SVC, [(taken, spec())])
        calls = [store.add(SVC, [(new_task_id(), spec())]) for _ in range(20)]
        calls.insert(7, store.add(SVC, [(taken, spec())]))  # duplicate id: only this fails
        results = await asyncio.gather(*calls, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], IntegrityError)
        assert isinstance(results[7], IntegrityError)
        stored = {t.id for t in await store.find()}
        added = {ts[0].id for ts in results if isinstance(ts, list)}
        assert len(added) == 20 and added | {taken} == stored
        for t in await store.find():
            assert isinstance(t, Task) and t.state == TaskState.PENDING and not t.dispatched
    finally:
        await store.close()


async def test_cancel_and_delete_keep_the_row(db_url: str) -> None:
    """A cancel applies only to an unfinished task; a delete only marks a finished one
    (hidden from find, kept for get, not restartable), twice is once."""
    store = await make_store(db_url)
    try:
        running, done = (new_task_id() for _ in range(2))
        await store.add(SVC, [(running, spec()), (done, spec())])
        assert await store.mark_deleted(running) is None  # unfinished: cancel it first
        await apply(store, TaskEvent(task_id=done, attempt=1, seq=1, state=TaskState.COMPLETED))
        assert await store.set_cancelled(done) is None  # completed stays completed
        cancelled = await store.set_cancelled(running)
        assert cancelled is not None and cancelled.state == TaskState.CANCELLED
        assert [t.id for t in await store.find(state=TaskState.CANCELLED)] == [running]
        first = await store.mark_deleted(done)
        assert first is not None and first.deleted_at is not None
        assert first.state == TaskState.COMPLETED
        again = await store.mark_deleted(done)
        assert again is not None and again.deleted_at == first.deleted_at
        assert {t.id for t in await store.find()} == {running}
        assert {t.id for t in await store.find(deleted=None)} == {running, done}
        assert [t.id for t in await store.find(deleted=True)] == [done]
        assert await store.restart(done) is None
        got = await store.get(done)
        assert got is not None and got.deleted_at == first.deleted_at
    finally:
        await store.close()
