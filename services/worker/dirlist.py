"""Directory listing as the caller (``GET /v1/dir``), answered by a worker.

The API sends a :class:`DirListRequest` to ``stager.rpc.dir`` with ``reply_to`` and
``correlation_id``; the worker lists the directory in a fork-server child running as
the user (job ``dirlist``, :mod:`services.worker.jobs.dirlist`: the user's own
permissions apply) and answers with a :class:`DirListReply`.

Only a request the API signed (reply-to and correlation id included, so an answer cannot
be redirected), less than ``signing.dirlist_max_age`` old and not seen before is listed;
the reply is signed as a worker. Anything else is acked unanswered and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from pydantic import ValidationError

from services.worker.forkserver.client import ForkServer
from services.worker.forkserver.protocol import ERROR, FINAL_TYPES, ErrorLine
from shared.errors import ErrorKind
from shared.irods import strip_prefix
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import DirEntry, DirListErrorKind, DirListReply, DirListRequest
from shared.messaging.signing import Gate, ReplayGuard, Role, Signer
from shared.messaging.topology import TYPE_DIRLIST
from shared.unix_users import UserRefused

log = get_logger(__name__)

#: The error kinds a reply names as such (any other is ``internal``).
_REPLY_KINDS: dict[ErrorKind, DirListErrorKind] = {
    ErrorKind.PERMISSION_DENIED: "permission_denied",
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.NOT_A_DIRECTORY: "not_a_directory",
    ErrorKind.INVALID: "invalid",
}
#: The reply's message for these kinds; any other carries the child's message.
_MESSAGES = {
    ErrorKind.PERMISSION_DENIED: "permission denied: {path} cannot be read by this user",
    ErrorKind.NOT_FOUND: "not found: {path} does not exist",
    ErrorKind.NOT_A_DIRECTORY: "not a directory: {path}",
}


def _error_reply(kind: ErrorKind, message: str) -> DirListReply:
    return DirListReply(ok=False, error_kind=_REPLY_KINDS.get(kind, "internal"), error=message)


async def list_as(
    forkserver: ForkServer, req: DirListRequest, *, time_limit: float = 30.0
) -> DirListReply:
    """List ``req.path`` as ``req.user`` in a child; errors become a reply."""
    path = strip_prefix(req.path)
    try:
        child = await forkserver.spawn("dirlist", req.user, {"path": path, "limit": req.limit})
    except UserRefused as e:
        return _error_reply(ErrorKind.INVALID, e.message)
    final: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(time_limit):
            async for line in child.lines():
                if line.get("type") in FINAL_TYPES:
                    final = line
            await child.wait()
    except TimeoutError:
        return _error_reply(ErrorKind.INTERNAL, f"listing {path} took longer than {time_limit:g}s")
    finally:
        child.kill_group()
    if final is None:
        return _error_reply(ErrorKind.INTERNAL, f"listing {path} failed (the lister exited)")
    if final["type"] == ERROR:
        error = ErrorLine.parse(final)
        template = _MESSAGES.get(error.kind)
        return _error_reply(error.kind, template.format(path=path) if template else error.message)
    return DirListReply(
        ok=True,
        entries=[DirEntry.model_validate(e) for e in final["entries"]],
        truncated=bool(final.get("truncated")),
    )


class DirListResponder:
    """Consumer of the directory-listing RPC queue."""

    def __init__(
        self,
        forkserver: Callable[[], Awaitable[ForkServer]],
        exchange: AbstractExchange,
        time_limit: float = 30.0,
        *,
        gate: Gate,
        signer: Signer,
        max_age: float,
    ):
        self.forkserver = forkserver
        self.exchange = exchange
        self.time_limit = time_limit
        self.gate = gate
        self.signer = signer
        self.max_age = max_age
        self.replay = ReplayGuard()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            verified = self.gate.admit(
                message,
                type_=TYPE_DIRLIST,
                accept=[Role.API],
                max_age=self.max_age,
                replay=self.replay,
            )
            if verified is None or not message.reply_to:
                return
            try:
                req = DirListRequest.model_validate_json(message.body)
            except ValidationError as e:
                reply = _error_reply(
                    ErrorKind.INVALID, f"bad listing request: {e.error_count()} errors"
                )
            else:
                reply = await list_as(await self.forkserver(), req, time_limit=self.time_limit)
            out = broker.make_message(
                reply.model_dump_json().encode(),
                message_id=message.message_id or "",
                type_=TYPE_DIRLIST,
                correlation_id=message.correlation_id,
                signer=self.signer,
            )
            try:
                await broker.publish(self.exchange, out, message.reply_to, attempts=1)
            except broker.BrokerError as e:
                log.warning("dirlist.reply_failed", error=str(e))
