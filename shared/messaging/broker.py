"""AMQP plumbing: robust connection, topology, confirmed publishing, consuming.

Topology (names in :mod:`shared.messaging.topology`):

- ``<p>.tasks`` direct exchange → quorum queues ``<p>.tasks`` (key ``normal``) and
  ``<p>.tasks.priority`` (key ``priority``), each with a delivery limit that
  dead-letters to ``<p>.tasks.dead`` (a worker that crashes on a message over
  and over does not loop forever).
- ``<p>.retry.<route>.<delay_ms>`` quorum delay queues: a message waits there
  ``delay_ms`` (queue TTL) and is dead-lettered back to the task exchange with
  its route. One queue per distinct delay gives backoff without plugins.
- ``<p>.events`` exchange → quorum queue ``<p>.events`` (worker → API).
- ``<p>.control`` fanout exchange; each worker binds its own exclusive queue.
- ``<p>.rpc.dir`` quorum queue for directory-listing requests (reply-to).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)

from shared.errors import Unavailable
from shared.messaging.topology import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_NAMES,
    ROUTE_NORMAL,
    ROUTE_PRIORITY,
    Names,
)

#: How long a directory-listing request may wait for a worker before it expires.
DIR_RPC_TTL_MS = 30_000


class BrokerError(Unavailable):
    """An AMQP operation failed."""


class PublishNacked(BrokerError):
    """The broker refused a message (basic.nack): it was not stored."""


class PublishTimeout(BrokerError):
    """No confirm arrived in time: the message may or may not be stored."""


class PublishUnroutable(BrokerError):
    """The broker returned a mandatory message: no queue is bound for it."""


async def connect(url: str, *, name: str = "stager") -> AbstractRobustConnection:
    """A robust connection: it reconnects and restores channels and consumers."""
    try:
        return await aio_pika.connect_robust(url, client_properties={"connection_name": name})
    except (OSError, aiormq.exceptions.AMQPError) as e:
        raise BrokerError(f"cannot connect to the message broker: {type(e).__name__}") from e


async def open_channel(
    connection: AbstractRobustConnection, *, prefetch: int | None = None
) -> AbstractChannel:
    """A channel with publisher confirms; ``prefetch`` sets per-consumer QoS."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    if prefetch is not None:
        await channel.set_qos(prefetch_count=prefetch)
    return channel


@dataclass(frozen=True)
class Topology:
    """What to declare; the same object is used by the API and the worker."""

    names: Names = DEFAULT_NAMES
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    retry_delays_ms: frozenset[int] = field(default_factory=frozenset)

    def task_queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.names.dead_exchange,
        }

    def queue_names(self) -> list[str]:
        """Every durable queue of this topology."""
        n = self.names
        queues = [n.dead_queue, n.tasks_queue, n.priority_queue, n.events_queue, n.dir_rpc_queue]
        for route in (ROUTE_NORMAL, ROUTE_PRIORITY):
            queues += [n.retry_queue(route, d) for d in sorted(self.retry_delays_ms)]
        return queues

    def exchange_names(self) -> list[str]:
        n = self.names
        return [n.tasks_exchange, n.dead_exchange, n.events_exchange, n.control_exchange]

    def retry_queue_arguments(self, route: str, delay_ms: int) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": self.names.tasks_exchange,
            "x-dead-letter-routing-key": route,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Declare every exchange and queue (idempotent)."""
    n = topology.names
    tasks = await channel.declare_exchange(n.tasks_exchange, ExchangeType.DIRECT, durable=True)
    dead_x = await channel.declare_exchange(n.dead_exchange, ExchangeType.FANOUT, durable=True)
    dead_q = await channel.declare_queue(
        n.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_q.bind(dead_x)
    for route in (ROUTE_NORMAL, ROUTE_PRIORITY):
        q = await channel.declare_queue(
            n.queue_for(route), durable=True, arguments=topology.task_queue_arguments()
        )
        await q.bind(tasks, routing_key=route)
        for delay in sorted(topology.retry_delays_ms):
            await channel.declare_queue(
                n.retry_queue(route, delay),
                durable=True,
                arguments=topology.retry_queue_arguments(route, delay),
            )
    events = await channel.declare_exchange(n.events_exchange, ExchangeType.DIRECT, durable=True)
    ev_q = await channel.declare_queue(
        n.events_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await ev_q.bind(events, routing_key=n.events_queue)
    await channel.declare_exchange(n.control_exchange, ExchangeType.FANOUT, durable=True)
    await channel.declare_queue(
        n.dir_rpc_queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-message-ttl": DIR_RPC_TTL_MS},
    )


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything :func:`declare_topology` made (tests clean up with it)."""
    for q in topology.queue_names():
        await channel.queue_delete(q)
    for x in topology.exchange_names():
        await channel.exchange_delete(x)


def make_message(
    body: bytes,
    *,
    message_id: str,
    type_: str,
    headers: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    expiration: float | None = None,
) -> aio_pika.Message:
    """A persistent JSON message."""
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=type_,
        headers=dict(headers or {}),
        correlation_id=correlation_id,
        reply_to=reply_to,
        expiration=expiration,
    )


async def publish(
    exchange: AbstractExchange,
    message: aio_pika.Message,
    routing_key: str,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - the confirm timeout, per attempt
    attempts: int = 3,
) -> None:
    """Publish and wait for the broker's confirm.

    A nack raises :class:`PublishNacked` at once (the broker said no; retrying
    will not help). A missing confirm is retried up to ``attempts`` times, then
    raises :class:`PublishTimeout`; consumers must tolerate the duplicate a
    retried publish may cause (task and event handling is idempotent).
    """
    for attempt in range(1, attempts + 1):
        try:
            await exchange.publish(message, routing_key, mandatory=True, timeout=timeout)
            return
        except aiormq.exceptions.PublishError as e:
            raise PublishUnroutable(f"no queue bound for {routing_key!r}") from e
        except aiormq.exceptions.DeliveryError as e:
            raise PublishNacked(f"broker refused the message for {routing_key!r}") from e
        except TimeoutError as e:
            if attempt == attempts:
                msg = f"no confirm for {routing_key!r} within {timeout}s"
                raise PublishTimeout(msg) from e
        except (aiormq.exceptions.ChannelInvalidStateError, aiormq.exceptions.ConnectionClosed):
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))


async def declare_control_queue(channel: AbstractChannel, names: Names) -> AbstractQueue:
    """This worker's own queue on the control fanout (gone when it disconnects)."""
    exchange = await channel.get_exchange(names.control_exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue


def retry_delays(delays: Iterable[float]) -> frozenset[int]:
    """Seconds → the millisecond TTLs the delay queues are declared with."""
    return frozenset(max(1, round(d * 1000)) for d in delays)
