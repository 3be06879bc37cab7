"""The task, attempt and flag tables: their columns, how they are created and upgraded, how
timestamps read back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, Connection, DateTime, Integer, String, Table, Text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    #: When the owner deleted the finished task (DELETE): kept, hidden from the lists,
    #: until retention purges it.  NULL: not deleted.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The last attempt's ``TaskReport`` JSON (failed files, checksum result, dry-run
    #: plan); NULL until a worker reports one, and again after a restart.
    report: Mapped[str | None] = mapped_column(Text, nullable=True)


class FlagRow(Base):
    """A cluster-wide switch every API replica reads (e.g. ``intake``: paused by an
    administrator); ``value`` is JSON."""

    __tablename__ = "stager_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttemptRow(Base):
    """One attempt of one run of a task, as its worker's events told it: who ran it, when,
    and how it ended.  Written with the task's events (``events``); a table created
    beside an older store by :func:`create_schema` starts empty (earlier attempts are in
    the logs only); purged with its task."""

    __tablename__ = "stager_attempts"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: hostname:pid of the worker that sent the latest event of the attempt
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: the first ``active`` event (NULL: none seen, e.g. archived from the dead letters)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: retry / archived / completed / cancelled; NULL while it runs
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]
ATTEMPTS: Table = AttemptRow.__table__  # type: ignore[assignment]
#: The columns of :data:`TASKS`, for Core statements.
C = TASKS.c


#: PostgreSQL advisory lock held while the table is created or upgraded (any fixed 64-bit
#: number; the ingest store uses its own)
SCHEMA_LOCK = 0x5354_4741_5049


def create_schema(conn: Connection) -> None:
    """Create the tables that do not exist (a store older than a table gets it empty), and
    add columns newer than the task table."""
    Base.metadata.create_all(conn)
    _add_missing_columns(conn)


def _add_missing_columns(conn: Connection) -> None:
    """Add columns that came after a table was created (nullable; no data migration)."""
    have = {c["name"] for c in sa_inspect(conn).get_columns(TASKS.name)}
    sqlite = conn.dialect.name == "sqlite"
    guard = "" if sqlite else "IF NOT EXISTS "
    later = {
        "direction": "VARCHAR(8)",
        "deleted_at": "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE",
        "report": "TEXT",
    }
    for name, sql_type in later.items():
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE {TASKS.name} ADD COLUMN {guard}{name} {sql_type}")


def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp in UTC (SQLite gives them back without a time zone)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
