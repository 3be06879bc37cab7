"""Directory listing as the caller (``GET /v1/dir``), answered by a worker.

The API sends a :class:`DirListRequest` to ``stager.rpc.dir`` with ``reply_to`` and
``correlation_id``; the worker lists the directory in a zygote child running as the
user (so the user's own permissions apply) and answers with a :class:`DirListReply`.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from pydantic import ValidationError

from services.worker.forkserver.zygote import ChildOutput, Zygote
from shared.errors import InvalidInput
from shared.irods import strip_prefix
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import DirEntry, DirListReply, DirListRequest
from shared.messaging.topology import TYPE_DIRLIST
from shared.unix_users import UserRefused

log = get_logger(__name__)

_KINDS = {"permission_denied", "not_found", "not_a_directory", "invalid"}


def _entry_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "regular"
    return "unknown"


def list_dir(path: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Entries of ``path`` sorted by name (at most ``limit``), and whether more exist."""
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{path!r} is not an absolute path")
    entries: list[dict[str, Any]] = []
    with os.scandir(path) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
                entries.append(
                    {"name": e.name, "type": _entry_type(st.st_mode), "size": st.st_size}
                )
            except OSError:
                entries.append({"name": e.name, "type": "unknown", "size": 0})
    entries.sort(key=lambda d: d["name"])
    return entries[:limit], len(entries) > limit


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Zygote job ``dirlist``: runs as the user."""
    try:
        entries, truncated = list_dir(str(params["path"]), int(params.get("limit", 10000)))
    except ValueError as e:
        raise InvalidInput(str(e)) from e
    return {"entries": entries, "truncated": truncated}


def _error_reply(kind: str, message: str) -> DirListReply:
    return DirListReply(ok=False, error_kind=kind if kind in _KINDS else "internal", error=message)  # type: ignore[arg-type]


async def list_as(zygote: Zygote, req: DirListRequest, *, time_limit: float = 30.0) -> DirListReply:
    """List ``req.path`` as ``req.user`` in a child; errors become a reply."""
    path = strip_prefix(req.path)
    try:
        child = await zygote.spawn("dirlist", req.user, {"path": path, "limit": req.limit})
    except UserRefused as e:
        return _error_reply("invalid", e.message)
    final: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(time_limit):
            async for line in child.lines():
                if line.get("type") in ("result", "error"):
                    final = line
            await child.wait()
    except TimeoutError:
        return _error_reply("internal", f"listing {path} took longer than {time_limit:g}s")
    finally:
        child.kill_group()
    if final is None:
        return _error_reply("internal", f"listing {path} failed (the lister exited)")
    if final["type"] == "error":
        return _error_reply(str(final.get("kind")), _message(final, path))
    return DirListReply(
        ok=True,
        entries=[DirEntry.model_validate(e) for e in final["entries"]],
        truncated=bool(final.get("truncated")),
    )


def _message(line: Mapping[str, Any], path: str) -> str:
    kind = line.get("kind")
    if kind == "permission_denied":
        return f"permission denied: {path} cannot be read by this user"
    if kind == "not_found":
        return f"not found: {path} does not exist"
    if kind == "not_a_directory":
        return f"not a directory: {path}"
    return str(line.get("message") or "listing failed")


class DirListResponder:
    """Consumer of the directory-listing RPC queue."""

    def __init__(
        self,
        zygote: Callable[[], Awaitable[Zygote]],
        exchange: AbstractExchange,
        time_limit: float = 30.0,
    ):
        self.zygote = zygote
        self.exchange = exchange
        self.time_limit = time_limit

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            if not message.reply_to:
                return
            try:
                req = DirListRequest.model_validate_json(message.body)
            except ValidationError as e:
                reply = _error_reply("invalid", f"bad listing request: {e.error_count()} errors")
            else:
                reply = await list_as(await self.zygote(), req, time_limit=self.time_limit)
            out = broker.make_message(
                reply.model_dump_json().encode(),
                message_id=message.message_id or "",
                type_=TYPE_DIRLIST,
                correlation_id=message.correlation_id,
            )
            try:
                await broker.publish(self.exchange, out, message.reply_to, attempts=1)
            except broker.BrokerError as e:
                log.warning("dirlist.reply_failed", error=str(e))
