"""What the dispatcher reads and claims for a fair release round.

:func:`in_flight` counts each user's released, unfinished tasks; :func:`held_per_user`
reads each user's best held tasks in one query (a window function), cut to the room the
user has left; :func:`mark_dispatched` claims the chosen ones (or gives them back after a
failed publish).  The round-robin itself is ``services.api.dispatcher``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.store.schema import TASKS, C
from services.api.store.tasks import Task
from shared.messaging.messages import TaskState

#: Picks the tasks to release from ``(in_flight, held)``: the dispatcher's policy.
Choose = Callable[[dict[str, int], dict[str, list[Task]]], list[Task]]

#: Key of the PostgreSQL advisory lock one release round holds (any constant unique to
#: the stager: ASCII "stgrel").
RELEASE_LOCK_KEY = 0x737467726563


async def lock_round(conn: AsyncConnection) -> None:
    """Serialise release rounds across API replicas: a transaction-scoped advisory lock on
    PostgreSQL, released at commit.  SQLite needs none: its store has one writer, in one
    process (docs/api.md, "Running several API replicas")."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RELEASE_LOCK_KEY})


#: States in which a released task counts as "in flight" for its user.
IN_FLIGHT = (TaskState.PENDING, TaskState.ACTIVE, TaskState.RETRY)


async def in_flight(conn: AsyncConnection) -> dict[str, int]:
    """Released, unfinished tasks per stager user."""
    q = (
        select(C.stager_user, func.count())
        .where(C.dispatched.is_(True), C.state.in_([s.value for s in IN_FLIGHT]))
        .group_by(C.stager_user)
    )
    return {u: int(n) for u, n in (await conn.execute(q)).all()}


async def held_per_user(
    conn: AsyncConnection, per_user: int, max_users: int, in_flight: dict[str, int]
) -> dict[str, list[Task]]:
    """Each user's held tasks (highest priority, then oldest first), at most ``per_user``
    minus its ``in_flight`` count; users ordered by their best task, at most ``max_users``.
    Specs that cannot be released this round are not decoded."""
    held = C.dispatched.is_(False), C.state == TaskState.PENDING.value
    rank = (
        func.row_number()
        .over(partition_by=C.stager_user, order_by=(C.priority.desc(), C.created_at, C.id))
        .label("rank")
    )
    inner = select(C.id, rank).where(*held).subquery()
    q = (
        select(TASKS)
        .join(inner, inner.c.id == C.id)
        .where(inner.c.rank <= per_user)
        .order_by(C.priority.desc(), C.created_at, C.id)
    )
    out: dict[str, list[Task]] = {}
    for row in await conn.execute(q):
        user = row.stager_user
        if user not in out and len(out) >= max_users:
            continue
        tasks = out.setdefault(user, [])
        if len(tasks) < per_user - in_flight.get(user, 0):
            tasks.append(Task.from_row(row))
    return out


async def mark_dispatched(conn: AsyncConnection, ids: Sequence[str], value: bool) -> list[str]:
    """Claim (or un-claim) pending tasks; returns the ids actually changed."""
    q = (
        update(TASKS)
        .where(C.id.in_(list(ids)), C.dispatched.is_(not value), C.state == TaskState.PENDING.value)
        .values(dispatched=value)
        .returning(C.id)
    )
    return [r[0] for r in (await conn.execute(q)).all()]
