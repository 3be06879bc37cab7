"""The worker's heartbeat over real RabbitMQ: a signed status with its running children
reaches an API-side board; its last beat (stopping) removes it; a beat signed by another
role is dropped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from services.api.admin.workers import HeartbeatBoard
from services.worker.heartbeat import Heartbeat
from shared.messaging.signing import Gate, Role
from shared.messaging.topology import (
    Names,
    Topology,
    declare_heartbeat_queue,
    declare_topology,
    delete_topology,
)
from tests.conftest import signing_key_set


@pytest.fixture
async def wired(amqp_url: str, unique_prefix: str) -> AsyncIterator[tuple[Any, ...]]:
    names = Names(unique_prefix)
    conn = await aio_pika.connect_robust(amqp_url)
    channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
    await declare_topology(channel, Topology(names=names))
    rejected: list[tuple[str, str]] = []
    gate = Gate(
        signing_key_set().settings(Role.API).verifier(Role.WORKER),
        lambda t, r: rejected.append((t, r)),
    )
    board = HeartbeatBoard(gate)
    queue = await declare_heartbeat_queue(channel, names)
    await queue.consume(board.on_message, no_ack=True)
    exchange = await channel.get_exchange(names.workers_exchange)
    yield board, exchange, rejected
    await delete_topology(channel, Topology(names=names))
    await conn.close()


async def until(check: Any) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_beats_reach_the_board_and_stopping_clears_it(wired: tuple[Any, ...]) -> None:
    board, exchange, rejected = wired
    children = [("task-1", os.getpid(), 0.0)]
    hb = Heartbeat(
        exchange, signing_key_set().signer(Role.WORKER), slots=3, running=lambda: children
    )
    hb.start()
    await until(lambda: len(board.workers()) == 1)
    [(status, _age)] = board.workers()
    assert status.worker_id == hb.worker_id and status.slots == 3
    assert [(c.task_id, c.pid) for c in status.running] == [("task-1", os.getpid())]
    await hb.stop()
    await until(lambda: board.workers() == [])
    assert rejected == []


async def test_a_beat_not_signed_by_a_worker_is_dropped(wired: tuple[Any, ...]) -> None:
    board, exchange, rejected = wired
    hb = Heartbeat(exchange, signing_key_set().signer(Role.API), slots=1, running=list)
    await hb.beat()
    await until(lambda: rejected == [("stager.heartbeat", "role")])
    assert board.workers() == []


def test_a_silent_worker_ages_out() -> None:
    board = HeartbeatBoard(Gate(signing_key_set().settings(Role.API).verifier(), lambda *a: None))
    hb = Heartbeat(None, signing_key_set().signer(Role.WORKER), slots=1, running=list)  # type: ignore[arg-type]
    board.record(hb.status(), now=100.0)
    assert len(board.workers(now=100.0 + hb.interval * 3)) == 1
    assert board.workers(now=100.0 + hb.interval * 3 + 1) == []
