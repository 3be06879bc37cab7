"""AMQP plumbing on the real broker: topology, confirms (nack vs timeout), delay, limit."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shared.messaging import broker
from shared.messaging.topology import ROUTE_NORMAL, ROUTE_PRIORITY, Topology, declare_topology


async def _get(queue, limit: float = 10.0):
    async with asyncio.timeout(limit):
        while True:
            msg = await queue.get(fail=False)
            if msg is not None:
                return msg
            await asyncio.sleep(0.02)


async def _queue_types(prefix: str) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "--formatter",
        "json",
        "list_queues",
        "name",
        "type",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return {q["name"]: q["type"] for q in json.loads(out) if q["name"].startswith(prefix + ".")}


async def test_topology_is_quorum_queues_and_idempotent(amqp) -> None:
    topo = Topology(names=amqp.names, retry_delays_ms=frozenset({100, 400}))
    amqp.topologies.append(topo)
    await declare_topology(amqp.channel, topo)
    await declare_topology(amqp.channel, topo)  # again: no PRECONDITION_FAILED
    n = amqp.names
    types = await _queue_types(n.prefix)
    expected = {
        n.tasks_queue,
        n.priority_queue,
        n.dead_queue,
        n.events_queue,
        n.dir_rpc_queue,
        n.retry_queue(ROUTE_NORMAL, 100),
        n.retry_queue(ROUTE_PRIORITY, 400),
    }
    assert expected <= set(types)
    assert {types[q] for q in expected} == {"quorum"}


async def test_publish_confirmed_persistent_and_routed(amqp) -> None:
    topo = Topology(names=amqp.names)
    await declare_topology(amqp.channel, topo)
    x = await amqp.channel.get_exchange(amqp.names.tasks_exchange)
    await broker.publish(x, broker.make_message(b"{}", message_id="m1", type_="t"), ROUTE_PRIORITY)
    got = await _get(await amqp.channel.get_queue(amqp.names.priority_queue))
    assert got.message_id == "m1" and got.delivery_mode == 2
    await got.ack()


async def test_nack_and_unroutable_and_timeout_are_distinct(amqp) -> None:
    name = amqp.names.prefix + ".full"
    queue = await amqp.channel.declare_queue(
        name, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}, auto_delete=True
    )
    x = amqp.channel.default_exchange
    await broker.publish(x, broker.make_message(b"1", message_id="a", type_="t"), name)
    with pytest.raises(broker.PublishNacked):  # the broker said no: not stored
        await broker.publish(x, broker.make_message(b"2", message_id="b", type_="t"), name)
    with pytest.raises(broker.PublishUnroutable):
        await broker.publish(x, broker.make_message(b"3", message_id="c", type_="t"), name + "x")
    with pytest.raises(broker.PublishTimeout):  # no confirm in time: maybe stored
        await broker.publish(
            x,
            broker.make_message(b"4", message_id="d", type_="t"),
            name + ".nowhere",
            timeout=1e-6,
            attempts=2,
        )
    await queue.delete(if_unused=False, if_empty=False)


async def test_delay_queue_dead_letters_back_after_its_ttl(amqp) -> None:
    topo = Topology(names=amqp.names, retry_delays_ms=frozenset({300}))
    amqp.topologies.append(topo)
    await declare_topology(amqp.channel, topo)
    t0 = time.monotonic()
    await broker.publish(
        amqp.channel.default_exchange,
        broker.make_message(b"{}", message_id="r1", type_="t"),
        amqp.names.retry_queue(ROUTE_PRIORITY, 300),
    )
    got = await _get(await amqp.channel.get_queue(amqp.names.priority_queue))
    waited = time.monotonic() - t0
    assert got.message_id == "r1" and 0.28 <= waited < 5
    assert got.headers["x-first-death-reason"] == "expired"
    await got.ack()


async def test_delivery_limit_dead_letters_a_poison_message(amqp) -> None:
    topo = Topology(names=amqp.names, delivery_limit=1)
    await declare_topology(amqp.channel, topo)
    x = await amqp.channel.get_exchange(amqp.names.tasks_exchange)
    await broker.publish(x, broker.make_message(b"{}", message_id="p", type_="t"), ROUTE_NORMAL)
    tasks = await amqp.channel.get_queue(amqp.names.tasks_queue)
    for _ in range(2):  # a worker dies holding it, twice
        msg = await _get(tasks)
        await msg.nack(requeue=True)
    dead = await _get(await amqp.channel.get_queue(amqp.names.dead_queue))
    assert dead.message_id == "p"
    await dead.ack()
    assert await tasks.get(fail=False) is None
