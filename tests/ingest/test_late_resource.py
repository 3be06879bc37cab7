"""A resource created after the ingest worker connected (issue 14, seen on a 5.0.2 zone).

A real agent loads the resource list once, when it starts (``resc_mgr.init_from_catalog``
in ``initServerInfo``, ``server/core/src/initServer.cpp``); the test server does the same
per connection (strict default). Ingest's pooled connections live for the whole worker, so
it must renew them once on SYS_RESC_DOES_NOT_EXIST (``services/ingest/sessions.py``).
Test iRODS server, RabbitMQ, workers: real parts.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


async def test_ingest_to_a_resource_made_after_the_worker_connected(
    ingest: Any, irods_session: Any, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    first = await ingest.run(ingest.configured(src, op="PUT"))
    assert first.counters["files_created"] == 3  # the worker's connections are open now
    late = f"late{uuid.uuid4().hex[:6]}"
    vault = tmp_path / "vault-late"
    vault.mkdir()
    irods_session.resources.create(late, "unixfilesystem", host="localhost", path=str(vault))
    again = await ingest.rerun(first, op="REGISTER_AS_REPLICA_SYNC", resource=late)
    assert again.state is JobState.COMPLETED, again.error
    assert again.counters["files_failed"] == 0, again.counters
    assert again.counters["files_created"] == 3, again.counters
    obj = irods_session.data_objects.get(f"{ingest.collection}/2")
    assert late in {r.resource_name for r in obj.replicas}


async def test_a_resource_that_does_not_exist_fails_each_file_readably(
    ingest: Any, tmp_path: Path, capfd: Any
) -> None:
    """The one renewal does not hide a resource that is really missing: each file fails
    once, and its log line names the textless zone error (never ``error=None``; with
    ``str(e)`` in processing.py the line says ``"error": "None"`` - checked)."""
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT", resource="no_such_resc"))
    assert job.counters["files_failed"] == 2, job.counters
    logs = capfd.readouterr()
    text = logs.out + logs.err
    assert "iRODS error SYS_RESC_DOES_NOT_EXIST (-78000)" in text
    assert "error=None" not in text and '"error": "None"' not in text
