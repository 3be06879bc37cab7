"""Two real worker processes (``python -m services.ingest``) share one job."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree

REPO = Path(__file__).resolve().parents[2]


async def test_two_worker_processes_pre_post_once(ingest, irods_server, irods_session, tmp_path):
    env = {
        **os.environ,
        **ingest.env(),  # signing keys, allowed roots
        "STAGER_INGEST__DB_URL": f"sqlite+aiosqlite:///{ingest.tmp}/ingest.sqlite",
        "STAGER_BROKER__PREFIX": ingest.names.prefix,
        "STAGER_INGEST__CONCURRENCY": "2",
        "STAGER_HTTP_PORT": "0",  # several workers side by side
        "STAGER_IRODS__HOST": irods_server.host,
        "STAGER_IRODS__PORT": str(irods_server.port),
        "STAGER_IRODS__USER": "rods",
        "STAGER_IRODS__ZONE": "tempZone",
        "STAGER_IRODS__PASSWORD": irods_server.admin_password,
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.ingest",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        src = tmp_path / "src"
        for d in range(4):
            make_tree(src / f"d{d}", 6)
        log = tmp_path / "hooks.log"
        job = ingest.configured(src, op="REGISTER_SYNC", log=str(log), files_per_task=2)
        done = await ingest.run(job, limit=90)
        assert done.state is JobState.COMPLETED
        assert done.counters["files_created"] == 24
        hooks = [line.split()[0] for line in log.read_text().splitlines()]
        assert hooks.count("pre_job") == 1 and hooks.count("post_job") == 1
        assert irods_session.data_objects.exists(f"{ingest.collection}/d3/5")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await p.wait()
