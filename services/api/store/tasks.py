"""Tasks as read from the store, group-committed inserts, lookups and whole-row changes.

Every function takes the connection to run on: :class:`~services.api.store.TaskStore`
decides where each transaction begins and ends.  :class:`GroupInsert` is the exception:
it holds the engine, because it decides which calls share a transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.store import attempts
from services.api.store.schema import TASKS, C, aware
from shared.messaging.messages import (
    PrincipalKind,
    Progress,
    Submitter,
    TaskMessage,
    TaskReport,
    TaskSpec,
    TaskState,
    utcnow,
)

#: States in which a task has finished.
FINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.ARCHIVED, TaskState.CANCELLED})
#: States from which :func:`restart` starts a new run.
RESTARTABLE_STATES = frozenset({TaskState.COMPLETED, TaskState.ARCHIVED})
#: States a cancel applies to (the unfinished ones).
CANCELLABLE_STATES = frozenset({TaskState.PENDING, TaskState.ACTIVE, TaskState.RETRY})


@dataclass(frozen=True)
class Task:
    """A task as read from the store."""

    id: str
    submitter: Submitter
    stager_user: str
    spec: TaskSpec
    priority: int
    state: TaskState
    dispatched: bool
    run: int
    attempt: int
    seq: int
    error: str
    progress: Progress | None
    created_at: datetime
    updated_at: datetime
    last_failed_at: datetime | None
    next_process_at: datetime | None
    completed_at: datetime | None
    #: When its owner deleted it (a finished task kept until retention), or None.
    deleted_at: datetime | None = None
    #: The last attempt's report (failed files, checksum result, dry-run plan), or None.
    report: TaskReport | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Task:
        """Decode a row of :data:`~services.api.store.schema.TASKS`."""
        return cls(
            id=row.id,
            submitter=Submitter(kind=PrincipalKind(row.submitter_kind), name=row.submitter_name),
            stager_user=row.stager_user,
            spec=TaskSpec.model_validate_json(row.spec),
            priority=row.priority,
            state=TaskState(row.state),
            dispatched=row.dispatched,
            run=row.run,
            attempt=row.attempt,
            seq=row.seq,
            error=row.error,
            progress=Progress.model_validate_json(row.progress) if row.progress else None,
            created_at=aware(row.created_at) or utcnow(),
            updated_at=aware(row.updated_at) or utcnow(),
            last_failed_at=aware(row.last_failed_at),
            next_process_at=aware(row.next_process_at),
            completed_at=aware(row.completed_at),
            deleted_at=aware(row.deleted_at),
            report=TaskReport.model_validate_json(row.report) if row.report else None,
        )

    def message(self) -> TaskMessage:
        """The TaskMessage that starts this task's current run."""
        return TaskMessage(
            task_id=self.id,
            run=self.run,
            attempt=1,
            priority=self.priority,
            submitter=self.submitter,
            task=self.spec,
            created_at=self.created_at,
        )


def new_task_id() -> str:
    """A fresh task id (UUID4, hex with dashes as in the Go stager)."""
    return str(uuid.uuid4())


_Waiting = tuple[list[dict[str, Any]], asyncio.Future[None]]


class GroupInsert:
    """Inserts new tasks; calls that arrive while an insert is in flight are committed
    together in the next transaction (group commit).  If that transaction fails, each
    call is retried alone, so one call's bad row does not fail the others."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._waiting: list[_Waiting] = []
        self._inserter: asyncio.Task[None] | None = None

    async def add(
        self, submitter: Submitter, specs: Iterable[tuple[str, TaskSpec]], priority: int
    ) -> list[Task]:
        """Store new pending tasks ``(id, sealed spec)``; returns them once committed."""
        now = utcnow()
        tasks = [
            Task(
                id=task_id,
                submitter=submitter,
                stager_user=spec.stagerUser,
                spec=spec,
                priority=priority,
                state=TaskState.PENDING,
                dispatched=False,
                run=1,
                attempt=0,
                seq=-1,
                error="",
                progress=None,
                created_at=now,
                updated_at=now,
                last_failed_at=None,
                next_process_at=None,
                completed_at=None,
            )
            for task_id, spec in specs
        ]
        if not tasks:
            return []
        rows = [
            {
                "id": t.id,
                "submitter_kind": submitter.kind.value,
                "submitter_name": submitter.name,
                "stager_user": t.stager_user,
                "spec": t.spec.model_dump_json(),
                "direction": t.spec.direction,
                "priority": priority,
                "state": TaskState.PENDING.value,
                "dispatched": False,
                "run": 1,
                "attempt": 0,
                "seq": -1,
                "error": "",
                "progress": "",
                "created_at": now,
                "updated_at": now,
            }
            for t in tasks
        ]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, done))
        if self._inserter is None or self._inserter.done():
            self._inserter = asyncio.create_task(self._insert_waiting(), name="taskstore-insert")
        await done
        return tasks

    async def close(self) -> None:
        """Wait for the insert in flight, if any."""
        if self._inserter is not None:
            await asyncio.gather(self._inserter, return_exceptions=True)

    async def _insert_waiting(self) -> None:
        """Insert every waiting call's rows, a transaction per gathered group."""
        group: list[_Waiting] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._insert_group(group)
        except asyncio.CancelledError:  # shutting down: nobody may wait forever
            for _, done in group + self._waiting:
                done.cancel()
            self._waiting = []
            raise

    async def _insert_group(self, group: list[_Waiting]) -> None:
        try:
            await self._insert_rows([row for rows, _ in group for row in rows])
        except Exception as e:
            if len(group) == 1:
                _settle(group[0][1], e)
                return
            for rows, done in group:
                try:
                    await self._insert_rows(rows)
                except Exception as alone:
                    _settle(done, alone)
                else:
                    _settle(done, None)
        else:
            for _, done in group:
                _settle(done, None)

    async def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(TASKS), rows)


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():  # the caller went away (cancelled)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


