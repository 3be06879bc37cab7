"""Two real worker processes (``python -m services.ingest``) share one job, and log JSON."""

from __future__ import annotations

import asyncio
import json
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
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    logs = [asyncio.create_task(p.stderr.read()) for p in procs if p.stderr]
    try:
        src = tmp_path / "src"
        for d in range(4):
            make_tree(src / f"d{d}", 6)
        (src / "secret").write_text("root's")
        (src / "secret").chmod(0o600)  # the owner's child logs that it skips it
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
    # every line of both workers and their owners' children is one JSON object; the lines
    # of the job's work carry its id, the workers' and the children's alike
    lines = [json.loads(line) for t in logs for line in (await t).decode().splitlines()]
    about = [x for x in lines if x.get("ingest_job") == job.name]
    assert {"ingest pass started", "ingest pass finished"} <= {x["event"] for x in about}
    assert any(x["event"] == "ingest.child_started" for x in lines)
    skipped = [x for x in about if x["event"] == "physical path is not readable; skipped"]
    assert [x["path"] for x in skipped] == [str(src / "secret")]
    errors = [x for x in lines if x["level"] in ("error", "critical") and x not in skipped]
    assert not errors, errors
