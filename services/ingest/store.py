"""Ingest jobs: the model and a small SQL store every worker, the CLI and the API share.

One row per job, with counters for the current pass; nothing per file.  Workers adjust
the row with atomic ``UPDATE ... RETURNING``: each task adds its children to ``pending``
and removes itself in the same statement, so the worker that brings ``pending`` to 0 is
the only one that ends the pass (and fires ``post_job``).  A pass is started by the one
worker whose ``UPDATE ... WHERE state = 'waiting'`` succeeds (and fires ``pre_job``).

A task's counters apply at most once: the same transaction inserts the task's id into
``ingest_task_done`` (``ON CONFLICT DO NOTHING``), and only a new row lets the counters
apply, so a task redelivered after a crash counts once.  That table holds the tasks of
running passes only: a pass's rows are deleted when it ends, fails or is stopped.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.ingest.constants import DEFAULT_FILES_PER_TASK
from services.ingest.errors import JobExists, JobNotFound
from services.ingest.s3 import S3Source
from shared.sqlite import apply_pragmas

JOB_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"


class JobState(StrEnum):
    WAITING = "waiting"  # due at next_run_at (a new job, or a periodic job between passes)
    RUNNING = "running"  # next_run_at: the claim's lease, until the root task is published
    COMPLETED = "completed"
    FAILED = "failed"  # the job itself failed (bad target, bad handler); see ``error``
    STOPPED = "stopped"


ACTIVE = (JobState.WAITING, JobState.RUNNING)
FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.STOPPED)
#: A job due this many seconds ago that no worker has started gets a ``warning``.
NO_WORKER_AFTER = 30.0


class IngestOptions(BaseModel):
    """The seed's per-job options (everything but root, target, name, interval)."""

    exclude_file_type: list[str] = Field(default_factory=list)
    exclude_file_name: list[str] = Field(default_factory=list)
    exclude_directory_name: list[str] = Field(default_factory=list)
    files_per_task: int = Field(default=DEFAULT_FILES_PER_TASK, ge=1, le=10_000)
    initial_ingest: bool = False
    ignore_cache: bool = False
    checksum: bool = False
    append_json: Any = None
    #: the job's logging (the anchor's --log_*; services.ingest.joblog)
    log_level: str | None = None
    log_filename: str | None = None
    log_when: str | None = None
    log_interval: int | None = Field(default=None, ge=1)
    #: close iRODS connections idle this long (the anchor's --irods_idle_disconnect_seconds)
    irods_idle_disconnect_seconds: int = Field(default=60, ge=1)
    #: seconds each task's work (and pre_job/post_job) may take when the handler has no
    #: ``timeout`` hook (REST ``timeout``, ``--timeout``; None: 3600, the anchor's default)
    timeout: float | None = Field(default=None, gt=0)
    #: the Unix user the job's work should run as (None: the workers' default)
    owner: str | None = None
    #: an S3 source (``--s3_*``; the root is then /bucket[/prefix]); None: a directory tree
    s3: S3Source | None = None


COUNTERS = (
    "dirs",
    "files_seen",
    "files_created",
    "files_modified",
    "files_skipped",
    "files_failed",
    "files_excluded",
    "files_unreadable",
    "files_deleted",
    "bytes",
    "retries",
    "tasks_total",
    "tasks_done",
    "tasks_failed",
)


