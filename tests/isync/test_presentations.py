"""isync against the test server presenting as iRODS 4.3.4 and as 5.0.2
(``devtools/irods_server/presentation.py``; issue 14: "the stager is tested against
both"): a -K put of small files (606 and open/write/close) and of a large one (ranges over
several connections), a rerun that skips them all, a -K get back, and every connection
logged out (``RODS_DISCONNECT``: a real agent logs errors for each one that is not,
``server/core/src/rsApiHandler.cpp``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from tests.isync.conftest import CliResult

HOME = "/tempZone/home/rods"
THRESHOLD = ["--large-threshold", "1M", "--single-buffer-max", "8"]


@pytest.fixture(scope="module", params=["4.3.4", "5.0.2"])
def zone(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp(f"presents_{request.param}") / "data"
    with ServerProcess(data, presents=request.param) as srv:
        yield srv


def test_round_trip_against_each_presentation(
    zone: ServerProcess, run_isync: Callable[..., CliResult], tmp_path: Path, unique_name: str
) -> None:
    env = {"IRODS_HOST": zone.host, "IRODS_PORT": str(zone.port)}

    def run(*args: str) -> CliResult:
        return run_isync(*args, environ=env)

    with zone.session() as s:
        assert ".".join(map(str, s.server_version)) == zone.presents
    src = tmp_path / "src"
    src.mkdir()
    files = {f"f{i}.txt": f"file {i:03d}".encode() * (1 + i % 2) for i in range(6)}
    files["big.bin"] = os.urandom(3 * 1024 * 1024)
    for name, data in files.items():
        (src / name).write_bytes(data)
    coll = f"{HOME}/{unique_name}"
    put = run("-r", "-K", *THRESHOLD, f"{src}/", f"i:{coll}")
    assert put.code == 0, put.stderr

    report = tmp_path / "again.json"
    again = run("-r", "-K", *THRESHOLD, "--report", str(report), f"{src}/", f"i:{coll}")
    assert again.code == 0, again.stderr
    outcomes = {(o["outcome"], o.get("reason")) for o in json.loads(report.read_text())["outcomes"]}
    assert outcomes == {("skipped", "unchanged")}

    down = tmp_path / "down"
    got = run("-r", "-K", *THRESHOLD, f"i:{coll}/", str(down))
    assert got.code == 0, got.stderr
    assert {p.name: p.read_bytes() for p in down.iterdir()} == files
    assert zone.unclean_disconnects() == 0
