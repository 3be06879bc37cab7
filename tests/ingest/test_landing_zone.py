"""The landing-zone example handler: files leave the zone only once safely in iRODS."""

from __future__ import annotations

import os
import time
from pathlib import Path

from services.ingest.store import JobState
from tests.ingest.conftest import append

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