async def get(conn: AsyncConnection, task_id: str) -> Task | None:
    """One task, or None."""
    row = (await conn.execute(select(TASKS).where(C.id == task_id))).first()
    return Task.from_row(row) if row else None


async def find(
    conn: AsyncConnection,
    *,
    submitter: Submitter | None,
    stager_user: str | None,
    state: TaskState | None,
    limit: int,
    deleted: bool | None = False,
    offset: int = 0,
) -> list[Task]:
    """Tasks filtered by submitter / stager user / state, newest first (``offset`` of
    them skipped); ``deleted``: False those not deleted by their owner, True only those,
    None both."""
    q = _filtered(select(TASKS), submitter, stager_user, state, deleted)
    q = q.order_by(C.created_at.desc(), C.id.desc()).offset(offset).limit(limit)
    return [Task.from_row(r) for r in await conn.execute(q)]


async def count(
    conn: AsyncConnection,
    *,
    submitter: Submitter | None,
    stager_user: str | None,
    state: TaskState | None,
    deleted: bool | None = False,
) -> int:
    """How many tasks :func:`find` would page through."""
    q = _filtered(select(func.count()).select_from(TASKS), submitter, stager_user, state, deleted)
    return int((await conn.execute(q)).scalar_one())


def _filtered(
    q: Select[Any],
    submitter: Submitter | None,
    stager_user: str | None,
    state: TaskState | None,
    deleted: bool | None,
) -> Select[Any]:
    if deleted is not None:
        q = q.where(C.deleted_at.is_not(None) if deleted else C.deleted_at.is_(None))
    if submitter is not None:
        q = q.where(C.submitter_kind == submitter.kind.value, C.submitter_name == submitter.name)
    if stager_user is not None:
        q = q.where(C.stager_user == stager_user)
    if state is not None:
        q = q.where(C.state == state.value)
    return q


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Number of tasks per state."""
    q = select(C.state, func.count()).group_by(C.state)
    return {st: int(n) for st, n in (await conn.execute(q)).all()}


async def mark_deleted(conn: AsyncConnection, task_id: str) -> Task | None:
    """Mark a finished task deleted (kept until retention); the task as it is now, or
    None when it is not finished (or does not exist).  Deleting twice changes nothing."""
    now = utcnow()
    q = (
        update(TASKS)
        .where(C.id == task_id, C.state.in_([st.value for st in FINAL_STATES]))
        .values(deleted_at=func.coalesce(C.deleted_at, now))
        .returning(*C)
    )
    row = (await conn.execute(q)).first()
    return Task.from_row(row) if row else None


async def restart(
    conn: AsyncConnection, task_id: str, states: Iterable[TaskState] = RESTARTABLE_STATES
) -> Task | None:
    """Start a new run of a task in one of ``states`` (by default completed or archived);
    None when not restartable."""
    q = (
        update(TASKS)
        .where(
            C.id == task_id,
            C.state.in_([st.value for st in states]),
            C.deleted_at.is_(None),
        )
        .values(
            state=TaskState.PENDING.value,
            dispatched=False,
            run=C.run + 1,
            attempt=0,
            seq=-1,
            error="",
            progress="",
            report=None,
            updated_at=utcnow(),
            next_process_at=None,
            completed_at=None,
        )
        .returning(*C)
    )
    row = (await conn.execute(q)).first()
    return Task.from_row(row) if row else None


async def set_cancelled(conn: AsyncConnection, task_id: str) -> Task | None:
    """Mark an unfinished task cancelled (events for it are ignored from now on); the
    cancelled task, or None when it had finished meanwhile (or does not exist)."""
    q = (
        update(TASKS)
        .where(C.id == task_id, C.state.in_([st.value for st in CANCELLABLE_STATES]))
        .values(state=TaskState.CANCELLED.value, updated_at=utcnow())
        .returning(*C)
    )
    row = (await conn.execute(q)).first()
    return Task.from_row(row) if row else None


async def purge(
    conn: AsyncConnection, *, completed_before: datetime, archived_before: datetime
) -> int:
    """Delete completed tasks finished before ``completed_before`` and archived (or
    cancelled) ones last touched before ``archived_before``; returns how many."""
    a = await conn.execute(
        delete(TASKS).where(C.state == TaskState.COMPLETED.value, C.completed_at < completed_before)
    )
    b = await conn.execute(
        delete(TASKS).where(
            C.state.in_([TaskState.ARCHIVED.value, TaskState.CANCELLED.value]),
            C.updated_at < archived_before,
        )
    )
    if a.rowcount or b.rowcount:
        await attempts.purge_orphans(conn)
    return int(a.rowcount) + int(b.rowcount)
