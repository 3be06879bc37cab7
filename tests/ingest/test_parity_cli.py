"""``stager ingest list|stop|watch|start`` against automated ingest 0.7.0's CLI (the anchor).

The anchor's ``list`` prints ``json.dumps({"periodic": [...], "singlepass": [...],
"stopped": [...]})``, each job as ``sync_job.asdict()``: ``job_name``, ``total_tasks``,
``remaining_tasks``, ``failed_tasks``, ``retried_tasks``, ``elapsed_time``
(``str(timedelta)``) and ``start_time`` (ISO 8601, UTC, milliseconds). Its ``start -i N
--synchronous`` returns at once (``start_job`` only waits for single-pass jobs). Its ``watch``
of a periodic job returns only once the job is stopped; ours returns when the pass it
follows ends (docs/ingest.md says why). These tests read our output the way a script
written for the anchor does.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import os
import stat
import time

from services.ingest.cli import Env, main, watch
from services.ingest.store import Job, JobState, JobStore
from shared.errors import ExitStatus
from shared.settings import DEFAULT_INGEST_STORE, IngestStoreSettings

ANCHOR_FIELDS = {
    "job_name",
    "total_tasks",
    "remaining_tasks",
    "failed_tasks",
    "retried_tasks",
    "elapsed_time",
    "start_time",
}


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Env(out, err))
    return code, out.getvalue(), err.getvalue()


def a_job(name: str, interval: float | None = None) -> Job:
    return Job(name=name, root="/data", target="/tempZone/home/rods/x", interval=interval)


def anchor_script(out: str) -> dict[str, tuple[int, int, int]]:
    """What a script written for the anchor's ``list`` does with it."""
    jobs = json.loads(out)
    seen = {}
    for kind in ("periodic", "singlepass", "stopped"):
        for j in jobs[kind]:
            datetime.datetime.fromisoformat(j["start_time"])
            h, m, sec = j["elapsed_time"].split(":")
            assert int(h) >= 0 and 0 <= int(m) < 60 and 0 <= float(sec) < 60
            seen[j["job_name"]] = (j["total_tasks"], j["remaining_tasks"], j["failed_tasks"])
    return seen


