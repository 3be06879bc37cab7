"""The iRODS server restarts while an ingest job puts files (issue 12, found by the fault
campaign): the files whose connections were lost are tried again on new connections once
the server is back, none is put or counted twice, and the pass ends with every file in the
catalog and exact counters."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.irods_server.launcher import ServerProcess
from services.ingest.diff import list_data_objects
from services.ingest.store import JobState
from tests.ingest.conftest import rods_account

DIRS, PER_DIR, SIZE = 4, 60, 48 * 1024
FILES = DIRS * PER_DIR
#: seconds the server stays down: longer than the first retry delays (2 s, then 4 s)
DOWN = 3.0


def make_files(root: Path) -> dict[str, bytes]:
    """``DIRS`` directories of ``PER_DIR`` files; relative path -> content."""
    out = {}
    for d in range(DIRS):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(PER_DIR):
            rel = f"d{d}/f{i:03d}"
            data = hashlib.sha256(rel.encode()).digest() * (SIZE // 32)
            (root / rel).write_bytes(data)
            out[rel] = data
    return out


@pytest.fixture
def private_server(tmp_path: Path) -> Any:
    """An iRODS test server of this test alone (it is stopped and started again), a few
    milliseconds per operation so that the job is still putting files when it stops."""
    srv = ServerProcess(tmp_path / "irods-data", cost="4,4").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.timeout(240)
async def test_files_put_across_an_irods_restart_all_arrive_counted_once(
    ingest: Any, tmp_path: Path, private_server: ServerProcess
) -> None:
    srv = private_server
    ingest.account = rods_account(srv)
    root = tmp_path / "tree"
    files = make_files(root)
    ingest.give(root)
    await ingest.start(1, concurrency=4)
    job = ingest.job(root, "put", files_per_task=10)
    await ingest.store.create(job)

    # stop the server once the job has put some files, not yet all of them
    deadline = time.monotonic() + 60
    while True:
        row = await ingest.store.get(job.name)
        done = row.counters.get("files_created", 0)
        if done >= 20:
            break
        assert time.monotonic() < deadline, f"the job did not start putting files: {row}"
        await asyncio.sleep(0.02)
    assert done < FILES, "the job ended before the restart: nothing was tested"
    await asyncio.to_thread(srv.stop)
    await asyncio.sleep(DOWN)
    await asyncio.to_thread(srv.start)

    final = await ingest.wait(job.name, limit=180)
    c = final.counters
    assert final.state is JobState.COMPLETED, final
    assert c.get("files_failed", 0) == 0, c
    assert c.get("tasks_failed", 0) == 0, c
    assert c["files_seen"] == FILES, c
    assert c["files_created"] == FILES, c  # each file once: none counted twice
    assert c["bytes"] == FILES * SIZE, c
    assert c.get("retries", 0) >= 1, f"no try was lost: the restart hit nothing in flight {c}"

    with srv.session() as s:
        for d in range(DIRS):
            coll = f"{job.target}/d{d}"
            catalog = list_data_objects(s, coll)
            assert sorted(catalog) == sorted(f"f{i:03d}" for i in range(PER_DIR)), coll
            for name, replicas in catalog.items():
                assert len(replicas) == 1, (coll, name, replicas)  # no second replica
                assert replicas[0].size == SIZE, (coll, name, replicas)
        for rel, data in files.items():
            with s.data_objects.open(f"{job.target}/{rel}", "r") as f:
                assert f.read() == data, rel