class Job(BaseModel):
    """An ingest job as stored and shown (``GET /v1/ingest/{name}``, ``stager ingest list``)."""

    name: str = Field(pattern=JOB_NAME_RE)
    root: str
    target: str
    interval: float | None = Field(default=None, gt=0)
    options: IngestOptions = Field(default_factory=IngestOptions)
    handler: str | None = Field(default=None, repr=False)
    handler_label: str | None = None
    state: JobState = JobState.WAITING
    generation: int = 0
    passes: int = 0
    pending: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    next_run_at: float | None = None
    error: str | None = None
    counters: dict[str, int] = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("target must be an absolute iRODS collection path")
        if "\x00" in v:
            raise ValueError("target contains a NUL byte: remove it")
        if v.rstrip("/") == "":
            raise ValueError("Root may only contain collections which represent zones")
        return v.rstrip("/")

    @property
    def periodic(self) -> bool:
        return self.interval is not None

    def warning(self, now: float | None = None) -> str | None:
        """Why a job that should be running is not (no ingest worker took it), else None."""
        now = time.time() if now is None else now
        if self.state is not JobState.WAITING or self.next_run_at is None:
            return None
        late = now - self.next_run_at
        if late < NO_WORKER_AFTER:
            return None
        return (
            f"due {late:.0f} s ago and not started: no ingest worker is consuming this job "
            "store's jobs (start one: python -m services.ingest with the same "
            "STAGER_INGEST__DB_URL; make up starts one)"
        )

    def anchor_view(self, now: float | None = None) -> dict[str, Any]:
        """The fields automated ingest 0.7.0's ``list`` prints for a job (``sync_job.asdict``),
        then our ``state`` (and ``error``/``warning`` when set).

        ``failed_tasks`` counts failed files and failed tasks (the anchor failed a whole
        task for a file); ``elapsed_time`` of a finished pass is its duration, not the time
        since it started; a job that never started shows the epoch as start time, as there.
        """
        now = time.time() if now is None else now
        c = self.counters
        start = self.started_at or 0.0
        elapsed = ((self.finished_at or now) - start) if start else 0.0
        if self.state is JobState.RUNNING:
            elapsed = now - start
        out: dict[str, Any] = {
            "job_name": self.name,
            "total_tasks": c.get("tasks_total", 0),
            "remaining_tasks": max(self.pending, 0) if self.state is JobState.RUNNING else 0,
            "failed_tasks": c.get("tasks_failed", 0) + c.get("files_failed", 0),
            "retried_tasks": c.get("retries", 0),
            "elapsed_time": str(datetime.timedelta(milliseconds=max(elapsed, 0.0) * 1000)),
            "start_time": datetime.datetime.fromtimestamp(start, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "state": self.state.value,
        }
        if self.error:
            out["error"] = self.error
        warning = self.warning(now)
        if warning:
            out["warning"] = warning
        return out

    def view(self) -> dict[str, Any]:
        """The public JSON (no handler source), with the anchor's ``list`` fields too."""
        data = self.model_dump(mode="json", exclude={"handler"})
        data.update({k: v for k, v in self.anchor_view().items() if k not in data})
        c = self.counters
        done = sum(c.get(k, 0) for k in ("files_created", "files_modified", "files_skipped"))
        data["progress"] = {
            "files_done": done,
            "files_failed": c.get("files_failed", 0),
            "files_seen": c.get("files_seen", 0),
            "tasks_remaining": max(self.pending, 0),
            "elapsed": (
                (self.finished_at or time.time()) - self.started_at if self.started_at else 0.0
            ),
        }
        return data


metadata = sa.MetaData()
jobs_table = sa.Table(
    "ingest_jobs",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("root", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("interval", sa.Float, nullable=True),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("handler", sa.Text, nullable=True),
    sa.Column("handler_label", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, default=0),
    sa.Column("passes", sa.Integer, nullable=False, default=0),
    sa.Column("pending", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("next_run_at", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    *(sa.Column(c, sa.BigInteger, nullable=False, default=0) for c in COUNTERS),
)
_ZERO = dict.fromkeys(COUNTERS, 0)
#: Seconds a worker that claimed a pass has to publish its root task (renewed while
#: pre_job runs); after that the pass counts as stalled and another worker starts it.
CLAIM_LEASE = 60.0
#: PostgreSQL advisory lock held while the tables are created (any fixed 64-bit number)
_SCHEMA_LOCK = 0x5354_4749_4E47
#: Tasks of running passes whose counters were applied (deleted when the pass ends).
done_table = sa.Table(
    "ingest_task_done",
    metadata,
    sa.Column("job", sa.String(128), primary_key=True),
    sa.Column("generation", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.String(64), primary_key=True),
    #: How many child tasks the task added to ``pending``.
    sa.Column("children", sa.Integer, nullable=False, default=0),
    #: Whether those children were published (a crash in between means: publish again).
    sa.Column("published", sa.Boolean, nullable=False, default=True),
)


#: What each job last synced of each file and directory: ``(size, mtime_ns, ctime_ns,
#: inode)`` by directory (a digest of its path's bytes) and name (the bytes as on disk).
#: Written only when a state changed; a directory's rows are read once per directory task.
entries_table = sa.Table(
    "ingest_entries",
    metadata,
    sa.Column("job", sa.String(128), primary_key=True),
    sa.Column("dir", sa.String(40), primary_key=True),
    sa.Column("name", sa.LargeBinary, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("ctime_ns", sa.BigInteger, nullable=False),
    sa.Column("ino", sa.BigInteger, nullable=False),
)
#: Rows per INSERT (SQLite limits the variables of one statement).
_ENTRY_CHUNK = 500


def dir_key(path: str) -> str:
    """The ``dir`` column of a directory: SHA-1 of its path's bytes (any length, any bytes)."""
    return hashlib.sha1(os.fsencode(path), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One entry's recorded state; ``stat`` None: forget the entry (it is gone)."""

    dir: str  # the directory's path, as ``os`` gives it
    name: str  # the entry's name, as ``os`` gives it
    stat: tuple[int, int, int, int] | None  # size, mtime_ns, ctime_ns, ino


@dataclass(frozen=True)
class TaskDone:
    """A task's row in ``ingest_task_done`` and the pass's ``pending`` after it."""

    applied: bool  # True: this call applied the counters; False: an earlier delivery did
    pending: int
    children: int
    published: bool


def _row_to_job(row: Any) -> Job:
    m = row._mapping
    return Job(
        name=m["name"],
        root=m["root"],
        target=m["target"],
        interval=m["interval"],
        options=IngestOptions.model_validate_json(m["options"]),
        handler=m["handler"],
        handler_label=m["handler_label"],
        state=JobState(m["state"]),
        generation=m["generation"],
        passes=m["passes"],
        pending=m["pending"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        next_run_at=m["next_run_at"],
        error=m["error"],
        counters={c: int(m[c]) for c in COUNTERS},
    )


def next_tick(created_at: float, interval: float, now: float) -> float:
    """The first tick (``created_at + k * interval``) strictly after ``now``."""
    k = math.floor((now - created_at) / interval) + 1
    return created_at + max(k, 1) * interval


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so processes can share it."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            import os

            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o700, exist_ok=True)
            # the store holds handler source and job roots: never world-readable (the
            # WAL and shm files SQLite creates take the database file's mode)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                if os.fstat(fd).st_uid == os.geteuid():
                    os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
    engine = create_async_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite"):
        sa.event.listen(engine.sync_engine, "connect", apply_pragmas)
    return engine


def _starting(name: str, generation: int) -> tuple[Any, ...]:
    """The pass ``generation`` of ``name`` is running and its root task not published."""
    t = jobs_table
    return (
        t.c.name == name,
        t.c.generation == generation,
        t.c.state == JobState.RUNNING,
        t.c.next_run_at.is_not(None),
    )


def _lease_ended(now: float) -> tuple[Any, ...]:
    """A running pass whose claim's lease ended and none of whose tasks was done (a pass
    with a done task has started, whatever ``next_run_at`` says)."""
    t, d = jobs_table, done_table
    any_task = (
        sa.select(d.c.task_id)
        .where(d.c.job == t.c.name, d.c.generation == t.c.generation, ~d.c.task_id.startswith(":"))
        .exists()
    )
    return (
        t.c.state == JobState.RUNNING,
        t.c.next_run_at.is_not(None),
        t.c.next_run_at <= now,
        ~any_task,
    )


def _insert_ignore(conn: AsyncConnection, values: list[dict[str, Any]]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``ingest_task_done`` (SQLite, PostgreSQL)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(done_table).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(done_table).values(values).on_conflict_do_nothing()
    raise NotImplementedError(f"ingest job store: unsupported database {dialect!r}")


async def _write_entries(conn: AsyncConnection, job: str, rows: Sequence[EntryRow]) -> None:
    """Upsert the states of ``rows`` (delete, then insert) and delete the forgotten ones."""
    e = entries_table
    keyed = {(dir_key(r.dir), os.fsencode(r.name)): r.stat for r in rows}
    keys = list(keyed)
    for i in range(0, len(keys), _ENTRY_CHUNK):
        chunk = keys[i : i + _ENTRY_CHUNK]
        by_dir: dict[str, list[bytes]] = {}
        for d, n in chunk:
            by_dir.setdefault(d, []).append(n)
        for d, names in by_dir.items():
            await conn.execute(
                sa.delete(e).where(e.c.job == job, e.c.dir == d, e.c.name.in_(names))
            )
        values = [
            {
                "job": job,
                "dir": d,
                "name": n,
                "size": st[0],
                "mtime_ns": st[1],
                "ctime_ns": st[2],
                "ino": st[3],
            }
            for d, n in chunk
            if (st := keyed[(d, n)]) is not None
        ]
        if values:
            await conn.execute(sa.insert(e), values)


def _forget(name: str, generation: int | None = None) -> Any:
    """Delete the done-task rows of a job (of one pass, or of every pass)."""
    d = done_table
    stmt = sa.delete(d).where(d.c.job == name)
    return stmt if generation is None else stmt.where(d.c.generation == generation)


class JobStore:
    """Job rows: create, read, claim a pass, apply deltas, finish, stop."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str) -> JobStore:
        store = cls(make_engine(url))
        async with store.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # the API, the ingest workers and the CLI may open a new store at once, and
                # racing CREATE TABLEs fail (duplicate pg_type rows): they take turns
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            await conn.run_sync(metadata.create_all)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def create(self, job: Job, now: float | None = None) -> Job:
        """Insert a job due now; a finished job by the same name is replaced."""
        now = time.time() if now is None else now
        values = {
            "name": job.name,
            "root": job.root,
            "target": job.target,
            "interval": job.interval,
            "options": job.options.model_dump_json(),
            "handler": job.handler,
            "handler_label": job.handler_label,
            "state": JobState.WAITING.value,
            "generation": 0,
            "passes": 0,
            "pending": 0,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "next_run_at": now,
            "error": None,
            **_ZERO,
        }
        t = jobs_table
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(t.c.state).where(t.c.name == job.name))).first()
            if row is not None:
                if row.state in ACTIVE:
                    raise JobExists(f"ingest job {job.name!r} already exists and is active")
                # keep the generation moving so stale messages of the old job are dropped
                old = (
                    await conn.execute(sa.select(t.c.generation).where(t.c.name == job.name))
                ).scalar_one()
                values["generation"] = int(old) + 1
                await conn.execute(sa.delete(t).where(t.c.name == job.name))
                await conn.execute(_forget(job.name))
                # what the old job synced is this job's too (same name: run again)
            await conn.execute(sa.insert(t).values(**values))
        return await self.get(job.name)

    async def get(self, name: str) -> Job:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(jobs_table).where(jobs_table.c.name == name))
            ).first()
        if row is None:
            raise JobNotFound(f"no ingest job named {name!r}")
        return _row_to_job(row)

    async def list_jobs(self) -> list[Job]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(jobs_table).order_by(jobs_table.c.created_at))
            ).all()
        return [_row_to_job(r) for r in rows]

    async def current(self, name: str, generation: int) -> bool:
        """True while the pass ``generation`` of ``name`` is running (else drop its work)."""
        t = jobs_table
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(t.c.generation, t.c.state).where(t.c.name == name))
            ).first()
        return row is not None and row.generation == generation and row.state == JobState.RUNNING

    async def due(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.c.name).where(t.c.state == JobState.WAITING, t.c.next_run_at <= now)
            )
            return [r.name for r in rows]

    async def claim(
        self, name: str, now: float | None = None, lease: float = CLAIM_LEASE
    ) -> Job | None:
        """Start a pass if the job is due and nobody else started it; counters reset.

        The claiming worker then has ``lease`` seconds (``next_run_at``, renewed while
        pre_job runs) to publish the pass's root task (:meth:`started`); a pass whose
        lease ran out is :meth:`stalled` and another worker starts it again."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t)
                .where(t.c.name == name, t.c.state == JobState.WAITING, t.c.next_run_at <= now)
                .values(
                    state=JobState.RUNNING.value,
                    generation=t.c.generation + 1,
                    passes=t.c.passes + 1,
                    pending=1,
                    started_at=now,
                    finished_at=None,
                    next_run_at=now + lease,
                    error=None,
                    **{**_ZERO, "tasks_total": 1},
                )
            )
            if res.rowcount != 1:
                return None
            await conn.execute(_forget(name))
        return await self.get(name)

    async def renew_claim(
        self, name: str, generation: int, now: float | None = None, lease: float = CLAIM_LEASE
    ) -> bool:
        """Extend the lease of a pass still starting (False: started, ended or stopped)."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t).where(*_starting(name, generation)).values(next_run_at=now + lease)
            )
        return res.rowcount == 1

    async def started(self, name: str, generation: int) -> None:
        """The pass's root task is published: no other worker starts it again."""
        t = jobs_table
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t).where(*_starting(name, generation)).values(next_run_at=None)
            )

    async def stalled(self, now: float | None = None) -> list[str]:
        """Running jobs whose pass was claimed but not started within its lease (the
        claiming worker died between the claim and publishing the root task)."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(t.c.name).where(*_lease_ended(now)))
            return [r.name for r in rows]

    async def reclaim(
        self, name: str, now: float | None = None, lease: float = CLAIM_LEASE
    ) -> Job | None:
        """Take over a stalled pass (same generation, counters kept) if nobody else did."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t)
                .where(t.c.name == name, *_lease_ended(now))
                .values(next_run_at=now + lease)
            )
        return await self.get(name) if res.rowcount == 1 else None

    async def mark(self, name: str, generation: int, step: str) -> None:
        """Record that ``step`` (e.g. ``pre_job``) of this pass was done (once per pass)."""
        row = {
            "job": name,
            "generation": generation,
            "task_id": f":{step}",
            "children": 0,
            "published": True,
        }
        async with self.engine.begin() as conn:
            await conn.execute(_insert_ignore(conn, [row]))

    async def marked(self, name: str, generation: int, step: str) -> bool:
        d = done_table
        async with self.engine.connect() as conn:
            row = await conn.execute(
                sa.select(d.c.task_id).where(
                    d.c.job == name, d.c.generation == generation, d.c.task_id == f":{step}"
                )
            )
            return row.first() is not None

    async def complete(
        self,
        name: str,
        generation: int,
        task_id: str,
        children: int = 0,
        entries: Sequence[EntryRow] = (),
        **counters: int,
    ) -> TaskDone | None:
        """Record a finished task and apply its deltas, once per ``task_id``.

        ``pending`` moves by ``children - 1``.  A second call for the same task (a
        redelivery) applies nothing and reports the first call's row.  None: the pass
        is not running any more.  ``entries``: the states this task synced (or saw
        gone), written in the same transaction.
        """
        t, d = jobs_table, done_table
        row = {
            "job": name,
            "generation": generation,
            "task_id": task_id,
            "children": children,
            "published": children == 0,
        }
        values: dict[str, Any] = {c: t.c[c] + v for c, v in counters.items() if v}
        values["pending"] = t.c.pending + (children - 1)
        running = (t.c.name == name, t.c.generation == generation, t.c.state == JobState.RUNNING)
        async with self.engine.begin() as conn:
            inserted = (await conn.execute(_insert_ignore(conn, [row]))).rowcount == 1
            if inserted:
                new = (
                    await conn.execute(
                        sa.update(t).where(*running).values(**values).returning(t.c.pending)
                    )
                ).first()
                if new is None:
                    await conn.rollback()
                    return None
                if entries:
                    await _write_entries(conn, name, entries)
                return TaskDone(True, int(new.pending), children, children == 0)
            pending = (await conn.execute(sa.select(t.c.pending).where(*running))).first()
            if pending is None:
                return None
            done = (
                await conn.execute(
                    sa.select(d.c.children, d.c.published).where(
                        d.c.job == name, d.c.generation == generation, d.c.task_id == task_id
                    )
                )
            ).one()
        return TaskDone(False, int(pending.pending), int(done.children), bool(done.published))

    async def task_done(self, name: str, generation: int, task_id: str) -> TaskDone | None:
        """The task's row if its counters were applied (and ``pending`` now), else None."""
        t, d = jobs_table, done_table
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(d.c.children, d.c.published, t.c.pending)
                    .join(t, t.c.name == d.c.job)
                    .where(d.c.job == name, d.c.generation == generation, d.c.task_id == task_id)
                )
            ).first()
        if row is None:
            return None
        return TaskDone(False, int(row.pending), int(row.children), bool(row.published))

    async def published(self, name: str, generation: int, task_id: str) -> None:
        """A task's children are all published (a redelivery need not publish them again)."""
        d = done_table
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(d)
                .where(d.c.job == name, d.c.generation == generation, d.c.task_id == task_id)
                .values(published=True)
            )

    async def lost(self, name: str, generation: int, task_ids: Iterable[str]) -> int | None:
        """Child tasks that could not be published: done (failed) now; returns ``pending``."""
        t = jobs_table
        rows = [
            {"job": name, "generation": generation, "task_id": i, "children": 0, "published": True}
            for i in task_ids
        ]
        running = (t.c.name == name, t.c.generation == generation, t.c.state == JobState.RUNNING)
        async with self.engine.begin() as conn:
            n = (await conn.execute(_insert_ignore(conn, rows))).rowcount if rows else 0
            new = (
                await conn.execute(
                    sa.update(t)
                    .where(*running)
                    .values(pending=t.c.pending - n, tasks_failed=t.c.tasks_failed + n)
                    .returning(t.c.pending)
                )
            ).first()
            if new is None:
                await conn.rollback()
                return None
        return int(new.pending)

    async def finish_pass(
        self, name: str, generation: int, now: float | None = None, error: str | None = None
    ) -> Job | None:
        """End a pass: a periodic job waits for its next tick (ticks that passed are skipped).
        ``error``: why the pass did not end cleanly (post_job failed), shown as the job's."""
        now = time.time() if now is None else now
        job = await self.get(name)
        if job.generation != generation or job.state != JobState.RUNNING:
            return None
        if job.periodic:
            assert job.interval is not None
            values: dict[str, Any] = {
                "state": JobState.WAITING.value,
                "next_run_at": next_tick(job.created_at, job.interval, now),
            }
        else:
            values = {"state": JobState.COMPLETED.value, "next_run_at": None}
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t)
                .where(
                    t.c.name == name, t.c.generation == generation, t.c.state == JobState.RUNNING
                )
                .values(finished_at=now, **values, **({"error": error[:2000]} if error else {}))
            )
            if res.rowcount == 1:
                await conn.execute(_forget(name, generation))
        return await self.get(name) if res.rowcount == 1 else None

    async def fail(self, name: str, generation: int, error: str, now: float | None = None) -> bool:
        """The job itself cannot go on (bad target, bad handler): it stops with ``error``."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t)
                .where(
                    t.c.name == name, t.c.generation == generation, t.c.state == JobState.RUNNING
                )
                .values(
                    state=JobState.FAILED.value,
                    error=error[:2000],
                    finished_at=now,
                    next_run_at=None,
                )
            )
            if res.rowcount == 1:
                await conn.execute(_forget(name, generation))
        return res.rowcount == 1

    async def stop(self, name: str, now: float | None = None) -> Job:
        """Stop a job: its queued work is dropped by the workers (the generation moves on)."""
        now = time.time() if now is None else now
        t = jobs_table
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(t)
                .where(t.c.name == name, t.c.state.in_([s.value for s in ACTIVE]))
                .values(
                    state=JobState.STOPPED.value,
                    generation=t.c.generation + 1,
                    next_run_at=None,
                    finished_at=now,
                )
            )
            if res.rowcount == 1:
                await conn.execute(_forget(name))
        if res.rowcount != 1:
            await self.get(name)  # raises JobNotFound for an unknown name
        return await self.get(name)

    async def delete(self, name: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(jobs_table).where(jobs_table.c.name == name))
            await conn.execute(_forget(name))
            await conn.execute(sa.delete(entries_table).where(entries_table.c.job == name))

    async def purge(self, retention: float, now: float | None = None) -> list[str]:
        """Delete jobs finished (completed, failed, stopped) more than ``retention`` seconds
        ago, with what they recorded; 0: keep every job.  Returns the names removed."""
        if retention <= 0:
            return []
        now = time.time() if now is None else now
        t = jobs_table
        old = (
            t.c.state.in_([s.value for s in FINISHED]),
            t.c.finished_at.is_not(None),
            t.c.finished_at < now - retention,
        )
        async with self.engine.begin() as conn:
            names = [r.name for r in await conn.execute(sa.select(t.c.name).where(*old))]
            for chunk in range(0, len(names), _ENTRY_CHUNK):
                some = names[chunk : chunk + _ENTRY_CHUNK]
                await conn.execute(sa.delete(t).where(t.c.name.in_(some), *old))
                await conn.execute(sa.delete(done_table).where(done_table.c.job.in_(some)))
                await conn.execute(sa.delete(entries_table).where(entries_table.c.job.in_(some)))
        return names

    async def entries(
        self, name: str, directory: str
    ) -> tuple[dict[str, tuple[int, int, int, int]], tuple[int, int, int, int] | None]:
        """What job ``name`` recorded of the entries of ``directory`` (by name), and of the
        directory itself (its row in its parent)."""
        e = entries_table
        parent, base = os.path.split(directory.rstrip("/") or "/")
        inside, own = dir_key(directory), dir_key(parent)
        cols = (e.c.dir, e.c.name, e.c.size, e.c.mtime_ns, e.c.ctime_ns, e.c.ino)
        query = sa.select(*cols).where(
            e.c.job == name,
            sa.or_(e.c.dir == inside, sa.and_(e.c.dir == own, e.c.name == os.fsencode(base))),
        )
        known: dict[str, tuple[int, int, int, int]] = {}
        itself = None
        async with self.engine.connect() as conn:
            for r in await conn.execute(query):
                stat = (int(r.size), int(r.mtime_ns), int(r.ctime_ns), int(r.ino))
                if r.dir == inside:
                    known[os.fsdecode(bytes(r.name))] = stat
                else:
                    itself = stat
        return known, itself
