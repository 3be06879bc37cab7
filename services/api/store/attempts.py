"""Per-attempt history: one row per (task, run, attempt), folded from the worker events
that :mod:`services.api.store.events` applies (never from events it finds stale).

What an event sets: its worker (the latest wins: a redelivered attempt names the worker
that finished it), the first ``active`` event's time as the start, and for a ``retry``,
``archived``, ``completed`` or ``cancelled`` event the end, the outcome and the error
(message and kind).  Written in the transaction of the events, under the task rows' lock,
so replicas applying events for one task take turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from services.api.store.schema import ATTEMPTS, TASKS, aware
from shared.messaging.messages import TaskEvent, TaskState

A = ATTEMPTS.c

#: Event states that end an attempt.
_ENDS = frozenset({TaskState.RETRY, TaskState.ARCHIVED, TaskState.COMPLETED, TaskState.CANCELLED})

#: Columns an event may set, and the SQL type of their bound value.
_COLUMNS: dict[str, TypeEngine[Any]] = {
    "worker": String(128),
    "started_at": DateTime(timezone=True),
    "ended_at": DateTime(timezone=True),
    "outcome": String(16),
    "error_kind": String(32),
    "error": Text(),
}

Key = tuple[str, int, int]


@dataclass(frozen=True)
class Attempt:
    """One attempt as the store keeps it."""

    run: int
    attempt: int
    worker: str | None
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    error_kind: str | None
    error: str | None


def fold(changes: dict[Key, dict[str, Any]], ev: TaskEvent) -> None:
    """Fold an applied event into the pending changes of its attempt (later wins, but the
    first start is kept)."""
    values = changes.setdefault((ev.task_id, ev.run, ev.attempt), {})
    if ev.worker:
        values["worker"] = ev.worker
    if ev.state is TaskState.ACTIVE:
        values.setdefault("started_at", ev.at)
    elif ev.state in _ENDS:
        values.update(
            ended_at=ev.at, outcome=ev.state.value, error_kind=ev.error_kind, error=ev.error
        )


def _param(values: dict[str, Any], key: Key) -> dict[str, Any]:
    p = {f"b_{c}": values.get(c) for c in _COLUMNS}
    p.update(b_task_id=key[0], b_run=key[1], b_attempt=key[2])
    return p


_INSERT = insert(ATTEMPTS).values(
    task_id=bindparam("b_task_id", type_=String(64)),
    run=bindparam("b_run", type_=Integer()),
    attempt=bindparam("b_attempt", type_=Integer()),
    **{c: bindparam(f"b_{c}", type_=t) for c, t in _COLUMNS.items()},
)

#: Existing rows: what an event names replaces what is stored, except the start.
_UPDATE = (
    update(ATTEMPTS)
    .where(
        A.task_id == bindparam("b_task_id", type_=String(64)),
        A.run == bindparam("b_run", type_=Integer()),
        A.attempt == bindparam("b_attempt", type_=Integer()),
    )
    .values(
        {
            c: (
                func.coalesce(A[c], bindparam(f"b_{c}", type_=t))
                if c == "started_at"
                else func.coalesce(bindparam(f"b_{c}", type_=t), A[c])
            )
            for c, t in _COLUMNS.items()
        }
    )
)


async def write(conn: AsyncConnection, changes: dict[Key, dict[str, Any]]) -> None:
    """Insert the attempts not stored yet, update the others (one executemany each)."""
    if not changes:
        return
    ids = sorted({k[0] for k in changes})
    q = select(A.task_id, A.run, A.attempt).where(A.task_id.in_(ids))
    have = {(r[0], r[1], r[2]) for r in (await conn.execute(q)).all()}
    new = [_param(v, k) for k, v in changes.items() if k not in have]
    old = [_param(v, k) for k, v in changes.items() if k in have]
    if new:
        await conn.execute(_INSERT, new)
    if old:
        await conn.execute(_UPDATE, old)


async def of_task(conn: AsyncConnection, task_id: str, limit: int = 200) -> list[Attempt]:
    """The task's attempts, oldest run and attempt first (the latest ``limit``)."""
    q = (
        select(ATTEMPTS)
        .where(A.task_id == task_id)
        .order_by(A.run.desc(), A.attempt.desc())
        .limit(limit)
    )
    rows = (await conn.execute(q)).all()
    return [
        Attempt(
            run=r.run,
            attempt=r.attempt,
            worker=r.worker,
            started_at=aware(r.started_at),
            ended_at=aware(r.ended_at),
            outcome=r.outcome,
            error_kind=r.error_kind,
            error=r.error,
        )
        for r in reversed(rows)
    ]


async def purge_orphans(conn: AsyncConnection) -> None:
    """Delete the attempts of tasks that no longer exist (after a purge)."""
    await conn.execute(delete(ATTEMPTS).where(~exists().where(TASKS.c.id == A.task_id)))
