"""Job semantics: pre/post_job once per pass, periodic passes, skipped ticks, stop."""

from __future__ import annotations

import asyncio
import itertools
import os

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


def hooks(log):
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


async def test_pre_and_post_job_once_with_several_workers(ingest, tmp_path):
    src = tmp_path / "src"
    for d in range(6):
        make_tree(src / f"d{d}", 5)
    log = tmp_path / "hooks.log"
    await ingest.start(3)
    job = await ingest.run(ingest.configured(src, op="NO_OP", log=str(log), files_per_task=1))
    assert job.state is JobState.COMPLETED
    assert job.counters["tasks_total"] == 1 + 6 + 30  # root, dirs, one task per file
    h = hooks(log)
    assert h.count("pre_job") == 1 and h.count("post_job") == 1
    assert h[0] == "pre_job" and h[-1] == "post_job"


async def test_periodic_job_fires_post_job_every_pass(ingest, tmp_path):
    src = make_tree(tmp_path / "src", 3)
    log = tmp_path / "hooks.log"
    await ingest.start(2)
    job = ingest.configured(src, op="REGISTER_SYNC", log=str(log))
    job.interval = 0.5
    await ingest.store.create(job)
    done = await ingest.wait(job.name, passes=3)
    assert done.periodic and done.state is JobState.WAITING
    await ingest.store.stop(job.name)
    await asyncio.sleep(0.3)
    h = [x for x in hooks(log) if x.endswith("_job")]
    passes = (await ingest.store.get(job.name)).passes
    assert h.count("pre_job") == passes >= 3
    # every finished pass fired post_job, strictly alternating with pre_job
    assert h.count("post_job") in (passes, passes - 1)
    assert all(a != b for a, b in itertools.pairwise(h))


async def test_periodic_job_skips_ticks_while_a_pass_runs(ingest, tmp_path):
    src = make_tree(tmp_path / "src", 4)
    log = tmp_path / "hooks.log"
    await ingest.start(1, concurrency=1)
    job = ingest.configured(src, op="NO_OP", log=str(log), sleep=0.3, files_per_task=1)
    job.interval = 0.2  # a pass takes ~1.2 s: five ticks fall inside it
    await ingest.store.create(job)
    await ingest.wait(job.name, passes=2, limit=30)
    await ingest.store.stop(job.name)
    h = [x for x in hooks(log) if x.endswith("_job")]
    assert h[:4] == ["pre_job", "post_job", "pre_job", "post_job"]
    lines = [x for x in hooks(log) if x in ("pre_job", "pre_data_obj_create", "post_job")]
    first_pass = lines[: lines.index("post_job")]
    assert first_pass.count("pre_job") == 1  # no second pass started inside the first


async def test_stop_drops_queued_work(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 30)
    log = tmp_path / "hooks.log"
    await ingest.start(1, concurrency=1)
    job = ingest.configured(src, op="REGISTER_SYNC", log=str(log), sleep=0.1, files_per_task=1)
    await ingest.store.create(job)
    for _ in range(200):
        if hooks(log).count("post_data_obj_create") >= 2:
            break
        await asyncio.sleep(0.05)
    stopped = await ingest.store.stop(job.name)
    assert stopped.state is JobState.STOPPED
    await asyncio.sleep(1.0)
    created = hooks(log).count("post_data_obj_create")
    assert 2 <= created < 10
    await asyncio.sleep(0.5)
    assert hooks(log).count("post_data_obj_create") == created  # nothing more ran
    ch = await ingest.connections[0].channel()
    q = await ch.declare_queue(ingest.names.ingest_files_queue, passive=True)
    assert q.declaration_result.message_count == 0  # the rest was consumed and dropped


async def test_root_that_cannot_be_listed_fails_the_job(ingest, irods_session, tmp_path):
    """A root the owner cannot list (or that is gone) at scan time ends the job FAILED with
    a clear error, not COMPLETED with one failed task; no target collection is made."""
    src = make_tree(tmp_path / "src", 2)
    os.chmod(src, 0)
    await ingest.start(1)
    target = f"{ingest.collection}/unlisted"
    job = await ingest.run(ingest.job(src, target=target))
    assert job.state is JobState.FAILED, job
    assert job.error == (
        f"root {src} cannot be listed: Permission denied: the job's owner must be able to "
        "read and enter it"
    )
    assert not irods_session.collections.exists(target)
    gone = tmp_path / "gone"
    gone.mkdir()
    job2 = ingest.job(gone, target=target)
    gone.rmdir()
    job2 = await ingest.run(job2)
    assert job2.state is JobState.FAILED
    assert job2.error == f"root {gone} is not a readable directory"
