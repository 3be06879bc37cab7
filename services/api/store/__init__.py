"""Task store: SQLAlchemy 2 async Core; SQLite by default, PostgreSQL by URL.

Only sealed task specs are stored (``drPass`` as an envelope).  Events from workers are
applied idempotently: a row keeps the highest ``(run, attempt, seq)`` it has applied.
Every statement is SQLAlchemy Core; the hot paths (submit, events, release) run in bulk.

:class:`TaskStore` owns the engine and decides where each transaction begins; the SQL is
split by concern:

* ``schema``: the table, its creation and upgrade;
* ``tasks``: :class:`Task`, group-committed inserts, lookups, restart, cancel, delete
  (a mark: the row stays until retention), purge;
* ``events``: folding batches of worker events into the rows;
* ``release``: what a fair release round reads and claims;
* ``admin``: the admin view's queries across users, and the flags table (intake pause);
* ``attempts``: the per-attempt history the events write (admin job detail).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.api.store import admin, attempts, events, release, tasks
from services.api.store.admin import Flag, QueueFigures, TaskFilter
from services.api.store.attempts import Attempt
from services.api.store.events import Applied
from services.api.store.release import Choose
from services.api.store.schema import SCHEMA_LOCK, create_schema
from services.api.store.tasks import FINAL_STATES, RESTARTABLE_STATES, Task, new_task_id
from shared.messaging.messages import Submitter, TaskEvent, TaskSpec, TaskState
from shared.sqlite import apply_pragmas

__all__ = [
    "FINAL_STATES",
    "RESTARTABLE_STATES",
    "Attempt",
    "Flag",
    "QueueFigures",
    "Task",
    "TaskFilter",
    "TaskStore",
    "new_task_id",
]


class TaskStore:
    """Async access to the task table."""

    def __init__(self, url: str) -> None:
        sqlite = url.startswith("sqlite")
        kwargs: dict[str, object] = {"hide_parameters": True}
        if sqlite:
            # One writer at a time: a single pooled connection serialises access in-process
            # (SQLite answers "database is locked" to concurrent upgrading transactions).
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if sqlite:
            event.listen(self.engine.sync_engine, "connect", apply_pragmas)
        #: Reads of one statement need no BEGIN/ROLLBACK round trips.
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inserts = tasks.GroupInsert(self.engine)

    async def init(self) -> None:
        """Create the table if it does not exist (and add columns newer than it).

        Several API processes may start at once on one PostgreSQL database: racing CREATE
        TABLEs fail (duplicate pg_type rows), so they take turns under an advisory lock
        held until the transaction ends."""
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            await conn.run_sync(create_schema)

    async def close(self) -> None:
        """Wait for the insert in flight, then dispose of the connection pool."""
        await self._inserts.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    async def add(
        self, submitter: Submitter, specs: Iterable[tuple[str, TaskSpec]], *, priority: int = 0
    ) -> list[Task]:
        """Store new pending tasks ``(id, sealed spec)``; returns them once committed
        (concurrent calls share a transaction: :class:`~services.api.store.tasks.GroupInsert`)."""
        return await self._inserts.add(submitter, specs, priority)

    async def get(self, task_id: str) -> Task | None:
        """One task, or None."""
        async with self._reads.connect() as conn:
            return await tasks.get(conn, task_id)

    async def find(
        self,
        *,
        submitter: Submitter | None = None,
        stager_user: str | None = None,
        state: TaskState | None = None,
        limit: int = 1000,
        deleted: bool | None = False,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks filtered by submitter / stager user / state, newest first (``offset`` of
        them skipped); ``deleted``: False those not deleted by their owner, True only
        those, None both."""
        async with self._reads.connect() as conn:
            return await tasks.find(
                conn,
                submitter=submitter,
                stager_user=stager_user,
                state=state,
                limit=limit,
                deleted=deleted,
                offset=offset,
            )

    async def count(
        self,
        *,
        submitter: Submitter | None = None,
        stager_user: str | None = None,
        state: TaskState | None = None,
        deleted: bool | None = False,
    ) -> int:
        """How many tasks :meth:`find` pages through with the same filters."""
        async with self._reads.connect() as conn:
            return await tasks.count(
                conn, submitter=submitter, stager_user=stager_user, state=state, deleted=deleted
            )

    async def count_by_state(self) -> dict[str, int]:
        """Number of tasks per state."""
        async with self._reads.connect() as conn:
            return await tasks.count_by_state(conn)

    async def mark_deleted(self, task_id: str) -> Task | None:
        """Mark a finished task deleted: kept (hidden from :meth:`find`) until retention
        purges it; the task, or None when it is not finished."""
        async with self.engine.begin() as conn:
            return await tasks.mark_deleted(conn, task_id)

    async def restart(
        self, task_id: str, states: Iterable[TaskState] = RESTARTABLE_STATES
    ) -> Task | None:
        """Start a new run of a task in ``states`` (completed or archived unless given);
        None when not restartable."""
        async with self.engine.begin() as conn:
            return await tasks.restart(conn, task_id, states)

    async def set_cancelled(self, task_id: str) -> Task | None:
        """Mark an unfinished task cancelled (events for it are ignored from now on); the
        cancelled task, or None when it had finished meanwhile."""
        async with self.engine.begin() as conn:
            return await tasks.set_cancelled(conn, task_id)

    async def purge(self, *, completed_before: datetime, archived_before: datetime) -> int:
        """Delete completed tasks finished before ``completed_before`` and archived (or
        cancelled) ones last touched before ``archived_before``; returns how many."""
        async with self.engine.begin() as conn:
            return await tasks.purge(
                conn, completed_before=completed_before, archived_before=archived_before
            )

    async def apply_events(self, evs: Sequence[TaskEvent]) -> list[Applied | None]:
        """Apply worker events in one transaction, each only if newer than its row
        (the rule and its cost: ``services.api.store.events``)."""
        if not evs:
            return []
        async with self.engine.begin() as conn:
            return await events.apply_events(conn, evs)

    async def release_view(
        self, per_user: int, max_users: int = 1000
    ) -> tuple[dict[str, int], dict[str, list[Task]]]:
        """Released, unfinished tasks per user, and up to ``per_user`` held tasks of each
        user (highest priority, then oldest first) cut to its room (``per_user`` minus
        its in-flight tasks), read on one connection; users ordered by their best task."""
        async with self._reads.connect() as conn:
            in_flight = await release.in_flight(conn)
            return in_flight, await release.held_per_user(conn, per_user, max_users, in_flight)

    async def release_round(self, per_user: int, max_users: int, choose: Choose) -> list[Task]:
        """One release round, safe with several API replicas on one PostgreSQL store: read
        the view, let ``choose(in_flight, held)`` pick the tasks, and claim them, all in one
        transaction that holds the store's release lock, so two replicas cannot both see a
        user's room free and release twice the cap.  Returns the claimed tasks (to publish;
        give back failed ones with :meth:`mark_dispatched` ``value=False``)."""
        async with self.engine.begin() as conn:
            await release.lock_round(conn)
            in_flight = await release.in_flight(conn)
            held = await release.held_per_user(conn, per_user, max_users, in_flight)
            chosen = choose(in_flight, held)
            if not chosen:
                return []
            claimed = set(await release.mark_dispatched(conn, [t.id for t in chosen], True))
            return [t for t in chosen if t.id in claimed]

    async def mark_dispatched(self, ids: Sequence[str], value: bool = True) -> list[str]:
        """Claim (or un-claim) tasks for release; returns the ids actually changed."""
        if not ids:
            return []
        async with self.engine.begin() as conn:
            return await release.mark_dispatched(conn, ids, value)

    # --- admin view (services.api.admin) ---------------------------------------------

    async def admin_find(
        self, f: TaskFilter, *, limit: int, offset: int = 0
    ) -> tuple[list[Task], int]:
        """A page of every user's tasks matching ``f`` (newest first), and the total."""
        async with self._reads.connect() as conn:
            return await admin.find(conn, f, limit=limit, offset=offset)

    async def admin_ids(self, f: TaskFilter, limit: int) -> list[str]:
        """Ids of up to ``limit`` tasks matching ``f`` (what a bulk action would touch)."""
        async with self._reads.connect() as conn:
            return await admin.matching_ids(conn, f, limit)

    async def queue_figures(self) -> QueueFigures:
        """What the store knows of the task queues (read on one connection)."""
        async with self._reads.connect() as conn:
            released = await admin.oldest_released(conn)
            unfinished = await admin.released_unfinished(conn)
            held, oldest = await admin.oldest_held(conn)
            return QueueFigures(released, unfinished, held, oldest)

    async def attempts(self, task_id: str) -> list[Attempt]:
        """The attempts of every run of a task, oldest first."""
        async with self._reads.connect() as conn:
            return await attempts.of_task(conn, task_id)

    async def archive(self, task_id: str, error: str) -> Task | None:
        """Archive an unfinished task with ``error``; None when it had finished."""
        async with self.engine.begin() as conn:
            return await admin.archive(conn, task_id, error)

    async def get_flag(self, name: str) -> Flag | None:
        """A flag every replica sees (``intake``), or None when never set."""
        async with self._reads.connect() as conn:
            return await admin.get_flag(conn, name)

    async def set_flag(self, name: str, value: object, by: str) -> Flag:
        """Set a flag (JSON ``value``), recording who set it."""
        async with self.engine.begin() as conn:
            return await admin.set_flag(conn, name, value, by)
