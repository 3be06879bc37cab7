"""The task table: its columns, how it is created and upgraded, how timestamps read back."""

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


TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
FLAGS: Table = FlagRow.__table__  # type: ignore[assignment]
#: The columns of :data:`TASKS`, for Core statements.
C = TASKS.c


def create_schema(conn: Connection) -> None:
    """Create the table if it does not exist, and add columns newer than it."""
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
