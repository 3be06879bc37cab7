"""Every AMQP exchange and queue: its name, its arguments and its declaration, in one place.

Names derive from one prefix (``stager`` in production) so tests can run a whole private
topology side by side with others on one broker. The API, the transfer workers, the ingest
workers and ``make up --ephemeral``'s clean-up all use :class:`Topology`, so they cannot
drift apart:

- ``<p>.tasks`` direct exchange → quorum queues ``<p>.tasks`` (key ``normal``) and
  ``<p>.tasks.priority`` (key ``priority``), each with a delivery limit that dead-letters
  to ``<p>.tasks.dead`` (a worker that crashes on a message over and over does not loop).
- ``<p>.retry.<route>.<delay_ms>`` quorum delay queues: a message waits there ``delay_ms``
  (queue TTL) and is dead-lettered back to the task exchange with its route. One queue per
  distinct delay gives backoff without plugins.
- ``<p>.events`` exchange → quorum queue ``<p>.events`` (worker → API).
- ``<p>.control`` fanout exchange; each worker binds its own exclusive queue.
- ``<p>.workers`` fanout exchange: worker status heartbeats; each API replica binds its
  own exclusive queue whose messages expire (only the latest beat matters).
- ``<p>.rpc.dir`` quorum queue for directory-listing requests (reply-to).
- ``<p>.ingest.dirs`` and ``<p>.ingest.files`` quorum queues (default exchange) for
  ingest directory tasks and file-batch/delete tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractQueue, ExchangeType

DEFAULT_PREFIX = "stager"

#: Routing keys on the task exchange.
ROUTE_NORMAL = "normal"
ROUTE_PRIORITY = "priority"

#: Message type names (AMQP ``type`` property).
TYPE_TASK = "stager.task"
TYPE_EVENT = "stager.event"
TYPE_CONTROL = "stager.control"
TYPE_DIRLIST = "stager.dirlist"
TYPE_INGEST = "stager.ingest"
TYPE_HEARTBEAT = "stager.heartbeat"

#: Seconds between a worker's status heartbeats; the API forgets a worker after
#: :data:`HEARTBEAT_MISSED` intervals without one.
HEARTBEAT_INTERVAL = 15.0
HEARTBEAT_MISSED = 3

#: Defaults shared by the API and the worker.
DEFAULT_MAX_ATTEMPTS = 5
#: Quorum-queue redeliveries (worker crashes) before a task is dead-lettered.
DEFAULT_DELIVERY_LIMIT = 10
#: Redeliveries (worker crashes) of one ingest task before RabbitMQ drops it.
INGEST_DELIVERY_LIMIT = 5
#: How long a directory-listing request may wait for a worker before it expires.
DIR_RPC_TTL_MS = 30_000


def route_for(priority: int) -> str:
    """The routing key of a task: streamer (priority) work has its own queue."""
    return ROUTE_PRIORITY if priority > 0 else ROUTE_NORMAL


def delay_ms(seconds: float) -> int:
    """A retry delay in seconds → the TTL its delay queue is declared (and found) with."""
    return max(1, round(seconds * 1000))


def retry_delays(delays: Iterable[float]) -> frozenset[int]:
    """Seconds → the millisecond TTLs the delay queues are declared with."""
    return frozenset(delay_ms(d) for d in delays)


@dataclass(frozen=True)
class Names:
    """The topology's names for one prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def tasks_exchange(self) -> str:
        return f"{self.prefix}.tasks"

    @property
    def tasks_queue(self) -> str:
        """Bulk (researcher) jobs."""
        return f"{self.prefix}.tasks"

    @property
    def priority_queue(self) -> str:
        """Streamer (service-account) jobs; workers prefer it."""
        return f"{self.prefix}.tasks.priority"

    @property
    def dead_queue(self) -> str:
        """Tasks that exceeded the delivery limit or could not be decoded."""
        return f"{self.prefix}.tasks.dead"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.tasks.dead"

    def retry_queue(self, route: str, delay_ms: int) -> str:
        """Delay queue: holds a message ``delay_ms`` then dead-letters it back."""
        return f"{self.prefix}.retry.{route}.{delay_ms}"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def events_queue(self) -> str:
        return f"{self.prefix}.events"

    @property
    def control_exchange(self) -> str:
        """Fanout: every worker hears every cancel."""
        return f"{self.prefix}.control"

    @property
    def workers_exchange(self) -> str:
        """Fanout: every API replica hears every worker's heartbeat."""
        return f"{self.prefix}.workers"

    @property
    def dir_rpc_queue(self) -> str:
        return f"{self.prefix}.rpc.dir"

    @property
    def ingest_dirs_queue(self) -> str:
        """Ingest directory tasks: list, diff, fan out."""
        return f"{self.prefix}.ingest.dirs"

    @property
    def ingest_files_queue(self) -> str:
        """Ingest file-batch and delete tasks."""
        return f"{self.prefix}.ingest.files"

    def queue_for(self, route: str) -> str:
        """The task queue a routing key leads to."""
        return self.priority_queue if route == ROUTE_PRIORITY else self.tasks_queue


