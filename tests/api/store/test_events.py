"""Event application on SQLite and PostgreSQL: the newest event wins, batches fold stale,
duplicate, cancelled and other-run events exactly as one-by-one application would, and an
applied event carries its task's direction (column or spec)."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import text, tuple_, update

from services.api.store import TaskStore, new_task_id
from services.api.store.schema import TASKS
from shared.messaging.messages import Progress, TaskEvent, TaskState, utcnow
from tests.api.store.conftest import SVC, T0, apply, ev, make_store, spec


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


async def test_a_final_state_takes_no_more_events(db_url: str) -> None:
    """Completed and archived rows ignore newer events of their run, alone or in the
    batch that finished them (a replayed event or task cannot reopen them)."""
    store = await make_store(db_url)
    try:
        done, failed, batch = (new_task_id() for _ in range(3))
        await store.add(SVC, [(i, spec()) for i in (done, failed, batch)])
        assert await apply(store, ev(done, 1, TaskState.COMPLETED))
        assert await apply(store, ev(failed, 1, TaskState.ARCHIVED, error="gone"))
        for task_id in (done, failed):
            for later in (TaskState.ACTIVE, TaskState.RETRY, TaskState.COMPLETED):
                assert not await apply(store, ev(task_id, 50, later, attempt=9))
        results = await store.apply_events(
            [ev(batch, 1, TaskState.COMPLETED), ev(batch, 2, TaskState.ACTIVE)]
        )
        assert [r is not None for r in results] == [True, False]
        states = [(await store.get(i)) for i in (done, failed, batch)]
        assert [t.state if t else None for t in states] == [
            TaskState.COMPLETED,
            TaskState.ARCHIVED,
            TaskState.COMPLETED,
        ]
        assert states[1] is not None and states[1].error == "gone"
    finally:
        await store.close()


async def test_stale_and_duplicate_events_in_one_batch_are_void(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        done = Progress(files_total=1, files_processed=1, bytes_total=9, bytes_done=9)
        batch = [
            ev(task.id, 2, TaskState.ACTIVE),
            ev(task.id, 1, TaskState.PENDING),  # older than the one before it
            ev(task.id, 3, TaskState.COMPLETED, progress=done),
            ev(task.id, 2, TaskState.ACTIVE, progress=Progress(files_total=1)),  # late
            ev(task.id, 3, TaskState.COMPLETED, progress=done),  # redelivered
            ev("no-such-task", 9, TaskState.ACTIVE),
        ]
        got = [a is not None for a in await store.apply_events(batch)]
        assert got == [True, False, True, False, False, False]
        row = await store.get(task.id)
        assert row is not None and row.state == TaskState.COMPLETED and row.seq == 3
        assert row.progress == done and row.completed_at == T0 + timedelta(seconds=3)
        # the final state survives a later batch of older events too
        late = [ev(task.id, 2, TaskState.ACTIVE), ev(task.id, 0, TaskState.RETRY)]
        assert await store.apply_events(late) == [None, None]
        row = await store.get(task.id)
        assert row is not None and row.state == TaskState.COMPLETED
    finally:
        await store.close()


async def test_batch_keeps_fields_of_earlier_events(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        [task] = await store.add(SVC, [(new_task_id(), spec())])
        nxt = T0 + timedelta(minutes=5)
        p = Progress(files_total=2, files_processed=1)
        await store.apply_events(
            [
                ev(task.id, 1, TaskState.ACTIVE, progress=p),
                ev(task.id, 2, TaskState.RETRY, error="boom", next_at=nxt),
                ev(task.id, 0, TaskState.PENDING, attempt=2),
            ]
        )
        row = await store.get(task.id)
        assert row is not None and row.state == TaskState.PENDING and row.attempt == 2
        assert row.progress == p and row.error == "boom"
        assert row.last_failed_at == T0 + timedelta(seconds=2) and row.next_process_at is None
    finally:
        await store.close()


async def test_cancelled_task_and_other_runs_ignore_the_batch(db_url: str) -> None:
    store = await make_store(db_url)
    try:
        a, b = await store.add(SVC, [(new_task_id(), spec()), (new_task_id(), spec())])
        await store.set_cancelled(a.id)
        results = await store.apply_events(
            [
                ev(a.id, 1, TaskState.ACTIVE),
                ev(b.id, 1, TaskState.CANCELLED, error="cancelled"),
                ev(b.id, 2, TaskState.COMPLETED),
                ev(b.id, 3, TaskState.ACTIVE, run=2),
            ]
        )
        assert results == [None, results[1], None, None] and results[1] is not None
        got_a, got_b = await store.get(a.id), await store.get(b.id)
        assert got_a is not None and got_a.state == TaskState.CANCELLED and got_a.seq == -1
        assert got_b is not None and got_b.state == TaskState.CANCELLED and got_b.seq == 1
    finally:
        await store.close()


async def _apply_one_by_one(store: TaskStore, e: TaskEvent) -> bool:
    """The reference: one conditional UPDATE per event (the store's rule before batching)."""
    values: dict[str, object] = {
        "state": e.state.value,
        "attempt": e.attempt,
        "seq": e.seq,
        "updated_at": e.at,
    }
    if e.progress is not None:
        values["progress"] = e.progress.model_dump_json()
    if e.error is not None:
        values["error"] = e.error
    if e.state in (TaskState.RETRY, TaskState.ARCHIVED):
        values["last_failed_at"] = e.at
    values["next_process_at"] = e.next_at if e.state == TaskState.RETRY else None
    if e.state == TaskState.COMPLETED:
        values["completed_at"] = e.at
        values["error"] = e.error or ""
    c = TASKS.c
    async with store.engine.begin() as conn:
        res = await conn.execute(
            update(TASKS)
            .where(
                c.id == e.task_id,
                c.run == e.run,
                c.state != TaskState.CANCELLED.value,
                tuple_(c.attempt, c.seq) < tuple_(e.attempt, e.seq),
            )
            .values(**values)
        )
        return bool(res.rowcount)


def random_events(rng: random.Random, task_id: str, n: int) -> list[TaskEvent]:
    out = []
    for i in range(n):
        # pending, active, retry, completed, archived, cancelled (rare: it ends a task)
        [state] = rng.choices(list(TaskState), weights=(3, 4, 2, 2, 1, 0.2))
        progress = (
            Progress(files_total=i, bytes_done=rng.randint(0, 99)) if rng.random() < 0.5 else None
        )
        out.append(
            ev(
                task_id,
                rng.randint(0, 6),
                state,
                run=rng.choice((1, 1, 1, 2)),
                attempt=rng.randint(1, 3),
                progress=progress,
                error=rng.choice((None, None, f"e{i}")),
                next_at=T0 + timedelta(seconds=100 + i) if rng.random() < 0.5 else None,
                at=T0 + timedelta(seconds=i),
            )
        )
    return out


async def test_batches_equal_one_by_one_application(db_url: str) -> None:
    """Random event streams (stale, duplicate, other-run, cancelled, interleaved tasks)
    give the same rows and the same applied/void answers batched as one by one."""
    rng = random.Random(20261122)
    store = await make_store(db_url)
    try:
        n = 6
        ids = [new_task_id() for _ in range(2 * n)]
        await store.add(SVC, [(i, spec()) for i in ids])
        ref, batched = ids[:n], ids[n:]
        streams = [random_events(rng, str(t), 25) for t in range(n)]  # index as id for now
        merged = [e for i in range(25) for s in streams for e in [s[i]] if rng.random() < 0.9]
        want = [
            await _apply_one_by_one(store, e.model_copy(update={"task_id": ref[int(e.task_id)]}))
            for e in merged
        ]
        got: list[bool] = []
        pos = 0
        while pos < len(merged):
            size = rng.randint(1, 40)
            chunk = [
                e.model_copy(update={"task_id": batched[int(e.task_id)]})
                for e in merged[pos : pos + size]
            ]
            got += [a is not None for a in await store.apply_events(chunk)]
            pos += size
        assert got == want and any(want) and not all(want)
        for r, b in zip(ref, batched, strict=True):
            expected, actual = await store.get(r), await store.get(b)
            assert expected is not None and actual is not None
            assert dataclasses.replace(actual, id=r) == expected
    finally:
        await store.close()


async def test_applied_carries_direction_without_the_column(db_url: str) -> None:
    """Rows from before the direction column: init() adds it; the spec answers."""
    store = await make_store(db_url)
    try:
        up, down = new_task_id(), new_task_id()
        await store.add(SVC, [(up, spec()), (down, spec(dst="/p/b", src="irods:/z/b"))])
        async with store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE stager_tasks DROP COLUMN direction"))
        await store.init()
        async with store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT direction FROM stager_tasks"))).all()
        assert [r[0] for r in rows] == [None, None]
        applied = await store.apply_events(
            [ev(up, 1, TaskState.ACTIVE), ev(down, 1, TaskState.ACTIVE)]
        )
        assert [a.direction if a else None for a in applied] == ["upload", "download"]
        [new] = await store.add(SVC, [(new_task_id(), spec(dst="/p/c", src="irods:/z/c"))])
        [a] = await store.apply_events([ev(new.id, 1, TaskState.ACTIVE)])
        assert a is not None and a.direction == "download"
    finally:
        await store.close()
