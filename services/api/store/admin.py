"""What the admin view reads and changes across every user's tasks, and the flags table.

Every function takes the connection to run on (:class:`~services.api.store.TaskStore`
decides the transactions), like ``tasks``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.store.schema import FLAGS, TASKS, C, aware
from services.api.store.tasks import FINAL_STATES, Task
from shared.messaging.messages import PrincipalKind, TaskState, utcnow


@dataclass(frozen=True)
class QueueFigures:
    """The task queues as the store sees them; keys: ``priority > 0`` (the priority queue)."""

    #: when the longest-waiting released, not yet started task was last changed
    oldest_released: dict[bool, datetime]
    #: released tasks not finished (pending or active): on the queue, ready or unacked
    released_unfinished: dict[bool, int]
    #: tasks accepted but not released yet (fair dispatch), and the oldest one's creation
    held: int
    held_oldest: datetime | None


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks an admin query (or a bulk action) covers; None: any."""

    stager_user: str | None = None
    submitter: str | None = None
    states: tuple[TaskState, ...] = ()
    #: created at least this many seconds ago
    min_age: float | None = None
    #: created at most this many seconds ago
    max_age: float | None = None
    #: False: not deleted by their owner, True: only those, None: both
    deleted: bool | None = False

    def where(self, now: datetime) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter at ``now``."""
        out: list[ColumnElement[bool]] = []
        if self.deleted is not None:
            out.append(C.deleted_at.is_not(None) if self.deleted else C.deleted_at.is_(None))
        if self.stager_user is not None:
            out.append(C.stager_user == self.stager_user)
        if self.submitter is not None:
            out.append(C.submitter_name == self.submitter)
        if self.states:
            out.append(C.state.in_([s.value for s in self.states]))
        if self.min_age is not None:
            out.append(C.created_at <= now - timedelta(seconds=self.min_age))
        if self.max_age is not None:
            out.append(C.created_at >= now - timedelta(seconds=self.max_age))
        return out


def _filtered(q: Select[Any], f: TaskFilter) -> Select[Any]:
    clauses = f.where(utcnow())
    return q.where(and_(*clauses)) if clauses else q


async def find(
    conn: AsyncConnection, f: TaskFilter, *, limit: int, offset: int
) -> tuple[list[Task], int]:
    """One page of the tasks matching ``f`` (newest first) and how many match in all."""
    total = (await conn.execute(_filtered(select(func.count()).select_from(TASKS), f))).scalar()
    q = _filtered(select(TASKS), f).order_by(C.created_at.desc(), C.id).limit(limit).offset(offset)
    return [Task.from_row(r) for r in await conn.execute(q)], int(total or 0)


async def matching_ids(conn: AsyncConnection, f: TaskFilter, limit: int) -> list[str]:
    """Ids of up to ``limit`` tasks matching ``f`` (oldest first)."""
    q = _filtered(select(C.id), f).order_by(C.created_at, C.id).limit(limit)
    return [r[0] for r in await conn.execute(q)]


async def oldest_released(conn: AsyncConnection) -> dict[bool, datetime]:
    """When the longest-waiting released, not yet started task was last changed, by
    ``priority > 0`` (True: the priority queue): the task queues' oldest message."""
    prio = C.priority > literal_column("0")  # one expression in SELECT and GROUP BY
    q = (
        select(prio, func.min(C.updated_at))
        .where(C.dispatched.is_(True), C.state == TaskState.PENDING.value)
        .group_by(prio)
    )
    out: dict[bool, datetime] = {}
    for prio, at in (await conn.execute(q)).all():
        when = aware(at)
        if when is not None:
            out[bool(prio)] = when
    return out


async def released_unfinished(conn: AsyncConnection) -> dict[bool, int]:
    """Released tasks still pending or active, by ``priority > 0``: the messages a task
    queue holds, ready or delivered to a worker and not yet acknowledged."""
    prio = C.priority > literal_column("0")
    live = (TaskState.PENDING.value, TaskState.ACTIVE.value)
    q = (
        select(prio, func.count())
        .where(C.dispatched.is_(True), C.state.in_(live), C.deleted_at.is_(None))
        .group_by(prio)
    )
    return {bool(p): int(n) for p, n in (await conn.execute(q)).all()}


async def oldest_held(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """Tasks accepted but not yet released by the dispatcher (fair share), and the oldest's
    creation time."""
    q = select(func.count(), func.min(C.created_at)).where(
        C.dispatched.is_(False), C.state == TaskState.PENDING.value
    )
    n, at = (await conn.execute(q)).one()
    return int(n or 0), aware(at)


async def archive(conn: AsyncConnection, task_id: str, error: str) -> Task | None:
    """Mark an unfinished task archived with ``error`` (a dead letter an admin discarded)."""
    now = utcnow()
    q = (
        update(TASKS)
        .where(C.id == task_id, C.state.not_in([s.value for s in FINAL_STATES]))
        .values(state=TaskState.ARCHIVED.value, error=error, updated_at=now, last_failed_at=now)
        .returning(*C)
    )
    row = (await conn.execute(q)).first()
    return Task.from_row(row) if row else None


@dataclass(frozen=True)
class Flag:
    """A stored flag: its JSON value, who set it and when."""

    value: Any
    updated_by: str
    updated_at: datetime


async def get_flag(conn: AsyncConnection, name: str) -> Flag | None:
    """A flag, or None when never set."""
    row = (await conn.execute(select(FLAGS).where(FLAGS.c.name == name))).first()
    if row is None:
        return None
    return Flag(json.loads(row.value), row.updated_by, aware(row.updated_at) or utcnow())


async def set_flag(conn: AsyncConnection, name: str, value: Any, by: str) -> Flag:
    """Set a flag (insert or update); the flag as stored."""
    now = utcnow()
    text = json.dumps(value)
    done = await conn.execute(
        update(FLAGS).where(FLAGS.c.name == name).values(value=text, updated_by=by, updated_at=now)
    )
    if not done.rowcount:
        await conn.execute(
            FLAGS.insert().values(name=name, value=text, updated_by=by, updated_at=now)
        )
    return Flag(value, by, now)


def submitter_label(kind: PrincipalKind, name: str) -> str:
    """``service:streamer`` / ``user:alice``: how admin views and audit lines name one."""
    return f"{kind.value}:{name}"
