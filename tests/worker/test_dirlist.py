"""Directory listing over AMQP request/reply, done as the caller."""

from __future__ import annotations

import asyncio
import os
import uuid

from shared.messaging import broker
from shared.messaging.messages import DirListReply, DirListRequest
from tests.worker.conftest import API_SIGNER


async def _ask(w, req: DirListRequest) -> DirListReply:
    ch = w.amqp.channel
    replies = await ch.declare_queue(exclusive=True, auto_delete=True)
    got: asyncio.Future[DirListReply] = asyncio.get_running_loop().create_future()
    corr = uuid.uuid4().hex

    async def on_reply(message) -> None:
        if message.correlation_id == corr and not got.done():
            got.set_result(DirListReply.model_validate_json(message.body))

    await replies.consume(on_reply, no_ack=True)
    msg = broker.make_message(
        req.model_dump_json().encode(),
        message_id=corr,
        type_="stager.dirlist",
        correlation_id=corr,
        reply_to=replies.name,
        signer=API_SIGNER,
    )
    await broker.publish(ch.default_exchange, msg, w.amqp.names.dir_rpc_queue)
    return await asyncio.wait_for(got, 20)


async def test_lists_as_the_user(start_worker, unix_user, open_dir) -> None:
    user = unix_user()
    mine = open_dir / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "a.txt").write_bytes(b"12345")
    os.symlink("a.txt", mine / "link")
    os.chown(mine, user.pw_uid, user.pw_gid)
    mine.chmod(0o700)
    w = await start_worker()
    reply = await _ask(w, DirListRequest(user=user.pw_name, path=str(mine)))
    assert reply.ok, reply.error
    got = {(e.name, e.type, e.size if e.type == "regular" else None) for e in reply.entries}
    assert got == {("a.txt", "regular", 5), ("sub", "dir", None), ("link", "symlink", None)}
    assert reply.truncated is False
    limited = await _ask(w, DirListRequest(user=user.pw_name, path=str(mine), limit=2))
    assert [e.name for e in limited.entries] == ["a.txt", "link"] and limited.truncated


async def test_permission_and_missing_and_refused(start_worker, unix_user, open_dir) -> None:
    user, other = unix_user(), unix_user()
    theirs = open_dir / "theirs"
    theirs.mkdir()
    os.chown(theirs, other.pw_uid, other.pw_gid)
    theirs.chmod(0o700)
    w = await start_worker()
    denied = await _ask(w, DirListRequest(user=user.pw_name, path=str(theirs)))
    assert not denied.ok and denied.error_kind == "permission_denied"
    assert str(theirs) in (denied.error or "")
    allowed = await _ask(w, DirListRequest(user=other.pw_name, path=str(theirs)))
    assert allowed.ok and allowed.entries == []
    missing = await _ask(w, DirListRequest(user=user.pw_name, path=str(open_dir / "nope")))
    assert missing.error_kind == "not_found"
    relative = await _ask(w, DirListRequest(user=user.pw_name, path="relative/dir"))
    assert relative.error_kind == "invalid"
    root = await _ask(w, DirListRequest(user="root", path="/"))
    assert not root.ok and root.error_kind == "invalid" and "root" in (root.error or "")
