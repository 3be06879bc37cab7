"""The dispatcher on SQLite and PostgreSQL: fair per-user release with the streamer's
priority first, and a failed publish leaves the task held for the next round."""

from __future__ import annotations

from services.api.dispatcher import Dispatcher, DispatchSettings
from services.api.store import new_task_id
from shared.messaging.messages import PrincipalKind, Submitter, TaskEvent, TaskMessage, TaskState
from tests.api.store.conftest import SVC, apply, make_store, spec


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