DEFAULT_NAMES = Names()


@dataclass(frozen=True)
class Topology:
    """What to declare; the same object is used by the API and both kinds of worker."""

    names: Names = DEFAULT_NAMES
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    retry_delays_ms: frozenset[int] = field(default_factory=frozenset)
    ingest_delivery_limit: int = INGEST_DELIVERY_LIMIT

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
        return [*queues, *self.retry_queue_names(), *self.ingest_queue_names()]

    def retry_queue_names(self) -> list[str]:
        """The delay queues of this topology's retry delays (both routes)."""
        n = self.names
        return [
            n.retry_queue(route, d)
            for route in (ROUTE_NORMAL, ROUTE_PRIORITY)
            for d in sorted(self.retry_delays_ms)
        ]

    def delivery_limited_queues(self) -> frozenset[str]:
        """Queues declared with ``x-delivery-limit``: a returned delivery (a peek) counts
        against the message's limit there, so the admin view never peeks at them."""
        n = self.names
        return frozenset([n.tasks_queue, n.priority_queue, *self.ingest_queue_names()])

    def ingest_queue_names(self) -> list[str]:
        """The ingest workers' queues."""
        return [self.names.ingest_dirs_queue, self.names.ingest_files_queue]

    def ingest_queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum", "x-delivery-limit": self.ingest_delivery_limit}

    def exchange_names(self) -> list[str]:
        n = self.names
        return [
            n.tasks_exchange,
            n.dead_exchange,
            n.events_exchange,
            n.control_exchange,
            n.workers_exchange,
        ]

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
    """Declare the transfer side's exchanges and queues (idempotent): API and worker."""
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
    await channel.declare_exchange(n.workers_exchange, ExchangeType.FANOUT, durable=True)
    await channel.declare_queue(
        n.dir_rpc_queue,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-message-ttl": DIR_RPC_TTL_MS},
    )


async def declare_ingest_queues(channel: AbstractChannel, topology: Topology) -> None:
    """Declare the ingest queues (idempotent): ingest workers and whoever publishes to them."""
    for name in topology.ingest_queue_names():
        await channel.declare_queue(name, durable=True, arguments=topology.ingest_queue_arguments())


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove every queue and exchange of this prefix, ingest included (clean-up)."""
    for q in topology.queue_names():
        await channel.queue_delete(q)
    for x in topology.exchange_names():
        await channel.exchange_delete(x)


async def declare_control_queue(channel: AbstractChannel, names: Names) -> AbstractQueue:
    """This worker's own queue on the control fanout (gone when it disconnects)."""
    exchange = await channel.get_exchange(names.control_exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue


async def declare_heartbeat_queue(
    channel: AbstractChannel, names: Names, interval: float = HEARTBEAT_INTERVAL
) -> AbstractQueue:
    """An API replica's own queue on the workers fanout (gone when it disconnects); a beat
    not read within one interval expires (a newer one follows)."""
    exchange = await channel.get_exchange(names.workers_exchange)
    queue = await channel.declare_queue(
        exclusive=True,
        auto_delete=True,
        arguments={"x-message-ttl": delay_ms(interval), "x-max-length": 10_000},
    )
    await queue.bind(exchange)
    return queue
