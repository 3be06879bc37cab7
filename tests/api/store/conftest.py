"""Helpers for the task-store tests (and the dispatcher, retention and metrics tests that
drive a store): a service submitter, a spec, a ready store, and events to apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.api.store import TaskStore
from shared.messaging.messages import PrincipalKind, Submitter, TaskEvent, TaskSpec, TaskState

SVC = Submitter(kind=PrincipalKind.SERVICE, name="streamer")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def spec(
    user: str = "stgalice", title: str = "t", *, dst: str = "irods:/z/a", src: str = "/p/a"
) -> TaskSpec:
    return TaskSpec(title=title, stagerUser=user, drUser="u", srcURL=src, dstURL=dst)


async def make_store(url: str) -> TaskStore:
    """A store on ``url`` with its schema created; the test closes it."""
    store = TaskStore(url)
    await store.init()
    return store


def ev(task_id: str, seq: int, state: TaskState, **kw: Any) -> TaskEvent:
    """An event of attempt 1 (unless given) stamped ``T0 + seq`` seconds (unless given)."""
    kw.setdefault("attempt", 1)
    kw.setdefault("at", T0 + timedelta(seconds=seq))
    return TaskEvent(task_id=task_id, seq=seq, state=state, **kw)


async def apply(store: TaskStore, event: TaskEvent) -> bool:
    """Apply one event; True when it was newer than its row."""
    [applied] = await store.apply_events([event])
    return applied is not None
