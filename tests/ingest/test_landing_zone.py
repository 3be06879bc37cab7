"""The landing-zone example handler: files leave the zone only once safely in iRODS."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from services.ingest.store import JobState
from tests.ingest.conftest import append, rods_account

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "services" / "ingest" / "examples" / "landing_zone.py"
)


def landing_job(ingest, zone, **cfg):
    job = ingest.job(zone, None, append_json=cfg)
    job.handler = EXAMPLE.read_text()
    job.handler_label = "landing_zone.py"
    return job


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


async def test_move_after_verified_put(ingest, irods_session, tmp_path):
    zone, done = tmp_path / "zone", tmp_path / "done"
    (zone / "run1").mkdir(parents=True)
    append(zone / "run1" / "a.dat", b"A" * 1000, later=None)
    append(zone / "b.dat", b"B" * 10, later=None)
    append(zone / "young.dat", b"still being written", later=None)
    for p in (zone / "run1" / "a.dat", zone / "b.dat"):
        age(p, 600)
    ingest.give(zone)  # the owner's landing zone: the handler moves files out of it
    await ingest.start(1)
    job = await ingest.run(landing_job(ingest, zone, after="move", done_dir=str(done), min_age=60))
    assert job.state is JobState.COMPLETED and job.counters["files_failed"] == 0
    assert (done / "run1" / "a.dat").read_bytes() == b"A" * 1000
    assert (done / "b.dat").exists() and not (zone / "b.dat").exists()
    assert (zone / "young.dat").exists()  # too young: untouched, not in iRODS yet
    assert not irods_session.data_objects.exists(f"{ingest.collection}/young.dat")
    with irods_session.data_objects.open(f"{ingest.collection}/run1/a.dat", "r") as f:
        assert f.read() == b"A" * 1000
    # the next pass leaves the moved files' objects alone
    again = await ingest.rerun(job)
    assert irods_session.data_objects.exists(f"{ingest.collection}/b.dat")
    assert again.counters["files_failed"] == 0


async def test_delete_after_verified_put(ingest, irods_session, tmp_path):
    zone = tmp_path / "zone"
    zone.mkdir()
    append(zone / "x.dat", b"x" * 5000, later=None)
    age(zone / "x.dat", 600)
    ingest.give(zone)
    await ingest.start(1)
    job = await ingest.run(landing_job(ingest, zone, after="delete", min_age=60))
    assert job.counters["files_created"] == 1 and job.counters["files_failed"] == 0
    assert not (zone / "x.dat").exists()
    assert irods_session.data_objects.get(f"{ingest.collection}/x.dat").size == 5000


@pytest.fixture(scope="module")
def md5_zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A zone whose default_hash_scheme is MD5 (as server_config.json can set it)."""
    with ServerProcess(tmp_path_factory.mktemp("md5") / "data", hash_scheme="MD5") as srv:
        yield srv


async def test_verifies_in_an_md5_zones_scheme(ingest, md5_zone, tmp_path):
    """On an MD5 zone iRODS answers the checksum request (API 629) with 32 hex digits, no
    ``sha2:``: the file is hashed in MD5 to compare, and leaves the zone once it matches."""
    zone, done = tmp_path / "zone", tmp_path / "done"
    zone.mkdir()
    data = b"m" * 70_000
    append(zone / "m.dat", data, later=None)
    age(zone / "m.dat", 600)
    ingest.give(zone)
    ingest.account = rods_account(md5_zone)
    await ingest.start(1)
    job = await ingest.run(landing_job(ingest, zone, after="move", done_dir=str(done), min_age=60))
    assert job.state is JobState.COMPLETED, job.error
    assert job.counters["files_created"] == 1 and job.counters["files_failed"] == 0
    assert (done / "m.dat").read_bytes() == data and not (zone / "m.dat").exists()
    with md5_zone.session() as s:
        obj = s.data_objects.get(f"{ingest.collection}/m.dat")
        assert obj.checksum == hashlib.md5(data, usedforsecurity=False).hexdigest()
