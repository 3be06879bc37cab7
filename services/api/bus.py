"""The API's side of AMQP: release tasks, send cancels, ask workers for directory
listings (request/reply) and consume task events.  Plumbing comes from ``shared.messaging.broker``.

Everything published is signed as role ``api``; task events and listing replies are
applied only when signed by a ``worker`` (:mod:`shared.messaging.signing`): anything else
is acked unapplied and counted in ``stager_messages_rejected_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pydantic import ValidationError

from shared.errors import Unavailable
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import (
    ControlMessage,
    DirListReply,
    DirListRequest,
    TaskEvent,
    TaskMessage,
)
from shared.messaging.signing import Gate, Role, Signer
from shared.messaging.topology import (
    TYPE_CONTROL,
    TYPE_DIRLIST,
    TYPE_EVENT,
    TYPE_TASK,
    Names,
    Topology,
    declare_topology,
    route_for,
)
from shared.settings import BrokerSettings

log = get_logger("stager.apibus")

#: Errors meaning "the broker cannot take this message now".
_BROKER_DOWN = (broker.BrokerError, aiormq.exceptions.AMQPError, ConnectionError)

EventHandler = Callable[[list[TaskEvent]], Awaitable[None]]


class ApiBus:
    """One robust connection, a confirming publish channel and a consume channel."""

    def __init__(self, settings: BrokerSettings, *, signer: Signer, gate: Gate) -> None:
        self.settings = settings
        self.signer = signer
        #: verifies what workers send (task events, listing replies)
        self.gate = gate
        self.names = Names(settings.prefix)
        self.topology = Topology(names=self.names)
        self.connection: AbstractRobustConnection | None = None
        self._pub: AbstractChannel | None = None
        self._sub: AbstractChannel | None = None
        self._tasks_x: AbstractExchange | None = None
        self._control_x: AbstractExchange | None = None
        self._reply_q: AbstractQueue | None = None
        self._waiting: dict[str, asyncio.Future[DirListReply]] = {}

    async def start(self, *, events_prefetch: int = 256) -> None:
        """Connect and declare the topology."""
        self.connection = await broker.connect(
            self.settings.url.get_secret_value(), name="stager-api"
        )
        self._pub = await broker.open_channel(self.connection)
        await declare_topology(self._pub, self.topology)
        self._tasks_x = await self._pub.get_exchange(self.names.tasks_exchange)
        self._control_x = await self._pub.get_exchange(self.names.control_exchange)
        self._sub = await broker.open_channel(self.connection, prefetch=events_prefetch)
        self._reply_q = await self._sub.declare_queue(exclusive=True, auto_delete=True)
        await self._reply_q.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        """Close the connection (channels go with it)."""
        for fut in self._waiting.values():
            fut.cancel()
        if self.connection is not None:
            await self.connection.close()

    def _exchange(self, which: AbstractExchange | None) -> AbstractExchange:
        if which is None:
            raise Unavailable("the message broker connection is not open")
        return which

    async def publish_task(self, msg: TaskMessage) -> None:
        """Release one task (service-account tasks to the priority queue)."""
        route = route_for(msg.priority)
        message = broker.make_message(
            msg.model_dump_json().encode(),
            message_id=msg.task_id,
            type_=TYPE_TASK,
            signer=self.signer,
        )
        await broker.publish(
            self._exchange(self._tasks_x),
            message,
            route,
            timeout=self.settings.confirm_timeout,
        )

    async def publish_control(self, msg: ControlMessage) -> None:
        """Tell every worker (fanout); no worker listening is not an error.

        Each control message has its own id (workers refuse a replayed one, so a second
        cancel of the same task must not look like a replay of the first)."""
        message = broker.make_message(
            msg.model_dump_json().encode(),
            message_id=uuid.uuid4().hex,
            type_=TYPE_CONTROL,
            signer=self.signer,
        )
        try:
            await broker.publish(
                self._exchange(self._control_x),
                message,
                "",
                timeout=self.settings.confirm_timeout,
            )
        except broker.PublishUnroutable:
            log.info("cancel not heard: no worker is connected", task_id=msg.task_id)
        except _BROKER_DOWN as e:
            raise Unavailable("the message broker is unavailable; try again shortly") from e

    async def list_dir(self, req: DirListRequest, wait: float) -> DirListReply:
        """Ask a worker to list a directory as ``req.user``; Unavailable on timeout."""
        if self._pub is None or self._reply_q is None:
            raise Unavailable("the message broker connection is not open")
        corr = uuid.uuid4().hex
        fut: asyncio.Future[DirListReply] = asyncio.get_running_loop().create_future()
        self._waiting[corr] = fut
        try:
            message = broker.make_message(
                req.model_dump_json().encode(),
                message_id=corr,
                type_=TYPE_DIRLIST,
                correlation_id=corr,
                reply_to=self._reply_q.name,
                expiration=wait,
                signer=self.signer,
            )
            await broker.publish(
                self._pub.default_exchange,
                message,
                self.names.dir_rpc_queue,
                timeout=self.settings.confirm_timeout,
            )
            return await asyncio.wait_for(fut, wait)
        except _BROKER_DOWN as e:
            raise Unavailable("the message broker is unavailable; try again shortly") from e
        except TimeoutError:
            raise Unavailable(
                f"no worker answered the directory listing within {wait:g} s; try again"
            ) from None
        finally:
            self._waiting.pop(corr, None)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._waiting.get(message.correlation_id or "")
        if fut is None or fut.done():
            return
        if self.gate.admit(message, type_=TYPE_DIRLIST, accept=[Role.WORKER]) is None:
            return  # forged: the request keeps waiting for the real worker's reply
        try:
            fut.set_result(DirListReply.model_validate_json(message.body))
        except ValidationError:
            fut.set_result(
                DirListReply(ok=False, error_kind="internal", error="malformed worker reply")
            )

    async def consume_events(self, handle: EventHandler, *, batch: int = 200) -> None:
        """Apply task events forever, in batches of what has arrived (one store
        transaction each); a malformed event is dropped, a failing batch retried.

        A settle (ack, nack, reject) that fails because the connection went is logged and
        passed over: the broker delivers those messages again once the robust connection
        has restored the channel and this consumer, and applying an event twice changes
        nothing (``store.events``). Before, the first such failure ended this loop for
        good and the API applied no more events until it was restarted."""
        if self._sub is None:
            raise Unavailable("the message broker connection is not open")
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        queue = await self._sub.get_queue(self.names.events_queue)
        tag = await queue.consume(inbox.put)
        try:
            while True:
                msgs = [await inbox.get()]
                while len(msgs) < batch and not inbox.empty():
                    msgs.append(inbox.get_nowait())
                good: list[AbstractIncomingMessage] = []
                events: list[TaskEvent] = []
                for m in msgs:
                    if self.gate.admit(m, type_=TYPE_EVENT, accept=[Role.WORKER]) is None:
                        await _settle(m.ack())  # not from a worker: dropped unapplied (counted)
                        continue
                    try:
                        events.append(TaskEvent.model_validate_json(m.body))
                        good.append(m)
                    except ValidationError:
                        log.error("dropped malformed task event", message_id=m.message_id)
                        await _settle(m.reject(requeue=False))
                if not events:
                    continue
                # One settle for the whole batch: every earlier delivery of this
                # channel was settled already (the inbox keeps delivery order).
                try:
                    await handle(events)
                except Exception as e:
                    log.error("events not applied", count=len(events), error=type(e).__name__)
                    await asyncio.sleep(0.5)
                    await _settle(good[-1].nack(requeue=True, multiple=True))
                else:
                    await _settle(good[-1].ack(multiple=True))
        finally:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)

    async def queue_depths(self) -> dict[str, int]:
        """Ready messages per task/event queue (passive declare)."""
        if self.connection is None:
            raise Unavailable("the message broker connection is not open")
        out: dict[str, int] = {}
        channel = await self.connection.channel()
        try:
            for name in (
                self.names.tasks_queue,
                self.names.priority_queue,
                self.names.events_queue,
                self.names.dead_queue,
            ):
                q = await channel.declare_queue(name, passive=True)
                out[name] = int(q.declaration_result.message_count or 0)
        finally:
            await channel.close()
        return out

    async def ping(self) -> None:
        """Raise Unavailable when the broker connection is down."""
        if self.connection is None or self.connection.is_closed or self._pub is None:
            raise Unavailable("the message broker connection is down")
        try:
            await asyncio.wait_for(self.queue_depths(), 5.0)
        except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as e:
            raise Unavailable("the message broker does not answer") from e


async def _settle(settle: Awaitable[None]) -> None:
    """Await an ack/nack/reject; one lost with its channel is logged, not raised."""
    try:
        await settle
    except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as e:
        log.warning(
            "event settle lost with the broker connection (delivered again after it is back)",
            error=type(e).__name__,
        )
