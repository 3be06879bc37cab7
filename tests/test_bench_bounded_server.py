"""bench/_bounded_server.py: the test server's per-request cost shared by N slots, as a
zone's CPU is shared by its cores (the bounded real-zone small-file figure rests on it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from irods.session import iRODSSession

from bench._bounded_server import BoundedServer
from devtools.irods_server.launcher import ServerProcess

CLIENTS = 4
REQUESTS = 5  # per client, after its login
COST = "40,0"


def _concurrent_seconds(server: ServerProcess) -> float:
    """Seconds for CLIENTS sessions, each logged in beforehand, to send REQUESTS
    look-ups at once."""
    sessions = [
        iRODSSession(
            host=server.host,
            port=server.port,
            user=server.admin_user,
            password=server.admin_password,
            zone=server.zone,
        )
        for _ in range(CLIENTS)
    ]
    home = f"/{server.zone}/home/{server.admin_user}"
    try:
        for s in sessions:  # log in untimed: one connection each, kept in the pool
            s.collections.get(home)
        start = threading.Barrier(CLIENTS + 1)

        def client(s: iRODSSession) -> None:
            start.wait()
            for _ in range(REQUESTS):
                s.collections.get(home)

        threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - t0
    finally:
        for s in sessions:
            s.cleanup()


def test_one_slot_serialises_what_the_plain_cost_overlaps(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "plain", cost=COST) as plain:
        overlapped = _concurrent_seconds(plain)
    with BoundedServer(tmp_path / "bounded", cost=COST, slots=1) as bounded:
        serial = _concurrent_seconds(bounded)
    # a collection look-up is at least one request: one slot makes the clients take turns
    floor = CLIENTS * REQUESTS * 0.040
    assert serial >= floor, (serial, floor)
    assert overlapped < floor / 2, (overlapped, floor)


def test_bad_slot_count_is_refused_without_a_traceback() -> None:
    from bench._bounded_server import main

    assert main(["--slots", "0", "--data", "/nonexistent"]) == 2
