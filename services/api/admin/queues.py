"""The broker side of the admin view: queue figures and the dead-letter queue.

Which queues: :meth:`~shared.messaging.topology.Topology.queue_names` (the one topology),
plus the retry delay queues the live workers report in their heartbeats (their names
depend on the workers' retry settings). Ready and consumers come from passive declares
(no management plugin needed). Unacknowledged deliveries cannot be read over AMQP: a
queue without consumers has none, and for the task queues the task store knows how many
released jobs are unfinished (minus the ready ones: delivered, not yet acknowledged).
When RabbitMQ's management API is configured (``admin.management_url``) and answers, its
``messages_unacknowledged`` is used instead for every queue it lists (exact, as of the
broker's last statistics round: up to 5 s old by default); otherwise the estimate above.
RabbitMQ 3.10 reports no head-message timestamp for quorum queues, so the oldest ages
stay as below (a classic queue's ``head_message_timestamp`` is used when given).

Oldest age: for the task queues from the task store, which released every message on them
(the longest-waiting released job no worker has started yet); peeking would count a
delivery against their delivery limit, as on the ingest queues, which are not peeked. On
every other queue the head message is peeked (one ``basic.get``, returned at once) and its
``timestamp`` (set by :func:`shared.messaging.broker.make_message`) read; for a dead letter,
when it died (``x-death``).

Dead letters are read with ``basic.get`` without acknowledging, then left unacknowledged
until the channel closes, which returns them to the queue; an action acknowledges those it
handles. A requeued task is never the dead message's bytes: the API starts a new run of
the task from its own store (the dispatcher signs and publishes it afresh); a message that
does not verify as the API's, or whose task is not in the store, can only be discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from shared.errors import Unavailable
from shared.logging import get_logger
from shared.messaging.signing import MessageRejected, Role, Verifier, verify_incoming
from shared.messaging.topology import Names, Topology

log = get_logger("stager.api.admin")

#: Errors of a passive declare of a queue that is missing or not ours.
_QUEUE_ERRORS = (aiormq.exceptions.ChannelClosed, aiormq.exceptions.AMQPError)


@dataclass(frozen=True)
class QueueDepth:
    """What a passive declare says of one queue."""

    name: str
    ready: int | None
    consumers: int | None
    error: str = ""


#: A retry delay queue's name: ``<prefix>.retry.<route>.<delay ms>``.
_RETRY_RE = re.compile(r"\.retry\.(normal|priority)\.([0-9]{1,10})")


def queue_purposes(names: Names, retry_queues: Iterable[str] = ()) -> dict[str, str]:
    """Every queue the admin view shows (the topology's, then the retry delay queues of
    ``retry_queues`` that are this prefix's), with what it is for."""
    fixed = {
        names.priority_queue: "jobs of service accounts (preferred by workers)",
        names.tasks_queue: "jobs of users",
        names.dead_queue: "dead letters: tasks that crashed workers too often",
        names.events_queue: "worker → API job events",
        names.dir_rpc_queue: "directory-listing requests",
        names.ingest_dirs_queue: "ingest directory tasks",
        names.ingest_files_queue: "ingest file batches",
    }
    out = {name: fixed.get(name, name) for name in Topology(names=names).queue_names()}
    for name in sorted(set(retry_queues)):
        m = (
            _RETRY_RE.fullmatch(name[len(names.prefix) :])
            if name.startswith(names.prefix)
            else None
        )
        if m is None or name in out:
            continue
        route, ms = m.groups()
        out[name] = (
            f"retries of {route} jobs: each waits {int(ms) / 1000:g} s, then back to its queue"
        )
    return out


async def depths(connection: AbstractRobustConnection, queues: Iterable[str]) -> list[QueueDepth]:
    """Ready messages and consumers per queue; a queue that is missing (or that the
    API's broker user may not see) is reported with an error, not raised."""
    out: list[QueueDepth] = []
    channel = await connection.channel()
    try:
        for name in queues:
            try:
                q = await channel.declare_queue(name, passive=True)
                res = q.declaration_result
                out.append(
                    QueueDepth(name, int(res.message_count or 0), int(res.consumer_count or 0))
                )
            except _QUEUE_ERRORS as e:
                out.append(QueueDepth(name, None, None, _why(e)))
                with contextlib.suppress(Exception):
                    await channel.close()
                channel = await connection.channel()
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return out


async def head_times(
    connection: AbstractRobustConnection, queues: Iterable[str], dead_queue: str, wait: float
) -> dict[str, datetime]:
    """When the head message of each queue was published (for ``dead_queue``: when it
    died), read by peeking: one ``basic.get`` per queue, the delivery returned at once.
    A queue that is empty, unreadable or slower than ``wait`` seconds is left out."""
    out: dict[str, datetime] = {}
    channel = await connection.channel()
    try:
        for name in queues:
            try:
                queue = await channel.declare_queue(name, passive=True)
                msg = await queue.get(no_ack=False, fail=False, timeout=wait)
            except (*_QUEUE_ERRORS, TimeoutError):
                with contextlib.suppress(Exception):
                    await channel.close()
                channel = await connection.channel()
                continue
            if msg is None:
                continue
            await msg.reject(requeue=True)
            died = _death(dict(msg.headers or {}))[3] if name == dead_queue else None
            at = died or msg.timestamp
            if isinstance(at, datetime):
                out[name] = at if at.tzinfo else at.replace(tzinfo=UTC)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return out


@dataclass(frozen=True)
class ManagementFigures:
    """What RabbitMQ's management API says of one queue."""

    unacked: int
    head_at: datetime | None = None


@dataclass(frozen=True)
class Management:
    """Where the management API is and who asks (the password never leaves this object
    but in the request's Authorization header)."""

    url: str
    vhost: str
    user: str
    password: str
    timeout: float

    def __repr__(self) -> str:  # never the password
        return f"Management(url={self.url!r}, vhost={self.vhost!r}, user={self.user!r})"


def management_from(
    url: str, broker_url: str, user: str, password: str, timeout: float
) -> Management | None:
    """The :class:`Management` of the settings (``None``: no ``url``); the vhost, and the
    user and password unless given, are the broker URL's."""
    if not url:
        return None
    amqp = urllib.parse.urlsplit(broker_url)
    vhost = urllib.parse.unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
    return Management(
        url=url.rstrip("/"),
        vhost=vhost,
        user=user or urllib.parse.unquote(amqp.username or ""),
        password=password or urllib.parse.unquote(amqp.password or ""),
        timeout=timeout,
    )


async def management_figures(mgmt: Management, prefix: str) -> dict[str, ManagementFigures] | None:
    """Unacknowledged deliveries (and a classic queue's head timestamp) of every queue of
    ``prefix`` on the vhost; ``None`` when the API does not answer well (logged: URL and
    status, never the credentials)."""
    vhost = urllib.parse.quote(mgmt.vhost, safe="")
    params = {
        "columns": "name,messages_unacknowledged,head_message_timestamp",
        "name": "^" + re.escape(prefix) + r"\.",
        "use_regex": "true",
        "page": "1",
        "page_size": "500",
    }
    url = f"{mgmt.url}/api/queues/{vhost}"
    auth = {"Authorization": aiohttp.encode_basic_auth(mgmt.user, mgmt.password)}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=mgmt.timeout)) as session,
            session.get(url, params=params, headers=auth) as r,
        ):
            if r.status != 200:
                log.warning("admin: management API refused", url=url, status=r.status)
                return None
            body = await r.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        log.warning("admin: management API unreachable", url=url, error=type(e).__name__)
        return None
    out: dict[str, ManagementFigures] = {}
    items = body.get("items") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name, unacked = item.get("name"), item.get("messages_unacknowledged")
        if not isinstance(name, str) or not isinstance(unacked, int):
            continue  # a queue whose statistics are not in yet
        ts = item.get("head_message_timestamp")
        head = datetime.fromtimestamp(ts, UTC) if isinstance(ts, int) and ts > 0 else None
        out[name] = ManagementFigures(unacked, head)
    return out


