"""The per-operation cost setting (``cost.py``): parsing, which requests pay which wait,
and a real server started with the setting answering no faster than it says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.irods_server import cost
from devtools.irods_server.catalog import Catalog
from devtools.irods_server.dispatch import HANDLERS, Reply, Request, Session
from devtools.irods_server.errors import IrodsError
from devtools.irods_server.launcher import REPO_ROOT, ServerProcess
from devtools.irods_server.state import ServerState


def test_parse_cost_presets_and_numbers() -> None:
    assert cost.parse_cost("off") == cost.OpCost()
    assert not cost.parse_cost("off").active
    assert cost.parse_cost("real-zone") == cost.OpCost(7.0, 19.0)
    assert cost.parse_cost(" 2.5,0 ") == cost.OpCost(2.5, 0.0)
    assert cost.from_environment({}) == cost.OpCost()
    assert cost.from_environment({cost.ENV_VAR: "3,4"}) == cost.OpCost(3.0, 4.0)


@pytest.mark.parametrize("text", ["fast", "1", "1,2,3", "-1,0", "a,b", "20000,0"])
def test_parse_cost_rejects_bad_input_with_a_readable_message(text: str) -> None:
    with pytest.raises(ValueError, match="cost"):
        cost.parse_cost(text)


def test_cli_rejects_a_bad_cost_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devtools.irods_server", "--data", str(tmp_path), "--cost", "x"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "expected 'real-zone', 'off' or 'AGENT_MS,CATALOG_MS'" in proc.stderr


def drive(awaitable: Awaitable[Reply]) -> Reply:
    async def main() -> Reply:
        return await awaitable

    return asyncio.run(main())


@pytest.fixture
def session(tmp_path: Path) -> Any:
    catalog = Catalog.open(tmp_path / "catalog.sqlite", "tempZone", tmp_path / "vault")
    yield Session(state=ServerState(data_dir=tmp_path, catalog=catalog))
    catalog.close()


def run_costed(
    session: Session,
    handler: Callable[[Session, Request], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[float], Any]:
    """Run ``handler`` wrapped with 5 ms + 40 ms, recording the waits instead of sleeping."""
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    monkeypatch.setattr(cost.asyncio, "sleep", fake_sleep)
    wrapped = cost.costed(handler, cost.OpCost(agent_ms=5, catalog_ms=40))
    try:
        result: Any = drive(wrapped(session, Request(api=0)))
    except IrodsError as e:
        result = e
    return waits, result


def test_a_read_pays_the_agent_cost_only(session: Session, monkeypatch: Any) -> None:
    async def read(s: Session, req: Request) -> Reply:
        s.state.catalog.db.execute("SELECT count(*) FROM r_coll_main").fetchone()
        return Reply(int_info=7)

    waits, reply = run_costed(session, read, monkeypatch)
    assert waits == [0.005]
    assert reply.int_info == 7


def test_a_catalog_write_pays_both_and_is_committed_before_the_wait(
    session: Session, monkeypatch: Any
) -> None:
    db = session.state.catalog.db
    committed_before_wait: list[bool] = []

    async def fake_sleep(seconds: float) -> None:
        committed_before_wait.append(not db.in_transaction)

    async def write(s: Session, req: Request) -> Reply:
        db.execute("BEGIN")
        db.execute("UPDATE r_coll_main SET r_comment = 'x' WHERE coll_name = '/tempZone'")
        return Reply()

    waits, _ = run_costed(session, write, monkeypatch)
    assert waits == [0.045]
    monkeypatch.setattr(cost.asyncio, "sleep", fake_sleep)
    drive(cost.costed(write, cost.OpCost(1, 1))(session, Request(api=0)))
    assert committed_before_wait == [True]


def test_an_irods_error_after_a_write_pays_both(session: Session, monkeypatch: Any) -> None:
    async def fail(s: Session, req: Request) -> Reply:
        s.state.catalog.db.execute(
            "UPDATE r_coll_main SET r_comment = 'y' WHERE coll_name = '/tempZone'"
        )
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", "no")

    waits, err = run_costed(session, fail, monkeypatch)
    assert isinstance(err, IrodsError)
    assert waits == [0.045]


def test_a_handler_doing_several_requests_work_is_charged_per_unit(
    session: Session, monkeypatch: Any
) -> None:
    """A bulk put (689) stores each file as one rsDataObjPut: charged once per file, on
    success and on a failure part-way (the files it stored so far)."""

    async def bundle(s: Session, req: Request) -> Reply:
        s.state.catalog.db.execute(
            "UPDATE r_coll_main SET r_comment = 'z' WHERE coll_name = '/tempZone'"
        )
        s.scratch["cost_units"] = 3
        return Reply()

    async def part_way(s: Session, req: Request) -> Reply:
        s.state.catalog.db.execute(
            "UPDATE r_coll_main SET r_comment = 'w' WHERE coll_name = '/tempZone'"
        )
        s.scratch["cost_units"] = 2
        raise IrodsError("USER_CHKSUM_MISMATCH", "second file")

    assert run_costed(session, bundle, monkeypatch)[0] == [0.135]
    assert "cost_units" not in session.scratch
    assert run_costed(session, part_way, monkeypatch)[0] == [0.09]
    session.scratch["cost_units"] = 9  # a stale count from elsewhere is not charged

    async def read(s: Session, req: Request) -> Reply:
        return Reply()

    assert run_costed(session, read, monkeypatch)[0] == [0.005]


def test_an_inactive_cost_wraps_nothing() -> None:
    before = dict(HANDLERS)
    cost.install(cost.OpCost())
    assert before == HANDLERS


def test_a_server_with_a_cost_answers_no_faster_than_it(tmp_path: Path) -> None:
    """Lower bound only (a sleep never ends early): 10 queries at 60 ms each take >= 0.6 s."""
    with ServerProcess(tmp_path / "slow", cost="60,0") as srv, srv.session() as s:
        s.collections.get("/tempZone/home/rods")  # connect and authenticate first
        started = time.monotonic()
        for _ in range(10):
            s.collections.get("/tempZone/home/rods")
        slow = time.monotonic() - started
    assert slow >= 0.6
    log = (tmp_path / "slow.server.log").read_text()
    assert "per-operation cost: 60 ms per request + 0 ms per catalog write" in log
