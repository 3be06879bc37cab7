"""Task store on SQLite and PostgreSQL: idempotent events, restart runs, fair release,
retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.api.dispatcher import Dispatcher, DispatchSettings
from services.api.retention import RetentionSettings, purge_once
from services.api.store import TaskStore, new_task_id
from shared.messaging.messages import (
    PrincipalKind,
    Progress,
    Submitter,
    TaskEvent,
    TaskMessage,
    TaskSpec,
    TaskState,
    utcnow,
)

SVC = Submitter(kind=PrincipalKind.SERVICE, name="streamer")


def spec(user: str = "stgalice", title: str = "t") -> TaskSpec:
    return TaskSpec(title=title, stagerUser=user, drUser="u", srcURL="/p/a", dstURL="irods:/z/a")


async def make_store(url: str) -> TaskStore:
    store = TaskStore(url)
    await store.init()
    return store


async def apply(store: TaskStore, ev: TaskEvent) -> bool:
    """Apply one event; True when it was newer than its row."""
    [applied] = await store.apply_events([ev])
    return applied is not None


async def test_apply_event_keeps_the_newest(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        ev: dict[str, Any] = dict(task_id=task.id, attempt=1)
        assert await apply(
            store, TaskEvent(**ev, seq=10, state=TaskState.ACTIVE, progress=Progress(files_total=3))
        )
        assert not await apply(store, TaskEvent(**ev, seq=10, state=TaskState.RETRY))
        assert not await apply(store, TaskEvent(**ev, seq=9, state=TaskState.PENDING))
        nxt = utcnow() + timedelta(seconds=30)
        assert await apply(
            store, TaskEvent(**ev, seq=11, state=TaskState.RETRY, error="boom", next_at=nxt)
        )
        got = await store.get(task.id)
        assert got is not None and got.state == TaskState.RETRY and got.error == "boom"
        assert got.progress is not None and got.progress.files_total == 3
        assert got.next_process_at is not None and got.last_failed_at is not None
        assert await apply(
            store, TaskEvent(task_id=task.id, attempt=2, seq=0, state=TaskState.COMPLETED)
        )
        got = await store.get(task.id)
        assert got is not None and got.state == TaskState.COMPLETED and got.completed_at
        assert got.error == "" and got.next_process_at is None
        assert not await apply(
            store, TaskEvent(task_id="no-such-task", attempt=1, seq=1, state=TaskState.ACTIVE)
        )
    finally:
        await store.close()


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


async def test_dispatcher_is_fair_and_streamer_first(db_url: str) -> None:
    store = await make_store(db_url)
    released: list[TaskMessage] = []

    async def publish(msg: TaskMessage) -> None:
        released.append(msg)

    try:
        researcher = Submitter(kind=PrincipalKind.USER, name="stgalice")
        await store.add(researcher, [(new_task_id(), spec(title=f"a{i}")) for i in range(50)])
        await store.add(
            Submitter(kind=PrincipalKind.USER, name="stgbob"), [(new_task_id(), spec("stgbob"))]
        )
        await store.add(SVC, [(new_task_id(), spec("stgcarol", "scan"))], priority=5)
        d = Dispatcher(store, publish, DispatchSettings(max_in_flight_per_user=4))
        assert await d.run_once() == 6
        assert released[0].task.title == "scan" and released[0].priority == 5
        users = [m.task.stagerUser for m in released]
        assert users.count("stgalice") == 4 and users.count("stgbob") == 1
        assert await d.run_once() == 0
        in_flight, _held = await store.release_view(4)
        assert in_flight["stgalice"] == 4
        await apply(
            store,
            TaskEvent(task_id=released[1].task_id, attempt=1, seq=1, state=TaskState.COMPLETED),
        )
        assert await d.run_once() == 1
    finally:
        await store.close()


async def test_failed_release_is_retried(db_url: str) -> None:
    store = await make_store(db_url)
    calls: list[str] = []

    async def broken(msg: TaskMessage) -> None:
        calls.append(msg.task_id)
        raise ConnectionError("broker down")

    try:
        await store.add(SVC, [(new_task_id(), spec())])
        d = Dispatcher(store, broken, DispatchSettings())
        assert await d.run_once() == 0
        _in_flight, held = await store.release_view(10)
        assert len(held["stgalice"]) == 1  # un-claimed, released next time
        assert await d.run_once() == 0 and len(calls) == 2
    finally:
        await store.close()


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