def _why(e: BaseException) -> str:
    text = str(e)
    if "NOT_FOUND" in text:
        return "not declared yet (no service using it has started)"
    if "ACCESS_REFUSED" in text:
        return "the API's broker user may not read it"
    return f"cannot be read ({type(e).__name__})"


@dataclass(frozen=True)
class Letter:
    """One dead message as read (its delivery still held)."""

    message: AbstractIncomingMessage
    message_id: str
    type: str
    signed: bool
    reject_reason: str
    death_reason: str
    from_queue: str
    deaths: int
    dead_at: datetime | None


def _death(headers: dict[str, Any]) -> tuple[str, str, int, datetime | None]:
    """(reason, queue, count, time) of the newest x-death entry."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], dict):
        return "", "", 0, None
    d = deaths[0]
    at = d.get("time")
    when = at.replace(tzinfo=UTC) if isinstance(at, datetime) and at.tzinfo is None else at
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v or "")  # noqa: E731
    count = d.get("count")
    return (
        text(d.get("reason")),
        text(d.get("queue")),
        int(count) if isinstance(count, int) else 0,
        when if isinstance(when, datetime) else None,
    )


def read_letter(message: AbstractIncomingMessage, verifier: Verifier) -> Letter:
    """Describe a dead message; ``signed``: the API's signature over it verifies (any age:
    dead letters are old by nature)."""
    reason = ""
    try:
        verify_incoming(verifier, message, accept=[Role.API])
    except MessageRejected as e:
        reason = e.reason
    death_reason, queue, count, at = _death(dict(message.headers or {}))
    return Letter(
        message=message,
        message_id=str(message.message_id or "")[:64],
        type=str(message.type or "")[:64],
        signed=not reason,
        reject_reason=reason,
        death_reason=death_reason,
        from_queue=queue,
        deaths=count,
        dead_at=at,
    )


@contextlib.asynccontextmanager
async def held_letters(
    connection: AbstractRobustConnection | None, queue: str, limit: int, verifier: Verifier
) -> AsyncIterator[tuple[int, list[Letter]]]:
    """(depth, up to ``limit`` letters from the head) with their deliveries held; whatever
    is not acknowledged in the block goes back to the queue when it ends."""
    if connection is None or connection.is_closed:
        raise Unavailable("the message broker connection is down; try again shortly")
    channel: AbstractChannel = await connection.channel()
    letters: list[Letter] = []
    depth = consumers = 0
    try:
        q = await channel.declare_queue(queue, passive=True)
        depth = int(q.declaration_result.message_count or 0)
        consumers = int(q.declaration_result.consumer_count or 0)
        while len(letters) < min(limit, depth):
            msg = await q.get(no_ack=False, fail=False)
            if msg is None:
                break
            letters.append(read_letter(msg, verifier))
        yield depth, letters
    except _QUEUE_ERRORS as e:
        raise Unavailable(f"the dead-letter queue cannot be read: {_why(e)}") from None
    finally:
        with contextlib.suppress(Exception):
            await channel.close()  # unacknowledged deliveries return to the queue
        back = depth - sum(1 for lt in letters if lt.message.processed)
        if letters and not consumers:
            with contextlib.suppress(Exception):
                await _until_back(connection, queue, back)


#: How long a dead-letter listing or action waits for its returned letters to be back.
RETURN_WAIT = 3.0


async def _until_back(connection: AbstractRobustConnection, queue: str, depth: int) -> None:
    """Wait (at most :data:`RETURN_WAIT`) until ``queue`` holds ``depth`` messages again:
    the broker applies a closed channel's returns asynchronously, and the next listing or
    action (often the admin's next click) must see the letters this one left."""
    channel = await connection.channel()
    try:
        deadline = asyncio.get_running_loop().time() + RETURN_WAIT
        q = await channel.declare_queue(queue, passive=True)
        while int(q.declaration_result.message_count or 0) < depth:
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.05)
            await q.declare()  # again: a robust channel hands back its first passive result
    finally:
        await channel.close()
