"""Event folding: apply a batch of worker TaskEvents to the task rows.

An event is applied only when it is newer than what its row has: same run, the row not
in a final state (completed, archived, cancelled: only a restart, which starts a new run,
leaves one), and a higher ``(attempt, seq)``.  So a replayed worker event, or the events
of a replayed task message, cannot flip a finished job.  A batch gives exactly the
result of applying its events one by one in order (a stale or duplicate event is void,
even after a newer one in the same batch), but costs one SELECT (rows locked on PostgreSQL) and one
executemany UPDATE per set of changed columns, whatever the number of events.  The applied
events also update the attempt history (:mod:`services.api.store.attempts`: one SELECT,
one INSERT and one UPDATE executemany at most).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.store import attempts
from services.api.store.schema import TASKS, C, aware
from services.api.store.tasks import FINAL_STATES
from shared.messaging.messages import TaskEvent, TaskSpec, TaskState, utcnow

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
    "report",
)

#: What applying events needs of each row (locked on PostgreSQL; SQLite has one writer).
_EVENT_ROWS = (
    select(
        C.id,
        C.run,
        C.attempt,
        C.seq,
        C.state,
        C.created_at,
        func.coalesce(C.direction, C.spec),
    )
    .where(C.id.in_(bindparam("ids", expanding=True)))
    .order_by(C.id)
    .with_for_update()
)


#: Stored values of the final states: a row in one of them takes no more events.
_FINAL = tuple(sorted(s.value for s in FINAL_STATES))


@functools.cache
def _event_update(cols: tuple[str, ...]) -> Update:
    """UPDATE of ``cols`` (params ``b_<col>``, ``b_id``, ``b_run``), guarded like one
    event: the row's run, not final, and older than the ``(attempt, seq)`` written."""
    return (
        update(TASKS)
        .where(
            C.id == bindparam("b_id"),
            C.run == bindparam("b_run"),
            *(C.state != final for final in _FINAL),  # not IN: executemany cannot expand
            tuple_(C.attempt, C.seq) < tuple_(bindparam("b_attempt"), bindparam("b_seq")),
        )
        .values({c: bindparam(f"b_{c}") for c in cols})
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


async def apply_events(conn: AsyncConnection, events: Sequence[TaskEvent]) -> list[Applied | None]:
    """Apply ``events`` in the transaction of ``conn``; for each, what it changed or None."""
    if not events:
        return []
    ids = sorted({ev.task_id for ev in events})
    rows = (await conn.execute(_EVENT_ROWS, {"ids": ids})).all()
    targets = {
        r[0]: _Target(
            run=r[1],
            attempt=r[2],
            seq=r[3],
            state=r[4],
            applied=Applied(created_at=aware(r[5]) or utcnow(), direction=_direction(r[6])),
        )
        for r in rows
    }
    results = [_fold(targets.get(ev.task_id), ev) for ev in events]
    history: dict[attempts.Key, dict[str, Any]] = {}
    for ev, applied in zip(events, results, strict=True):
        if applied is not None:
            attempts.fold(history, ev)
    await _write(conn, targets)
    await attempts.write(conn, history)
    return results


def _fold(t: _Target | None, ev: TaskEvent) -> Applied | None:
    """Apply ``ev`` to the in-memory row if the one-by-one rule would."""
    if (
        t is None
        or ev.run != t.run
        or t.state in _FINAL
        or (ev.attempt, ev.seq) <= (t.attempt, t.seq)
    ):
        return None
    t.attempt, t.seq, t.state = ev.attempt, ev.seq, ev.state.value
    _merge(t.values, ev)
    return t.applied


def _merge(values: dict[str, Any], ev: TaskEvent) -> None:
    """Fold one applicable event into the row's pending SET values (later wins)."""
    values.update(state=ev.state.value, attempt=ev.attempt, seq=ev.seq, updated_at=ev.at)
    if ev.progress is not None:
        values["progress"] = ev.progress.model_dump_json()
    if ev.error is not None:
        values["error"] = ev.error
    if ev.report is not None:
        values["report"] = ev.report.model_dump_json()
    if ev.state in (TaskState.RETRY, TaskState.ARCHIVED):
        values["last_failed_at"] = ev.at
    values["next_process_at"] = ev.next_at if ev.state == TaskState.RETRY else None
    if ev.state == TaskState.COMPLETED:
        values["completed_at"] = ev.at
        values["error"] = ev.error or ""


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


def _direction(direction_or_spec: str) -> str:
    """The row's direction column, or (rows older than it) the direction of its spec."""
    if direction_or_spec in ("upload", "download"):
        return direction_or_spec
    return TaskSpec.model_validate_json(direction_or_spec).direction
