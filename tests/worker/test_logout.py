"""Transfer children log out of iRODS (issue 14: on a real 5.0.2 zone each of a job's
~12 connections left 2-3 error lines in the server's log, the errors an agent logs when
``readAndProcClientMsg``, ``server/core/src/rsApiHandler.cpp``, finds the socket closed
without ``RODS_DISCONNECT``). The test server logs such a connection
(``ServerProcess.unclean_disconnects``); an upload with a 40 MB file (ranges over several
connections) and a download in the same child, then the worker's shutdown, leave none."""

from __future__ import annotations

import asyncio
import os

from tests.worker.conftest import irods_worker, task_message
from tests.worker.test_transfer_e2e import _tree


async def test_a_transfer_child_logs_out_every_connection(
    start_worker, unix_user, open_dir, irods_server, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "up"
    _tree(src, user.pw_uid, user.pw_gid)
    big = src / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    os.chown(big, user.pw_uid, user.pw_gid)
    down_dir = open_dir / "down"
    down_dir.mkdir()
    os.chown(down_dir, user.pw_uid, user.pw_gid)
    before = irods_server.unclean_disconnects()
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    for msg in (
        task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}"),
        task_message(user.pw_name, src=f"irods:{coll}/", dst=str(down_dir)),
    ):
        await w.submit(msg)
        done = await w.events.until(msg.task_id, {"completed", "retry", "archived"}, limit=60)
        assert done.state == "completed", done.error
    assert (down_dir / "big.bin").stat().st_size == 40 * 1024 * 1024
    await w.worker.close()  # the children exit
    await asyncio.sleep(1.0)  # the server logs after it sees the socket close
    assert irods_server.unclean_disconnects() == before
