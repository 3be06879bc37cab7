"""isync against the test server presenting as iRODS 4.3.4 and as 5.0.2
(``devtools/irods_server/presentation.py``; issue 14: "the stager is tested against
both"): a -K put of small files (606 and open/write/close) and of a large one (ranges over
several connections), each object left with one good replica and its checksum and no
part object behind, a rerun that skips them all, a -K get back, and every connection
logged out (``RODS_DISCONNECT``: a real agent logs errors for each one that is not,
``server/core/src/rsApiHandler.cpp``); an interrupted large put leaves its part object
not good (a partly written replica is stale or intermediate, never good:
``rsDataObjClose.cpp``, ``initServer.cpp``) and the rerun finishes it good."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from tests.isync.conftest import CliResult, spawn
from tests.isync.test_interrupted_bytes import MiB, interrupt_after_8_mib

HOME = "/tempZone/home/rods"
THRESHOLD = ["--large-threshold", "1M", "--single-buffer-max", "8"]


@pytest.fixture(scope="module", params=["4.3.4", "5.0.2"])
def zone(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp(f"presents_{request.param}") / "data"
    with ServerProcess(data, presents=request.param) as srv:
        yield srv


def replica_states(srv: ServerProcess, coll: str) -> dict[str, list[tuple[str, int, bool]]]:
    """name -> [(status, size, has a checksum)] of every object (part objects included)."""
    with srv.session() as s:
        return {
            o.name: [(r.status, r.size, bool(r.checksum)) for r in o.replicas]
            for o in s.collections.get(coll).data_objects
        }


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
    assert replica_states(zone, coll) == {n: [("1", len(d), True)] for n, d in files.items()}

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


def test_an_interrupted_put_leaves_its_part_object_not_good(
    zone: ServerProcess, isync_environ: dict[str, str], tmp_path: Path, unique_name: str
) -> None:
    env = {**isync_environ, "IRODS_HOST": zone.host, "IRODS_PORT": str(zone.port)}
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(48 * MiB)
    (src / "big.bin").write_bytes(data)
    coll = f"{HOME}/{unique_name}"
    args = ["-r", "--json", "--bwlimit", "16M", "--buffer-size", "1M", f"{src}/", f"i:{coll}"]
    interrupt_after_8_mib(args, env)
    states = replica_states(zone, coll)
    assert "big.bin" not in states  # the final name appears only once the data is complete
    [part] = [n for n in states if n.endswith(".isync-part")]
    assert all(status != "1" for status, _, _ in states[part]), states
    rerun = spawn(["-r", "-K", f"{src}/", f"i:{coll}"], env)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert replica_states(zone, coll) == {"big.bin": [("1", len(data), True)]}
