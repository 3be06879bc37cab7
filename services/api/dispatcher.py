"""Fair release of held tasks to RabbitMQ.

New tasks wait in the store (``pending``, not dispatched).  The dispatcher releases them
round-robin by stager user, never more than ``max_in_flight_per_user`` of one user in
flight (released and not finished; default 2, to be kept below the worker pool's slots),
so one user's thousand jobs cannot hold every worker slot and another user's one job is
released next to them, not after them.  With ``max_in_flight`` (the pool's slots, 0 = no
total cap) the broker queue holds no more than the workers can run, so the release order
is the run order; the users with the fewest tasks in flight get the room first.
Service-account (streamer) tasks carry a higher priority: they are released first and
routed to the priority queue, which workers prefer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, Field

from services.api.store import Task, TaskStore
from shared.logging import get_logger
from shared.messaging.messages import TaskMessage

log = get_logger("stager.dispatcher")

Publish = Callable[[TaskMessage], Awaitable[None]]


class DispatchSettings(BaseModel):
    """Release policy."""

    max_in_flight_per_user: int = Field(
        default=2,
        ge=1,
        description="released, unfinished tasks of one stager user; keep it below the "
        "worker slots so no user can hold them all",
    )
    max_in_flight: int = Field(
        default=0,
        ge=0,
        description="released, unfinished tasks in all (the workers' slots); 0: no total cap",
    )
    max_users_per_round: int = Field(default=1000, ge=1)
    interval: float = Field(default=2.0, gt=0, description="seconds between idle sweeps")
    publish_concurrency: int = Field(default=64, ge=1)
    debounce: float = Field(
        default=0.02, ge=0, description="seconds to gather a burst of wake-ups into one round"
    )


def round_robin(
    per_user: dict[str, list[Task]], room: dict[str, int], total: int | None = None
) -> list[Task]:
    """Interleave users' tasks one per user per round, up to each user's room, and at
    most ``total`` in all (None: no total cap).

    ``per_user`` is ordered (the users to serve first first); the result is stable-sorted
    by priority so higher-priority tasks are released first.  The total cut is made
    after the interleaving and the sort: what it drops goes to the users later in turn."""
    queues = {u: list(ts) for u, ts in per_user.items()}
    left = dict(room)
    out: list[Task] = []
    progressed = True
    while progressed:
        progressed = False
        for user, tasks in queues.items():
            if tasks and left.get(user, 0) > 0:
                out.append(tasks.pop(0))
                left[user] -= 1
                progressed = True
    out.sort(key=lambda t: -t.priority)
    return out if total is None else out[: max(0, total)]


class Dispatcher:
    """Releases held tasks; call ``wake()`` when a task is added or finishes."""

    def __init__(self, store: TaskStore, publish: Publish, settings: DispatchSettings) -> None:
        self.store = store
        self.publish = publish
        self.settings = settings
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        """Ask for a release round soon."""
        self._wake.set()

    async def run_once(self) -> int:
        """One release round; returns how many tasks were published."""
        async with self._lock:
            limit = self.settings.max_in_flight_per_user

            def choose(in_flight: dict[str, int], per_user: dict[str, list[Task]]) -> list[Task]:
                room = {u: limit - in_flight.get(u, 0) for u in per_user}
                # fewest in flight first (stable: then by their best held task)
                order = sorted(per_user, key=lambda u: in_flight.get(u, 0))
                total: int | None = None
                if self.settings.max_in_flight:
                    total = self.settings.max_in_flight - sum(in_flight.values())
                return round_robin({u: per_user[u] for u in order}, room, total)

            todo = await self.store.release_round(limit, self.settings.max_users_per_round, choose)
            if not todo:
                return 0
            sem = asyncio.Semaphore(self.settings.publish_concurrency)

            async def one(task: Task) -> str | None:
                async with sem:
                    try:
                        await self.publish(task.message())
                        return None
                    except Exception as e:
                        log.error("release failed", task_id=task.id, error=type(e).__name__)
                        return task.id

            failed = [i for i in await asyncio.gather(*(one(t) for t in todo)) if i]
            if failed:
                await self.store.mark_dispatched(failed, value=False)
            return len(todo) - len(failed)

    async def run(self) -> None:
        """Release forever: on wake-up, or every ``interval`` seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.interval)
            if self.settings.debounce:
                await asyncio.sleep(self.settings.debounce)
            self._wake.clear()
            try:
                await self.run_once()
            except Exception as e:  # keep releasing after a transient store/broker error
                log.error("dispatch round failed", error=type(e).__name__, detail=str(e)[:200])
                await asyncio.sleep(min(self.settings.interval, 1.0))
