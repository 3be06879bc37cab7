"""A worker process SIGKILLed between a task's counter commit and its ack: the pass still
counts every task once, and post_job fires once, after every file is in iRODS."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.ingest.store import Job, JobState, JobStore, done_table
from services.ingest.worker import CRASH_ENV
from tests.ingest.conftest import make_tree

REPO = Path(__file__).resolve().parents[2]
FILES, DIRS, TASKS = 20, 4, 14  # root: 2 files + 3 dirs of 6; 2 files per task


def worker_env(ingest: Any, irods_server: Any, db_url: str, crash: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        **ingest.env(),  # signing keys, allowed roots
        "STAGER_INGEST__DB_URL": db_url,
        "STAGER_BROKER__PREFIX": ingest.names.prefix,
        "STAGER_INGEST__CONCURRENCY": "1",
        "STAGER_HTTP_PORT": "0",  # several workers side by side
        "STAGER_IRODS__HOST": irods_server.host,
        "STAGER_IRODS__PORT": str(irods_server.port),
        "STAGER_IRODS__USER": "rods",
        "STAGER_IRODS__ZONE": "tempZone",
        "STAGER_IRODS__PASSWORD": irods_server.admin_password,
    }
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return env


async def spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ingest",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_finished(store: JobStore, name: str, limit: float = 90.0) -> Job:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = await store.get(name)
        if job.state not in (JobState.WAITING, JobState.RUNNING):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {name} did not finish: {await store.get(name)}")


def make_source(tmp_path: Path) -> Path:
    """The FILES/DIRS tree under ``tmp_path/src``: 2 files at the root, 3 dirs of 6."""
    src = tmp_path / "src"
    make_tree(src, 2)
    for d in range(3):
        make_tree(src / f"d{d}", 6)
    return src


async def stop(procs: list[asyncio.subprocess.Process], store: JobStore) -> None:
    """Terminate the workers still running, wait for every one, then close the store."""
    for p in procs:
        if p.returncode is None:
            p.terminate()
    for p in procs:
        await p.wait()
    await store.close()


@pytest.mark.parametrize("crash", ["dir:2", "files:3", "any:14"])
async def test_killed_after_commit_counts_once(
    crash, db_url, ingest, irods_server, irods_session, tmp_path
):
    src = make_source(tmp_path)
    log = tmp_path / "hooks.log"
    irods = {
        "host": irods_server.host,
        "port": irods_server.port,
        "password": irods_server.admin_password,
    }
    job = ingest.configured(
        src, op="REGISTER_SYNC", log=str(log), files_per_task=2, count_objects=irods
    )
    store = await JobStore.open(db_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        await store.create(job)
        first = await spawn(worker_env(ingest, irods_server, db_url, crash))
        procs.append(first)
        assert await asyncio.wait_for(first.wait(), 90) == -9  # killed by its hook
        killed = await store.get(job.name)
        assert killed.state is JobState.RUNNING  # the pass did not end (nor early)
        if crash == "any:14":  # the last task: counters complete, the pass not ended
            assert killed.pending == 0 and "post_job" not in log.read_text()
        else:
            assert killed.pending >= 1

        procs.append(await spawn(worker_env(ingest, irods_server, db_url, None)))
        done = await wait_finished(store, job.name)
        c = done.counters
        assert done.state is JobState.COMPLETED, done.error
        assert (c["files_seen"], c["files_created"], c["dirs"]) == (FILES, FILES, DIRS)
        assert c["tasks_done"] == c["tasks_total"] == TASKS
        assert c["files_failed"] == c["tasks_failed"] == 0
        hooks = [line.split()[:2] for line in log.read_text().splitlines()]
        assert [h for h in hooks if h[0] == "pre_job"] == [["pre_job", job.target]]
        # post_job fired once, and it saw every file in iRODS already
        assert [h for h in hooks if h[0] == "post_job"] == [["post_job", f"objects={FILES}"]]
        assert irods_session.data_objects.exists(f"{job.target}/d2/5")
        async with store.engine.connect() as conn:
            left = await conn.execute(sa.select(sa.func.count()).select_from(done_table))
            assert left.scalar() == 0  # the pass's task rows went with it
    finally:
        await stop(procs, store)


@pytest.mark.parametrize("op", ["REGISTER_SYNC", "PUT", "PUT_SYNC"])
async def test_redelivered_batch_rechecks_the_catalog(
    op, db_url, ingest, irods_server, irods_session, tmp_path
):
    """A worker killed after a file batch was synced but before its counters were
    committed: the redelivered batch finds its objects in the catalog and counts them as
    created, once: none failed, none registered or put twice."""
    src = make_source(tmp_path)
    job = ingest.configured(src, op=op, files_per_task=2)
    store = await JobStore.open(db_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        await store.create(job)
        first = await spawn(worker_env(ingest, irods_server, db_url, "files:2:before"))
        procs.append(first)
        assert await asyncio.wait_for(first.wait(), 90) == -9
        killed = await store.get(job.name)
        assert killed.state is JobState.RUNNING
        # the killed batch was synced (in iRODS), its counters were not committed
        assert killed.counters["files_created"] + 2 <= FILES

        procs.append(await spawn(worker_env(ingest, irods_server, db_url, None)))
        done = await wait_finished(store, job.name)
        c = done.counters
        assert done.state is JobState.COMPLETED, done.error
        assert (c["files_seen"], c["files_created"], c["files_failed"]) == (FILES, FILES, 0), c
        assert c["files_modified"] == 0 and c["tasks_failed"] == 0
        for d in range(3):
            for i in range(6):
                obj = irods_session.data_objects.get(f"{job.target}/d{d}/{i}")
                assert len(obj.replicas) == 1, obj.path
                assert obj.size == i
    finally:
        await stop(procs, store)


async def test_killed_between_claim_and_start_pass_is_taken_over(
    db_url, ingest, irods_server, irods_session, tmp_path
):
    """A worker SIGKILLed right after claiming a pass (before pre_job and the root task):
    once the claim's lease (STAGER_INGEST__CLAIM_LEASE) ends another worker starts the pass
    (pre_job once), instead of the job staying RUNNING with nothing queued."""
    src = tmp_path / "src"
    make_tree(src, 4)
    log = tmp_path / "hooks.log"
    job = ingest.configured(src, op="REGISTER_SYNC", log=str(log))
    store = await JobStore.open(db_url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        await store.create(job)
        lease = {"STAGER_INGEST__CLAIM_LEASE": "2"}
        first = await spawn({**worker_env(ingest, irods_server, db_url, "claim:1"), **lease})
        procs.append(first)
        assert await asyncio.wait_for(first.wait(), 90) == -9
        killed = await store.get(job.name)
        assert killed.state is JobState.RUNNING and killed.pending == 1
        assert not log.exists()  # no pre_job, no root task

        procs.append(await spawn({**worker_env(ingest, irods_server, db_url, None), **lease}))
        done = await wait_finished(store, job.name, limit=60)
        assert done.state is JobState.COMPLETED, done.error
        assert done.generation == killed.generation and done.passes == 1
        assert done.counters["files_created"] == 4 and done.counters["tasks_failed"] == 0
        hooks = [line.split()[0] for line in log.read_text().splitlines()]
        assert hooks.count("pre_job") == 1 and hooks.count("post_job") == 1
    finally:
        await stop(procs, store)
