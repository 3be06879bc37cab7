"""SessionPool against the iRODS test server: idle connections are closed after
``--irods_idle_disconnect_seconds`` and the session reconnects on its next call."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import pytest

from services.ingest.sessions import SessionPool
from services.ingest.store import JobState
from tests.ingest.conftest import make_tree, rods_account

HOME = "/tempZone/home/rods"


@pytest.fixture
def pool(irods_server: Any) -> Any:
    p = SessionPool(rods_account(irods_server))
    yield p
    p.close()


def _established(local_port: int) -> bool:
    """Whether this host has an ESTABLISHED TCP connection from ``local_port``."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(int(r[1].split(":")[1], 16) == local_port and r[3] == "01" for r in rows)


def _idle_ports(session: Any) -> list[int]:
    return [c.socket.getsockname()[1] for c in session.pool.idle]


def _wait(pred: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_idle_connection_is_closed_and_reopened_on_next_use(pool):
    session = pool.get(idle_seconds=0.5)
    assert session.collections.get(HOME).path == HOME
    ports = _idle_ports(session)
    assert len(ports) == 1 and _established(ports[0])
    # closed by the reaper once idle longer than 0.5 s: gone from the pool and on the wire
    assert _wait(lambda: pool.idle_connections() == 0, 5), "the idle connection stayed open"
    assert _wait(lambda: not _established(ports[0]), 5)
    # the same session still works: it opens a new connection
    assert session.collections.get(HOME).path == HOME
    assert pool.idle_connections() == 1
    assert _idle_ports(session) != ports


def test_connection_in_use_within_the_limit_stays_open(pool):
    session = pool.get(idle_seconds=30)
    session.collections.get(HOME)
    ports = _idle_ports(session)
    assert pool.disconnect_idle() == 0
    time.sleep(0.5)
    assert pool.idle_connections() == 1 and _established(ports[0])


def test_without_a_limit_nothing_is_closed(pool):
    session = pool.get()
    session.collections.get(HOME)
    time.sleep(0.3)
    assert pool.disconnect_idle() == 0 and pool.idle_connections() == 1


def _connections_of(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections of process ``pid`` to remote ``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(
        1 for r in rows if int(r[2].split(":")[1], 16) == port and r[3] == "01" and r[9] in inodes
    )


@pytest.mark.parametrize(("idle", "closed"), [(1, True), (60, False)])
async def test_a_jobs_option_reaches_its_childs_sessions(ingest, irods_server, idle, closed):
    """End to end: the owner's child keeps the job's iRODS connections open after the pass
    with the default, and closes them after ``irods_idle_disconnect_seconds``."""
    src = make_tree(ingest.tmp / "src", 3)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, irods_idle_disconnect_seconds=idle))
    assert job.state is JobState.COMPLETED and job.counters["files_created"] == 3
    pid = ingest.workers[0].children.pids()[ingest.owner.pw_name]
    assert _connections_of(pid, irods_server.port) >= 1 or closed
    await asyncio.sleep(2.5)
    left = _connections_of(pid, irods_server.port)
    assert (left == 0) is closed, left
