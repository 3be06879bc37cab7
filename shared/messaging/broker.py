"""AMQP plumbing: robust connection, confirmed publishing, persistent messages.

What is declared (every exchange and queue, ingest included) is
:mod:`shared.messaging.topology`; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustConnection,
    DeliveryMode,
)

from shared.errors import Unavailable
from shared.logging import get_logger
from shared.messaging.signing import Signer

log = get_logger("stager.broker")


class BrokerError(Unavailable):
    """An AMQP operation failed."""


class PublishNacked(BrokerError):
    """The broker refused a message (basic.nack): it was not stored."""


class PublishTimeout(BrokerError):
    """No confirm arrived in time: the message may or may not be stored."""


class PublishUnroutable(BrokerError):
    """The broker returned a mandatory message: no queue is bound for it."""


async def connect(url: str, *, name: str = "stager") -> AbstractRobustConnection:
    """A robust connection: it reconnects and restores channels and consumers.

    Logging in as ``guest`` logs a warning: every local user of the broker host can do the
    same (give each service its own user, docs/broker.md)."""
    if (urlsplit(url).username or "guest") == "guest":
        log.warning(
            "broker.guest_login",
            connection=name,
            fix="give this service its own RabbitMQ user (python -m scripts.broker_users)",
        )
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


def make_message(
    body: bytes,
    *,
    message_id: str,
    type_: str,
    headers: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    expiration: float | None = None,
    signer: Signer | None = None,
    timestamp: datetime | None = None,
) -> aio_pika.Message:
    """A persistent JSON message, signed by ``signer`` (:mod:`shared.messaging.signing`),
    stamped with when it was published (``timestamp``, default now: what the admin view's
    oldest-message age reads; not signed, never trusted for anything else)."""
    all_headers = dict(headers or {})
    if signer is not None:
        all_headers.update(
            signer.headers(
                body,
                type_=type_,
                message_id=message_id,
                correlation_id=correlation_id,
                reply_to=reply_to,
            )
        )
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=type_,
        headers=all_headers,
        correlation_id=correlation_id,
        reply_to=reply_to,
        expiration=expiration,
        timestamp=timestamp or datetime.now(UTC),
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
