"""What the web UI needs of the API beyond the life cycle: a worker's report (failed files,
checksum result, a dry run's plan) stored and shown, dry-run jobs, and job listings paged
at the API (``offset``/``limit``, ``total``), filtered by state. Real RabbitMQ and both
stores (the ``api`` fixture)."""

from __future__ import annotations

from shared.messaging.messages import (
    FileError,
    PlanEntry,
    PlanSummary,
    TaskMessage,
    TaskReport,
)
from tests.api.conftest import ALICE, Api, job
from tests.api.test_jobs import send_event, wait_for


async def test_report_is_stored_and_shown_in_the_detail(api: Api) -> None:
    h = api.bearer(ALICE)
    task_id = (await (await api.client.post("/v1/job", json=job(), headers=h)).json())["id"]
    errors = [
        FileError(path=f"/project/x/f{i}", error=f"f{i}: permission denied") for i in range(3)
    ]
    report = TaskReport(
        file_errors=errors, file_errors_total=70, checksum="mismatch", checksum_files=5
    )
    await send_event(
        api, task_id=task_id, attempt=1, seq=1, state="archived", error="3 failed", report=report
    )
    body = await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "archived")
    status = body["status"]
    assert status["checksum"] == "mismatch" and status["checksumFiles"] == 5
    assert status["fileErrorsTotal"] == 70
    assert [e["path"] for e in status["fileErrors"]] == [e.path for e in errors]
    assert status["fileErrors"][1]["error"] == "f1: permission denied"
    # listings carry the result and the count, not the file list
    listed = await (await api.client.get("/v1/jobs", headers=h)).json()
    [row] = listed["jobs"]
    assert row["status"]["checksum"] == "mismatch" and row["status"]["fileErrors"] is None
    assert row["status"]["fileErrorsTotal"] == 70
    # a restart starts a new run without the old report
    r = await api.client.put(f"/v1/job/scheduled/{task_id}", headers=h)
    assert r.status == 200, await r.text()
    again = await (await api.client.get(f"/v1/job/{task_id}", headers=h)).json()
    assert again["status"]["checksum"] is None and again["status"]["fileErrors"] is None
    assert again["status"]["fileErrorsTotal"] == 0


async def test_dry_run_job_carries_the_flag_and_its_plan(api: Api) -> None:
    h = api.bearer(ALICE)
    r = await api.client.post("/v1/jobs", json={"jobs": [job(dryRun=True)]}, headers=h)
    assert r.status == 200, await r.text()
    [info] = (await r.json())["jobs"]
    assert info["data"]["dryRun"] is True
    [msg] = await api.queued()
    assert TaskMessage.model_validate_json(msg.body).task.dryRun is True
    plan = PlanSummary(
        transfer_files=2,
        transfer_bytes=300,
        skip_files=1,
        skip_bytes=10,
        conflict_files=1,
        entries=[
            PlanEntry(src="/p/a", dst="/z/a", action="transfer", size=100),
            PlanEntry(src="/p/b", dst="/z/b", action="conflict", reason="exists and differs"),
        ],
        entries_total=4,
    )
    report = TaskReport(plan=plan)
    await send_event(api, task_id=info["id"], attempt=1, seq=1, state="completed", report=report)
    body = await wait_for(api, info["id"], h, lambda b: b["status"]["status"] == "completed")
    got = body["status"]["dryRun"]
    assert got["transfer_files"] == 2 and got["transfer_bytes"] == 300
    assert got["conflict_files"] == 1 and got["entries_total"] == 4
    assert [e["action"] for e in got["entries"]] == ["transfer", "conflict"]
    # a job without the flag is a real transfer
    r = await api.client.post("/v1/job", json=job(), headers=h)
    assert (await r.json())["data"]["dryRun"] is False


async def test_listing_is_paged_and_filtered_at_the_api(api: Api) -> None:
    h = api.bearer(ALICE)
    ids = []
    for i in range(5):
        r = await api.client.post("/v1/job", json=job(title=f"j{i}"), headers=h)
        ids.append((await r.json())["id"])
    newest_first = list(reversed(ids))
    await send_event(api, task_id=ids[0], attempt=1, seq=1, state="completed")
    await wait_for(api, ids[0], h, lambda b: b["status"]["status"] == "completed")

    page = await (await api.client.get("/v1/jobs?offset=0&limit=2", headers=h)).json()
    assert [j["id"] for j in page["jobs"]] == newest_first[:2]
    assert (page["total"], page["offset"], page["limit"]) == (5, 0, 2)
    page = await (await api.client.get("/v1/jobs?offset=4&limit=2", headers=h)).json()
    assert [j["id"] for j in page["jobs"]] == newest_first[4:] and page["total"] == 5
    page = await (await api.client.get("/v1/jobs/pending?limit=3", headers=h)).json()
    assert [j["id"] for j in page["jobs"]] == newest_first[:3] and page["total"] == 4
    page = await (await api.client.get("/v1/jobs/completed", headers=h)).json()
    assert [j["id"] for j in page["jobs"]] == [ids[0]] and page["total"] == 1
    page = await (await api.client.get("/v1/jobs", headers=h)).json()
    assert len(page["jobs"]) == 5 and page["total"] == 5 and page["limit"] == 1000
    for bad in ("offset=-1", "limit=0", "limit=1001", "offset=x"):
        r = await api.client.get(f"/v1/jobs?{bad}", headers=h)
        assert r.status == 400, bad
        assert bad.split("=")[0] in (await r.json())["errorMessage"]
