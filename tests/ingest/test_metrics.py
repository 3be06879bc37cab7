"""The ingest worker's metrics count what its passes and tasks did."""

from __future__ import annotations

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


async def test_passes_tasks_files_and_bytes_are_counted(ingest, tmp_path):
    src = make_tree(tmp_path / "src", 4, depth=1)
    (tmp_path / "src" / "unreadable").write_text("x")
    (tmp_path / "src" / "unreadable").chmod(0o600)  # root's: the owner cannot read it
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src.parent, op="PUT", files_per_task=2))
    assert job.state is JobState.COMPLETED
    m = ingest.workers[0].metrics.registry.get_sample_value
    assert m("stager_ingest_passes_total", {"event": "started"}) == 1
    assert m("stager_ingest_passes_total", {"event": "finished"}) == 1
    assert m("stager_ingest_tasks_total", {"kind": "dir", "outcome": "done"}) == 2
    assert m("stager_ingest_tasks_total", {"kind": "files", "outcome": "done"}) == 2
    assert m("stager_ingest_files_total", {"outcome": "created"}) == 4
    assert m("stager_ingest_files_total", {"outcome": "unreadable"}) == 1
    assert m("stager_ingest_bytes_total") == sum(range(4))

    failed = await ingest.run(ingest.job(tmp_path / "src", owner="root"))
    assert failed.state is JobState.FAILED
    assert m("stager_ingest_passes_total", {"event": "failed"}) == 1
