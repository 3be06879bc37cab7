"""The worker's side of handler state: ``ingest_kv`` rows in the job store.

One row per key a handler set (``job``, ``key``, ``value`` as text), in the same database
as the jobs, so every worker sees the same values; ``incr`` is one atomic upsert. The
anchor's statistics keys of the job itself are answered from its row (read-only). A job's
keys are deleted with :meth:`JobKV.forget`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.ingest.compat.transport import Answer, Call
from services.ingest.errors import JobNotFound
from services.ingest.store import JobStore, metadata

#: in the job store's own metadata: ``JobStore.open`` creates it with the other tables
#: (under PostgreSQL's schema lock) in every process that imported this module
kv_table = sa.Table(
    "ingest_kv",
    metadata,
    sa.Column("job", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
#: key category -> what it reads from the job's row (the anchor's own statistics keys)
COUNTER_KEYS = {
    "failures": ("files_failed", "tasks_failed"),
    "retries": ("retries",),
    "tasks": ("pending",),
    "count": ("tasks_total",),
}


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(kv_table)
    if dialect == "sqlite":
        return sqlite.insert(kv_table)
    raise NotImplementedError(f"ingest job store: unsupported database {dialect!r}")


class JobKV:
    """Answers a child's :class:`Call` for a job it is running."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._ready = False

    async def _setup(self) -> None:
        """Create the table for a store opened before this module was imported."""
        if self._ready:
            return
        try:
            async with self.store.engine.begin() as conn:
                await conn.run_sync(lambda c: kv_table.create(c, checkfirst=True))
        except sa.exc.SQLAlchemyError as e:
            if "already exists" not in str(e):  # another worker created it just now
                raise
        self._ready = True

    async def _counter(self, call: Call) -> int | None:
        category, sep, ident = call.key.partition(":/")
        fields = COUNTER_KEYS.get(category)
        if not sep or fields is None or ident != call.job:
            return None
        job = await self.store.get(call.job)
        values = {**job.counters, "pending": max(job.pending, 0)}
        return sum(int(values.get(f, 0)) for f in fields)

    async def answer(self, call: Call) -> Answer:
        try:
            return await self._answer(call)
        except JobNotFound:
            return Answer(call=call.call, error=f"ingest job {call.job} does not exist")
        except (ValueError, sa.exc.SQLAlchemyError) as e:
            return Answer(call=call.call, error=f"handler state: {str(e)[:500]}")

    async def _answer(self, call: Call) -> Answer:
        await self._setup()
        t = kv_table
        if call.op == "job":
            job = await self.store.get(call.job)
            view: dict[str, Any] = {**job.counters, "pending": max(job.pending, 0)}
            view.update(
                interval=job.interval,
                started_at=job.started_at,
                finished_at=job.finished_at,
                state=job.state.value,
            )
            return Answer(call=call.call, counters=view)
        counter = await self._counter(call)
        if counter is not None:
            if call.op in ("set", "incr", "delete"):
                raise ValueError(f"{call.key} is the job's own counter: it cannot be changed")
            # as the anchor's keys: absent (None) until the first failure, retry, task
            if call.op == "exists":
                return Answer(call=call.call, number=int(counter > 0))
            return Answer(call=call.call, value=str(counter) if counter else None)
        where = sa.and_(t.c.job == call.job, t.c.key == call.key)
        async with self.store.engine.begin() as conn:
            if call.op == "get":
                value = (await conn.execute(sa.select(t.c.value).where(where))).scalar()
                return Answer(call=call.call, value=value)
            if call.op == "exists":
                found = (await conn.execute(sa.select(t.c.key).where(where))).first()
                return Answer(call=call.call, number=int(found is not None))
            if call.op == "delete":
                result = await conn.execute(sa.delete(t).where(where))
                return Answer(call=call.call, number=int(result.rowcount or 0))
            ins = _insert(conn.dialect.name)
            if call.op == "set":
                stmt = ins.values(job=call.job, key=call.key, value=call.value or "")
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.c.job, t.c.key], set_={"value": stmt.excluded.value}
                )
                await conn.execute(stmt)
                return Answer(call=call.call)
            # incr: one atomic upsert (a value that is not an integer fails, as in Redis)
            current = (await conn.execute(sa.select(t.c.value).where(where))).scalar()
            if current is not None:
                try:
                    int(current)
                except ValueError:
                    raise ValueError(f"{call.key}: value is not an integer") from None
            added = sa.cast(sa.cast(t.c.value, sa.BigInteger) + call.amount, sa.Text)
            stmt = ins.values(job=call.job, key=call.key, value=str(call.amount))
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.job, t.c.key], set_={"value": added}
            ).returning(t.c.value)
            number = (await conn.execute(stmt)).scalar()
            return Answer(call=call.call, number=int(number or 0))

    async def forget(self, job: str) -> None:
        """Delete every key of ``job``."""
        await self._setup()
        async with self.store.engine.begin() as conn:
            await conn.execute(sa.delete(kv_table).where(kv_table.c.job == job))
