"""Task store: SQLAlchemy 2 async; SQLite by default, PostgreSQL by URL.

Only sealed task specs are stored (``drPass`` as an envelope).  Events from workers are
applied idempotently: a row keeps the highest ``(run, attempt, seq)`` it has applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    delete,
    event,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.models import (
    FINAL_STATES,
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
    def from_row(cls, row: TaskRow) -> Task:
        """Decode a row."""
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
    """What an applied event needs for metrics: the task's creation time and spec."""

    created_at: datetime
    spec: TaskSpec


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

    async def init(self) -> None:
        """Create the table if it does not exist."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    async def add(
        self, submitter: Submitter, specs: Iterable[tuple[str, TaskSpec]], *, priority: int = 0
    ) -> list[Task]:
        """Store new pending tasks ``(id, sealed spec)``; returns them."""
        now = utcnow()
        rows = [
            TaskRow(
                id=task_id,
                submitter_kind=submitter.kind.value,
                submitter_name=submitter.name,
                stager_user=spec.stagerUser,
                spec=spec.model_dump_json(),
                priority=priority,
                state=TaskState.PENDING.value,
                dispatched=False,
                run=1,
                attempt=0,
                seq=-1,
                error="",
                progress="",
                created_at=now,
                updated_at=now,
            )
            for task_id, spec in specs
        ]
        async with self._session.begin() as s:
            s.add_all(rows)
        return [Task.from_row(r) for r in rows]

    async def get(self, task_id: str) -> Task | None:
        """One task, or None."""
        async with self._session() as s:
            row = await s.get(TaskRow, task_id)
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
        q = select(TaskRow)
        if submitter is not None:
            q = q.where(
                TaskRow.submitter_kind == submitter.kind.value,
                TaskRow.submitter_name == submitter.name,
            )
        if stager_user is not None:
            q = q.where(TaskRow.stager_user == stager_user)
        if state is not None:
            q = q.where(TaskRow.state == state.value)
        q = q.order_by(TaskRow.created_at.desc()).limit(limit)
        async with self._session() as s:
            rows = (await s.execute(q)).scalars().all()
            return [Task.from_row(r) for r in rows]

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

    async def apply_event(self, ev: TaskEvent) -> Applied | None:
        """Apply a worker event if it is newer than what the row has; None if not."""
        return (await self.apply_events([ev]))[0]

    async def apply_events(self, events: Sequence[TaskEvent]) -> list[Applied | None]:
        """Apply several events in one transaction (each only if newer)."""
        async with self._session.begin() as s:
            return [await self._apply(s, ev) for ev in events]

    @staticmethod
    async def _apply(s: AsyncSession, ev: TaskEvent) -> Applied | None:
        values: dict[str, object] = {
            "state": ev.state.value,
            "attempt": ev.attempt,
            "seq": ev.seq,
            "updated_at": ev.at,
        }
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
        res = await s.execute(
            update(TaskRow)
            .where(
                TaskRow.id == ev.task_id,
                TaskRow.run == ev.run,
                TaskRow.state != TaskState.CANCELLED.value,
                tuple_(TaskRow.attempt, TaskRow.seq) < tuple_(ev.attempt, ev.seq),
            )
            .values(**values)
            .returning(TaskRow.created_at, TaskRow.spec)
        )
        row = res.first()
        if row is None:
            return None
        spec = TaskSpec.model_validate_json(row[1])
        return Applied(created_at=_aware(row[0]) or utcnow(), spec=spec)

    async def set_cancelled(self, task_id: str) -> None:
        """Mark a task cancelled (events for it are ignored from now on)."""
        async with self._session.begin() as s:
            await s.execute(
                update(TaskRow)
                .where(TaskRow.id == task_id)
                .values(state=TaskState.CANCELLED.value, updated_at=utcnow())
            )

    async def in_flight_by_user(self) -> dict[str, int]:
        """Released, unfinished tasks per stager user."""
        q = (
            select(TaskRow.stager_user, func.count())
            .where(TaskRow.dispatched.is_(True), TaskRow.state.in_([s.value for s in IN_FLIGHT]))
            .group_by(TaskRow.stager_user)
        )
        async with self._session() as s:
            return {u: int(n) for u, n in (await s.execute(q)).all()}

    async def held_per_user(self, per_user: int, max_users: int = 1000) -> dict[str, list[Task]]:
        """Up to ``per_user`` held tasks of each user (highest priority, then oldest
        first); users ordered by their best task.  One query (a window function)."""
        held = TaskRow.dispatched.is_(False), TaskRow.state == TaskState.PENDING.value
        rank = (
            func.row_number()
            .over(
                partition_by=TaskRow.stager_user,
                order_by=(TaskRow.priority.desc(), TaskRow.created_at, TaskRow.id),
            )
            .label("rank")
        )
        inner = select(TaskRow.id, rank).where(*held).subquery()
        q = (
            select(TaskRow)
            .join(inner, inner.c.id == TaskRow.id)
            .where(inner.c.rank <= per_user)
            .order_by(TaskRow.priority.desc(), TaskRow.created_at, TaskRow.id)
        )
        out: dict[str, list[Task]] = {}
        async with self._session() as s:
            for row in (await s.execute(q)).scalars():
                if row.stager_user not in out and len(out) >= max_users:
                    continue
                out.setdefault(row.stager_user, []).append(Task.from_row(row))
        return out

    async def held(self, limit: int, *, stager_user: str | None = None) -> list[Task]:
        """Pending tasks not yet released, highest priority then oldest first."""
        q = select(TaskRow).where(
            TaskRow.dispatched.is_(False), TaskRow.state == TaskState.PENDING.value
        )
        if stager_user is not None:
            q = q.where(TaskRow.stager_user == stager_user)
        q = q.order_by(TaskRow.priority.desc(), TaskRow.created_at, TaskRow.id).limit(limit)
        async with self._session() as s:
            return [Task.from_row(r) for r in (await s.execute(q)).scalars().all()]

    async def mark_dispatched(self, ids: Sequence[str], value: bool = True) -> list[str]:
        """Claim (or un-claim) tasks for release; returns the ids actually changed."""
        if not ids:
            return []
        async with self._session.begin() as s:
            q = (
                update(TaskRow)
                .where(
                    TaskRow.id.in_(list(ids)),
                    TaskRow.dispatched.is_(not value),
                    TaskRow.state == TaskState.PENDING.value,
                )
                .values(dispatched=value)
                .returning(TaskRow.id)
            )
            return [r[0] for r in (await s.execute(q)).all()]

    async def count_by_state(self) -> dict[str, int]:
        """Number of tasks per state."""
        q = select(TaskRow.state, func.count()).group_by(TaskRow.state)
        async with self._session() as s:
            return {st: int(n) for st, n in (await s.execute(q)).all()}

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


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def is_final(state: TaskState) -> bool:
    """True for completed, archived and cancelled."""
    return state in FINAL_STATES


def older_than(hours: float) -> datetime:
    """``now - hours``."""
    return utcnow() - timedelta(hours=hours)
