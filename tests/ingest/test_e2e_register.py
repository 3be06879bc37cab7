"""REGISTER_SYNC end to end: test iRODS server, real RabbitMQ, in-process workers."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree, mtime


def _obj(session, path):
    return session.data_objects.get(path)


async def test_register_then_resync_after_growth(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 10)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register", files_per_task=3))
    assert job.state is JobState.COMPLETED
    assert job.counters["files_created"] == 10
    for i in range(10):
        obj = _obj(irods_session, f"{ingest.collection}/{i}")
        assert obj.replicas[0].path == str(src / str(i))
        assert obj.size == i
        assert obj.modify_time == datetime.fromtimestamp(mtime(src / str(i)), UTC)
        with obj.open("r") as f:
            assert f.read() == b"i" * i

    # grow two files (and move their mtime), chmod another: only the grown ones change
    for i in (2, 5):
        (src / str(i)).write_text("i" * (2 * i + 1))
        os.utime(src / str(i), (time.time() + 5, time.time() + 5))
    os.chmod(src / "7", 0o604)  # still readable by the owner
    before7 = _obj(irods_session, f"{ingest.collection}/7").modify_time
    job2 = ingest.job(src, "register")
    job2.name = job.name
    job2 = await ingest.run(job2)
    assert job2.counters["files_modified"] == 2
    assert job2.counters["files_skipped"] == 8
    for i in (2, 5):
        obj = _obj(irods_session, f"{ingest.collection}/{i}")
        assert obj.size == 2 * i + 1
        assert obj.modify_time == datetime.fromtimestamp(mtime(src / str(i)), UTC)
    assert _obj(irods_session, f"{ingest.collection}/7").modify_time == before7
