"""Priority slots: at most N at once, priority waiters first."""

from __future__ import annotations

import asyncio

from services.worker.priority_slots import PrioritySlots


async def test_priority_waiter_gets_the_next_slot() -> None:
    slots = PrioritySlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def job(name: str, priority: bool) -> None:
        async with slots.slot(priority):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(job("first", False))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(job("bulk1", False)), asyncio.create_task(job("bulk2", False))]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(job("streamer", True)))
    await asyncio.sleep(0)
    assert slots.busy == 1 and order == ["first"]
    release.set()
    await asyncio.gather(first, *waiters)
    assert order == ["first", "streamer", "bulk1", "bulk2"]
    assert slots.busy == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    slots = PrioritySlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    slots.release()
    assert slots.busy == 0
    await asyncio.wait_for(slots.acquire(), 1)
