"""A logged-in client that closes its socket without ``RODS_DISCONNECT`` leaves a warning
in the server's log, as a real agent logs errors when ``readAndProcClientMsg``
(``server/core/src/rsApiHandler.cpp``) cannot read the next message header (issue 14: 2-3
error lines per connection on a 5.0.2 zone); ``ServerProcess.unclean_disconnects``
counts them, so a test can show that a client logs out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data") as srv:
        yield srv


def settled(srv: ServerProcess, expected: int, limit: float = 5.0) -> int:
    """The count once it reaches ``expected`` (the server logs after the socket closes)."""
    deadline = time.monotonic() + limit
    while (n := srv.unclean_disconnects()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


def test_a_client_that_logs_out_leaves_no_warning(server: ServerProcess) -> None:
    with server.session() as s:
        held = [s.pool.get_connection() for _ in range(3)]  # three connections, each logs out
        for conn in held:
            conn.release()
        assert s.collections.get("/tempZone/home/rods").name == "rods"
    time.sleep(0.3)
    assert server.unclean_disconnects() == 0


def test_a_socket_closed_without_disconnect_is_logged(server: ServerProcess) -> None:
    s = server.session()
    s.collections.get("/tempZone/home/rods")
    for conn in list(s.pool.idle):
        conn.socket.close()  # what a process that exits without cleanup() leaves
    assert settled(server, 1) == 1
    log = server.stderr_path.read_text()
    assert "without RODS_DISCONNECT" in log and "(user rods, " in log
    s.pool.idle.clear()  # nothing left to log out


def test_a_connection_that_never_logged_in_is_not_counted(server: ServerProcess) -> None:
    from tests.irods_server.test_server_core import raw_connect

    raw_connect(server).close()
    time.sleep(0.3)
    assert server.unclean_disconnects() == 0