async def test_list_prints_the_anchors_fields(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    store = await JobStore.open(url)
    try:
        now = time.time()
        await store.create(a_job("one"), now=now - 20)
        await store.claim("one", now=now - 10)
        await store.complete(
            "one", 1, "one.1.root", children=3, tasks_total=3, files_failed=1, retries=2
        )
        await store.create(a_job("every", interval=60), now=now)
        await store.create(a_job("halted"), now=now)
        await store.stop("halted")
    finally:
        await store.close()
    code, out, err = await asyncio.to_thread(run_main, "list", "--db_url", url)
    assert code == 0, err
    assert len(out.splitlines()) == 1  # one JSON document, as the anchor prints
    listed = json.loads(out)
    assert set(listed) == {"periodic", "singlepass", "stopped"}
    assert [j["job_name"] for j in listed["singlepass"]] == ["one"]
    assert [j["job_name"] for j in listed["periodic"]] == ["every"]
    assert [j["job_name"] for j in listed["stopped"]] == ["halted"]
    for group in listed.values():
        for j in group:
            assert set(j) >= ANCHOR_FIELDS
    one = listed["singlepass"][0]
    # the root task and its 3 children: 4 in all, 3 left; a failed file counts as failed
    assert anchor_script(out)["one"] == (4, 3, 1)
    assert one["retried_tasks"] == 2 and one["state"] == "running"
    started = datetime.datetime.fromisoformat(one["start_time"])
    assert abs(started.timestamp() - (now - 10)) < 0.01
    assert started.utcoffset() == datetime.timedelta(0)
    assert datetime.timedelta(seconds=9) < _parse_elapsed(one["elapsed_time"])
    never = listed["periodic"][0]
    assert never["start_time"] == "1970-01-01T00:00:00.000+00:00"  # as the anchor's 0
    assert never["elapsed_time"] == "0:00:00"

    code, out, _ = await asyncio.to_thread(run_main, "list", "--json", "--db_url", url)
    full = json.loads(out)["jobs"]
    assert {j["name"] for j in full} == {"one", "every", "halted"}
    assert next(j for j in full if j["name"] == "one")["counters"]["files_failed"] == 1
    assert all(set(j) >= ANCHOR_FIELDS for j in full)


def _parse_elapsed(text: str) -> datetime.timedelta:
    h, m, s = text.split(":")
    return datetime.timedelta(hours=int(h), minutes=int(m), seconds=float(s))


async def test_finished_jobs_age_out(tmp_path, monkeypatch):
    """The anchor drops a finished single-pass job from ``list`` at once (and keeps stopped
    ones forever); ours keeps every finished job for STAGER_INGEST__RETENTION seconds."""
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    store = await JobStore.open(url)
    now = time.time()
    try:
        for name, age in (("old", 7200), ("new", 60)):
            await store.create(a_job(name), now=now - age - 10)
            job = await store.claim(name, now=now - age - 5)
            assert job is not None
            await store.complete(name, job.generation, "root")
            await store.finish_pass(name, job.generation, now=now - age)
        await store.create(a_job("stopped-old"), now=now - 9000)
        await store.stop("stopped-old", now=now - 9000)
        await store.create(a_job("running-old"), now=now - 9000)
        await store.claim("running-old", now=now - 9000)
    finally:
        await store.close()
    monkeypatch.setenv("STAGER_INGEST__RETENTION", "3600")
    code, out, _ = await asyncio.to_thread(run_main, "list", "--db_url", url)
    assert code == 0
    assert set(anchor_script(out)) == {"new", "running-old"}
    monkeypatch.setenv("STAGER_INGEST__RETENTION", "0")  # 0: keep for ever
    store = await JobStore.open(url)
    try:
        assert await store.purge(0) == []
        assert {j.name for j in await store.list_jobs()} == {"new", "running-old"}
    finally:
        await store.close()


async def test_a_job_no_worker_takes_is_flagged(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    store = await JobStore.open(url)
    try:
        await store.create(a_job("lonely"), now=time.time() - 120)
        await store.create(a_job("fresh"))
    finally:
        await store.close()
    _code, out, _ = await asyncio.to_thread(run_main, "list", "--db_url", url)
    jobs = {j["job_name"]: j for j in json.loads(out)["singlepass"]}
    assert jobs["lonely"]["state"] == "waiting"
    assert "no ingest worker is consuming" in jobs["lonely"]["warning"]
    assert "warning" not in jobs["fresh"]


async def test_stop_prints_one_parseable_line(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    store = await JobStore.open(url)
    try:
        await store.create(a_job("halt-me", interval=5))
    finally:
        await store.close()
    code, out, err = await asyncio.to_thread(run_main, "stop", "halt-me", "--db_url", url)
    assert code == 0, err
    record = json.loads(out)
    assert record["job_name"] == "halt-me" and record["state"] == "stopped"
    assert set(record) >= ANCHOR_FIELDS
    code, out, _ = await asyncio.to_thread(run_main, "list", "--db_url", url)
    assert [j["job_name"] for j in json.loads(out)["stopped"]] == ["halt-me"]
    code, out, err = await asyncio.to_thread(run_main, "stop", "nope", "--db_url", url)
    assert code == ExitStatus.NOT_FOUND and "no ingest job named 'nope'" in err and not out


async def test_watch_of_a_periodic_job_returns_when_its_pass_ends(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    store = await JobStore.open(url)
    try:
        await store.create(a_job("tick", interval=3600))
        # between passes (never started): watch follows the next pass to its end
        out = io.StringIO()
        watcher = asyncio.create_task(
            watch(store, "tick", Env(out, io.StringIO()), False, poll=0.02, as_json=True)
        )
        await asyncio.sleep(0.2)
        assert not watcher.done()
        job = await store.claim("tick")
        assert job is not None
        await asyncio.sleep(0.2)
        assert not watcher.done()  # the pass runs
        await store.complete("tick", job.generation, "root")
        await store.finish_pass("tick", job.generation)
        assert await asyncio.wait_for(watcher, 10) is ExitStatus.SUCCESS
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert lines[-1]["job_name"] == "tick" and lines[-1]["state"] == "waiting"
        assert (await store.get("tick")).state is JobState.WAITING  # still periodic
        # a pass running when watch starts: watch returns when that one ends
        await store.stop("tick")
    finally:
        await store.close()


async def test_synchronous_periodic_start_returns(tmp_path, owner, monkeypatch):
    """The anchor's ``start -i N --synchronous`` queues the job and returns."""
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    url = f"sqlite+aiosqlite:///{tmp_path}/s.sqlite"
    args = ("start", str(tmp_path), "/tempZone/home/rods/x", "-i", "30", "--synchronous")
    code, out, err = await asyncio.wait_for(
        asyncio.to_thread(
            run_main, *args, "--job_name", "p", "--db_url", url, "--owner", owner.pw_name
        ),
        30,
    )
    assert code == 0 and out == "p\n"
    assert "--synchronous does not wait for a periodic job" in err


def test_default_store_does_not_depend_on_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("STAGER_INGEST__DB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    here = IngestStoreSettings().db_url
    monkeypatch.chdir("/")
    assert IngestStoreSettings().db_url == here == f"sqlite+aiosqlite:///{DEFAULT_INGEST_STORE}"
    assert DEFAULT_INGEST_STORE.is_absolute()
    assert DEFAULT_INGEST_STORE.parent.parent == __import__("pathlib").Path(__file__).parents[2]


def test_only_start_creates_a_store_private_and_says_where(tmp_path, owner, monkeypatch):
    monkeypatch.setenv("STAGER_INGEST__ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    where = tmp_path / "fresh" / "ingest.sqlite"
    url = f"sqlite+aiosqlite:///{where}"
    code, out, err = run_main("list", "--db_url", url)
    assert code == 0 and json.loads(out) == {"periodic": [], "singlepass": [], "stopped": []}
    assert f"no ingest job store at {where}" in err
    code, _, err = run_main("watch", "x", "--db_url", url)
    assert code == ExitStatus.NOT_FOUND and f"there is no job store at {where}" in err
    assert not where.exists() and not where.parent.exists()
    code, _, err = run_main(
        "start", str(tmp_path), "/tempZone/x", "--db_url", url, "--owner", owner.pw_name
    )
    assert code == 0, err
    assert f"created a new ingest job store at {where} (mode 0600)" in err
    assert stat.S_IMODE(os.stat(where).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(where.parent).st_mode) == 0o700
    code, _, err = run_main(
        "start", str(tmp_path), "/tempZone/y", "--db_url", url, "--owner", owner.pw_name
    )
    assert code == 0 and "created" not in err


async def test_the_api_refuses_ingest_jobs_without_a_worker(tmp_path):
    """make up against a real zone without an ingest account sets STAGER_INGEST__WORKERS
    false: PUT /v1/ingest answers 503 saying so instead of queueing a job no one runs."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from services.api.middleware import error_middleware
    from services.ingest.rest import make_app

    async def anyone(request: web.Request) -> object:
        return object()

    url = f"sqlite+aiosqlite:///{tmp_path}/r.sqlite"
    settings = IngestStoreSettings(db_url=url, allowed_roots=[str(tmp_path)], workers=False)
    app = web.Application(middlewares=[error_middleware])
    app.add_subapp("/v1/ingest", make_app(db_url=url, authorize=anyone, settings=settings))
    async with TestClient(TestServer(app)) as client:
        body = {"root": str(tmp_path), "target": "/tempZone/home/rods/r", "owner": "alice"}
        r = await client.put("/v1/ingest/j", json=body)
        assert r.status == 503
        assert "no ingest worker is configured" in (await r.json())["detail"]
        r = await client.get("/v1/ingest")
        assert r.status == 200 and (await r.json())["jobs"] == []
