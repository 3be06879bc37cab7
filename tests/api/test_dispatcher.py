"""The dispatcher on SQLite and PostgreSQL: fair per-user release with the streamer's
priority first, one user's backlog does not delay another user's job (default cap, and
a total cap at the workers' slots), and a failed publish leaves the task held for the
next round."""

from __future__ import annotations

import asyncio

from services.api.dispatcher import Dispatcher, DispatchSettings
from services.api.store import TaskStore, new_task_id
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


A = Submitter(kind=PrincipalKind.USER, name="stgalice")
B = Submitter(kind=PrincipalKind.USER, name="stgbob")


async def _held(store: TaskStore, user: str) -> int:
    _in_flight, held = await store.release_view(10_000)
    return len(held.get(user, []))


async def test_one_users_backlog_does_not_delay_another(db_url: str) -> None:
    """A submits 20 jobs, then B one, with the default settings: B's job is released
    while most of A's backlog is still held in the store; the workers (here: finishing
    the oldest released job each round) then drain A's."""
    store = await make_store(db_url)
    released: list[TaskMessage] = []

    async def publish(msg: TaskMessage) -> None:
        released.append(msg)

    try:
        d = Dispatcher(store, publish, DispatchSettings())
        await store.add(A, [(new_task_id(), spec("stgalice", f"a{i}")) for i in range(20)])
        await d.run_once()  # the submit's wake-up
        [b_task] = await store.add(B, [(new_task_id(), spec("stgbob", "b"))])
        await d.run_once()
        a_held_when_b_released = await _held(store, "stgalice")
        finished = 0
        while finished < len(released):
            done = released[finished]
            ev = TaskEvent(task_id=done.task_id, attempt=1, seq=1, state=TaskState.COMPLETED)
            await apply(store, ev)
            finished += 1
            await d.run_once()
        order = [m.task_id for m in released]
        assert len(order) == 21 and len(set(order)) == 21
        assert DispatchSettings().max_in_flight_per_user == 2  # the default is small
        assert order.index(b_task.id) == 2  # third released: after A's first two
        assert a_held_when_b_released == 18
        assert await _held(store, "stgalice") == 0
    finally:
        await store.close()


async def test_total_cap_gives_the_free_slot_to_the_user_with_fewest(db_url: str) -> None:
    """With the pool's two slots both taken by A, B's job waits in the store (not behind
    A's in the broker queue) and gets the next free slot, ahead of A's older backlog."""
    store = await make_store(db_url)
    released: list[TaskMessage] = []

    async def publish(msg: TaskMessage) -> None:
        released.append(msg)

    try:
        d = Dispatcher(store, publish, DispatchSettings(max_in_flight_per_user=2, max_in_flight=2))
        await store.add(A, [(new_task_id(), spec("stgalice", f"a{i}")) for i in range(20)])
        assert await d.run_once() == 2
        [b_task] = await store.add(B, [(new_task_id(), spec("stgbob", "b"))])
        assert await d.run_once() == 0  # no slot free: held
        ev = TaskEvent(task_id=released[0].task_id, attempt=1, seq=1, state=TaskState.COMPLETED)
        await apply(store, ev)
        assert await d.run_once() == 1
        assert released[-1].task_id == b_task.id
        in_flight, _held_tasks = await store.release_view(2)
        assert in_flight == {"stgalice": 1, "stgbob": 1}
    finally:
        await store.close()


async def test_two_replicas_never_release_past_the_cap(pg_url: str) -> None:
    """Two API replicas on one PostgreSQL store release rounds at the same time: together
    they never put more than ``max_in_flight_per_user`` of one user's tasks in flight (each
    round reads the room and claims under one advisory lock).  Without the lock both read
    the same free room and release it twice."""
    stores = [await make_store(pg_url), await make_store(pg_url)]
    released: list[str] = []

    async def publish(msg: TaskMessage) -> None:
        released.append(msg.task_id)

    try:
        await stores[0].add(A, [(new_task_id(), spec(title=f"a{i}")) for i in range(40)])
        settings = DispatchSettings(max_in_flight_per_user=2)
        d1, d2 = (Dispatcher(s, publish, settings) for s in stores)
        for seq in range(1, 9):
            await asyncio.gather(d1.run_once(), d2.run_once(), d1.run_once(), d2.run_once())
            in_flight, _held = await stores[0].release_view(2)
            assert in_flight.get("stgalice", 0) <= 2, f"{in_flight} after {len(released)}"
            # the workers finish one released task, then the replicas race again
            done = TaskEvent(task_id=released[-1], attempt=1, seq=seq, state=TaskState.COMPLETED)
            await apply(stores[1], done)
        assert len(released) == len(set(released)) == 2 + 7  # 2, then 1 more per round
    finally:
        for s in stores:
            await s.close()
