"""Task store: SQLAlchemy 2 async; SQLite by default, PostgreSQL by URL.

Only sealed task specs are stored (``drPass`` as an envelope).  Events from workers are
applied idempotently: a row keeps the highest ``(run, attempt, seq)`` it has applied.
Hot paths (submit, events, release) use Core statements in bulk, not ORM objects.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    Row,
    String,
    Table,
    Text,
    Update,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.messaging.messages import (
    NO_TIME,
    RESTARTABLE_STATES,
    JobData,
    JobInfo,
    JobProgress,
    JobStatus,
    JobTimestamps,
    PrincipalKind,
    Progress,
    Submitter,
    TaskEvent,
    TaskMessage,
    TaskSpec,
    TaskState,
    utcnow,
)

#: States in which a released task counts as "in flight" for its user.
IN_FLIGHT = (TaskState.PENDING, TaskState.ACTIVE, TaskState.RETRY)


class Base(DeclarativeBase):
    """Declarative base of the store."""


class TaskRow(Base):
    """One stager task."""

    __tablename__ = "stager_tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    submitter_kind: Mapped[str] = mapped_column(String(16))
    submitter_name: Mapped[str] = mapped_column(String(128), index=True)
    stager_user: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), index=True)
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    run: Mapped[int] = mapped_column(Integer, default=1)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    error: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_process_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``upload`` / ``download``, so events need not parse the spec (NULL in rows
    #: stored before the column existed: then it is read from the spec).
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)


TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
_C = TASKS.c
#: Columns an event may set (see ``_merge``), in the order UPDATEs name them.
_EVENT_COLUMNS = (
    "state",
    "attempt",
    "seq",
    "updated_at",
    "progress",
    "error",
    "last_failed_at",
    "next_process_at",
    "completed_at",
)


#: What applying events needs of each row (locked on PostgreSQL; SQLite has one writer).
_EVENT_ROWS = (
    select(
        _C.id,
        _C.run,
        _C.attempt,
        _C.seq,
        _C.state,
        _C.created_at,
        func.coalesce(_C.direction, _C.spec),
    )
    .where(_C.id.in_(bindparam("ids", expanding=True)))
    .order_by(_C.id)
    .with_for_update()
)


@functools.cache
def _event_update(cols: tuple[str, ...]) -> Update:
    """UPDATE of ``cols`` (params ``b_<col>``, ``b_id``, ``b_run``), guarded like one
    event: the row's run, not cancelled, and older than the ``(attempt, seq)`` written."""
    return (
        update(TASKS)
        .where(
            _C.id == bindparam("b_id"),
            _C.run == bindparam("b_run"),
            _C.state != TaskState.CANCELLED.value,
            tuple_(_C.attempt, _C.seq) < tuple_(bindparam("b_attempt"), bindparam("b_seq")),
        )
        .values({c: bindparam(f"b_{c}") for c in cols})
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ts(value: datetime | None) -> int:
    aware = _aware(value)
    return NO_TIME if aware is None else int(aware.timestamp())


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

    @classmethod
    def from_row(cls, row: TaskRow | Row[Any]) -> Task:
        """Decode a row (ORM object or Core row)."""
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
            created_at=_aware(row.created_at) or utcnow(),
            updated_at=_aware(row.updated_at) or utcnow(),
            last_failed_at=_aware(row.last_failed_at),
            next_process_at=_aware(row.next_process_at),
            completed_at=_aware(row.completed_at),
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

    def info(self) -> JobInfo:
        """The v1 ``jobInfo`` view (never includes ``drPass``)."""
        p = self.progress or Progress()
        return JobInfo(
            id=self.id,
            timestamps=JobTimestamps(
                createdAt=_ts(self.created_at),
                lastFailedAt=_ts(self.last_failed_at),
                nextProcessAt=_ts(self.next_process_at),
                completedAt=_ts(self.completed_at),
            ),
            data=JobData.model_validate(self.spec.model_dump(exclude={"drPass"})),
            status=JobStatus(
                status=self.state,
                error=self.error,
                attempts=self.attempt,
                progress=JobProgress(
                    total=p.files_total,
                    processed=p.files_processed,
                    failed=p.files_failed,
                    bytesTotal=p.bytes_total,
                    bytesDone=p.bytes_done,
                    rate=p.rate,
                    eta=p.eta,
                ),
            ),
        )


@dataclass(frozen=True)
class Applied:
    """What an applied event needs for metrics: the task's creation time and direction."""

    created_at: datetime
    direction: str


@dataclass
class _Target:
    """A row as read before applying a batch of events, and what the batch changes."""

    run: int
    attempt: int
    seq: int
    state: str
    applied: Applied
    values: dict[str, Any] = field(default_factory=dict)


def _merge(values: dict[str, Any], ev: TaskEvent) -> None:
    """Fold one applicable event into the row's pending SET values (later wins)."""
    values.update(state=ev.state.value, attempt=ev.attempt, seq=ev.seq, updated_at=ev.at)
    if ev.progress is not None:
        values["progress"] = ev.progress.model_dump_json()
    if ev.error is not None:
        values["error"] = ev.error
    if ev.state in (TaskState.RETRY, TaskState.ARCHIVED):
        values["last_failed_at"] = ev.at
    values["next_process_at"] = ev.next_at if ev.state == TaskState.RETRY else None
    if ev.state == TaskState.COMPLETED:
        values["completed_at"] = ev.at
        values["error"] = ev.error or ""


def _direction(direction_or_spec: str) -> str:
    if direction_or_spec in ("upload", "download"):
        return direction_or_spec
    return TaskSpec.model_validate_json(direction_or_spec).direction


def new_task_id() -> str:
    """A fresh task id (UUID4, hex with dashes as in the Go stager)."""
    return str(uuid.uuid4())


class TaskStore:
    """Async access to the task table."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, object] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            # One writer at a time: a single pooled connection serialises access in-process
            # (SQLite answers "database is locked" to concurrent upgrading transactions).
            kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._session = async_sessionmaker(self.engine, expire_on_commit=False)
        #: Reads of one statement need no BEGIN/ROLLBACK round trips.
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inserts: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._inserter: asyncio.Task[None] | None = None

    async def init(self) -> None:
        """Create the table if it does not exist (and add columns newer than it)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(_add_missing_columns)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        if self._inserter is not None:
            await asyncio.gather(self._inserter, return_exceptions=True)
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    async def add(
        self, submitter: Submitter, specs: Iterable[tuple[str, TaskSpec]], *, priority: int = 0
    ) -> list[Task]:
        """Store new pending tasks ``(id, sealed spec)``; returns them once committed.

        Calls that arrive while an insert is in flight are committed together in the
        next transaction (group commit); if that fails, each call is retried alone so
        one call's bad row does not fail the others."""
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
        self._inserts.append((rows, done))
        if self._inserter is None or self._inserter.done():
            self._inserter = asyncio.create_task(self._insert_waiting(), name="taskstore-insert")
        await done
        return tasks

    async def _insert_waiting(self) -> None:
        """Insert every waiting call's rows, a transaction per gathered group."""
        group: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        try:
            while self._inserts:
                group, self._inserts = self._inserts, []
                await self._insert_group(group)
        except asyncio.CancelledError:  # shutting down: nobody may wait forever
            for _, done in group + self._inserts:
                done.cancel()
            self._inserts = []
            raise

    async def _insert_group(
        self, group: list[tuple[list[dict[str, Any]], asyncio.Future[None]]]
    ) -> None:
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
        async with self.engine.begin() as conn:
            await conn.execute(insert(TASKS), rows)

    async def get(self, task_id: str) -> Task | None:
        """One task, or None."""
        async with self._reads.connect() as conn:
            row = (await conn.execute(select(TASKS).where(_C.id == task_id))).first()
            return Task.from_row(row) if row else None

    async def find(
        self,
        *,
        submitter: Submitter | None = None,
        stager_user: str | None = None,
        state: TaskState | None = None,
        limit: int = 1000,
    ) -> list[Task]:
        """Tasks filtered by submitter / stager user / state, newest first."""
        q = select(TASKS)
        if submitter is not None:
            q = q.where(
                _C.submitter_kind == submitter.kind.value,
                _C.submitter_name == submitter.name,
            )
        if stager_user is not None:
            q = q.where(_C.stager_user == stager_user)
        if state is not None:
            q = q.where(_C.state == state.value)
        q = q.order_by(_C.created_at.desc()).limit(limit)
        async with self._reads.connect() as conn:
            return [Task.from_row(r) for r in await conn.execute(q)]

    async def delete(self, task_id: str) -> bool:
        """Delete a task; True when a row went away."""
        async with self._session.begin() as s:
            res = await s.execute(delete(TaskRow).where(TaskRow.id == task_id))
            return bool(getattr(res, "rowcount", 0))

    async def restart(self, task_id: str) -> Task | None:
        """Start a new run of a completed or archived task; None when not restartable."""
        now = utcnow()
        async with self._session.begin() as s:
            res = await s.execute(
                update(TaskRow)
                .where(
                    TaskRow.id == task_id,
                    TaskRow.state.in_([st.value for st in RESTARTABLE_STATES]),
                )
                .values(
                    state=TaskState.PENDING.value,
                    dispatched=False,
                    run=TaskRow.run + 1,
                    attempt=0,
                    seq=-1,
                    error="",
                    progress="",
                    updated_at=now,
                    next_process_at=None,
                    completed_at=None,
                )
            )
            if not getattr(res, "rowcount", 0):
                return None
            row = await s.get(TaskRow, task_id, populate_existing=True)
            assert row is not None
            return Task.from_row(row)

    async def apply_events(self, events: Sequence[TaskEvent]) -> list[Applied | None]:
        """Apply several events in one transaction, each only if newer than its row.

        The result is exactly that of applying them one by one in order (so a stale or
        duplicate event is void, even when it comes after a newer one in the batch),
        but it costs one SELECT (rows locked on PostgreSQL) and one UPDATE per changed
        row sent as executemany, whatever the number of events."""
        if not events:
            return []
        ids = sorted({ev.task_id for ev in events})
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_EVENT_ROWS, {"ids": ids})).all()
            targets = {
                r[0]: _Target(
                    run=r[1],
                    attempt=r[2],
                    seq=r[3],
                    state=r[4],
                    applied=Applied(
                        created_at=_aware(r[5]) or utcnow(), direction=_direction(r[6])
                    ),
                )
                for r in rows
            }
            results = [self._fold(targets.get(ev.task_id), ev) for ev in events]
            await self._write(conn, targets)
        return results

    @staticmethod
    def _fold(t: _Target | None, ev: TaskEvent) -> Applied | None:
        """Apply ``ev`` to the in-memory row if the one-by-one rule would."""
        if (
            t is None
            or ev.run != t.run
            or t.state == TaskState.CANCELLED.value
            or (ev.attempt, ev.seq) <= (t.attempt, t.seq)
        ):
            return None
        t.attempt, t.seq, t.state = ev.attempt, ev.seq, ev.state.value
        _merge(t.values, ev)
        return t.applied

    @staticmethod
    async def _write(conn: AsyncConnection, targets: dict[str, _Target]) -> None:
        """One executemany UPDATE per set of changed columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for task_id, t in targets.items():
            if not t.values:
                continue
            cols = tuple(c for c in _EVENT_COLUMNS if c in t.values)
            params = {f"b_{c}": t.values[c] for c in cols}
            params.update(b_id=task_id, b_run=t.run)
            groups.setdefault(cols, []).append(params)
        for cols, batch in groups.items():
            await conn.execute(_event_update(cols), batch)

    async def set_cancelled(self, task_id: str) -> None:
        """Mark a task cancelled (events for it are ignored from now on)."""
        async with self._session.begin() as s:
            await s.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id)
                .values(state=TaskState.CANCELLED.value, updated_at=utcnow())
            )

    async def release_view(
        self, per_user: int, max_users: int = 1000
    ) -> tuple[dict[str, int], dict[str, list[Task]]]:
        """``in_flight_by_user()`` and ``held_per_user()`` on one connection, each
        user's held list cut to its room (``per_user`` minus its in-flight tasks), so
        specs that cannot be released this round are not decoded."""
        async with self._reads.connect() as conn:
            in_flight = await _in_flight(conn)
            return in_flight, await _held_per_user(conn, per_user, max_users, in_flight)

    async def mark_dispatched(self, ids: Sequence[str], value: bool = True) -> list[str]:
        """Claim (or un-claim) tasks for release; returns the ids actually changed."""
        if not ids:
            return []
        q = (
            update(TASKS)
            .where(
                _C.id.in_(list(ids)),
                _C.dispatched.is_(not value),
                _C.state == TaskState.PENDING.value,
            )
            .values(dispatched=value)
            .returning(_C.id)
        )
        async with self.engine.begin() as conn:
            return [r[0] for r in (await conn.execute(q)).all()]

    async def count_by_state(self) -> dict[str, int]:
        """Number of tasks per state."""
        q = select(_C.state, func.count()).group_by(_C.state)
        async with self._reads.connect() as conn:
            return {st: int(n) for st, n in (await conn.execute(q)).all()}

    async def purge(self, *, completed_before: datetime, archived_before: datetime) -> int:
        """Delete completed tasks finished before ``completed_before`` and archived (or
        cancelled) ones last touched before ``archived_before``; returns how many."""
        async with self._session.begin() as s:
            a = await s.execute(
                delete(TaskRow).where(
                    TaskRow.state == TaskState.COMPLETED.value,
                    TaskRow.completed_at < completed_before,
                )
            )
            b = await s.execute(
                delete(TaskRow).where(
                    TaskRow.state.in_([TaskState.ARCHIVED.value, TaskState.CANCELLED.value]),
                    TaskRow.updated_at < archived_before,
                )
            )
            return int(getattr(a, "rowcount", 0)) + int(getattr(b, "rowcount", 0))


async def _in_flight(conn: AsyncConnection) -> dict[str, int]:
    q = (
        select(_C.stager_user, func.count())
        .where(_C.dispatched.is_(True), _C.state.in_([s.value for s in IN_FLIGHT]))
        .group_by(_C.stager_user)
    )
    return {u: int(n) for u, n in (await conn.execute(q)).all()}


async def _held_per_user(
    conn: AsyncConnection, per_user: int, max_users: int, in_flight: dict[str, int]
) -> dict[str, list[Task]]:
    held = _C.dispatched.is_(False), _C.state == TaskState.PENDING.value
    rank = (
        func.row_number()
        .over(
            partition_by=_C.stager_user,
            order_by=(_C.priority.desc(), _C.created_at, _C.id),
        )
        .label("rank")
    )
    inner = select(_C.id, rank).where(*held).subquery()
    q = (
        select(TASKS)
        .join(inner, inner.c.id == _C.id)
        .where(inner.c.rank <= per_user)
        .order_by(_C.priority.desc(), _C.created_at, _C.id)
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


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():  # the caller went away (cancelled)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _add_missing_columns(conn: Connection) -> None:
    """Add columns that came after a table was created (nullable; no data migration)."""
    have = {c["name"] for c in inspect(conn).get_columns(TASKS.name)}
    if "direction" not in have:
        guard = "" if conn.dialect.name == "sqlite" else "IF NOT EXISTS "
        conn.exec_driver_sql(f"ALTER TABLE {TASKS.name} ADD COLUMN {guard}direction VARCHAR(8)")


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
