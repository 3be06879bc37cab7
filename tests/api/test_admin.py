"""The admin view's API against real RabbitMQ, both stores and a real OIDC provider:
roles, intake pause seen by a second replica, jobs across users, actions with
confirmation, the dead-letter queue (requeue re-signs from the store), queues, workers,
and (with a real worker) a job's attempts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from datetime import timedelta
from typing import Any

import aio_pika
import pytest

from services.api.admin.settings import AdminSettings
from services.api.keys import SIGNER, STORE
from shared.messaging import broker
from shared.messaging.messages import RunningChild, TaskMessage, WorkerStatus, utcnow
from shared.messaging.signing import Role
from shared.messaging.topology import (
    ROUTE_NORMAL,
    ROUTE_PRIORITY,
    TYPE_HEARTBEAT,
    TYPE_TASK,
    Topology,
)
from tests.api.conftest import ALICE, BOB, DR_PASS, WIDE, WIDE_PW, WORKER_SIGNER, Api, job
from tests.api.test_end_to_end import alice_dir, start_stack, until  # noqa: F401 - fixtures
from tests.conftest import signing_key_set

ADMINS, VIEWERS = "stager-admins", "stager-viewers"
ADMIN_SETTINGS = AdminSettings(groups=[ADMINS], readonly_groups=[VIEWERS], service_accounts=[WIDE])


async def admin_api(make_api: Any, **over: Any) -> Api:
    return await make_api(admin=ADMIN_SETTINGS, **over)


def admin(api: Api, user: str = "stgroot1") -> dict[str, str]:
    return api.bearer(user, groups=[ADMINS, "staff"])


def viewer(api: Api) -> dict[str, str]:
    return api.bearer("stgview1", groups=VIEWERS)  # one space-separated string


def audit_lines(api: Api) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in api.logs.getvalue().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("event") == "admin.action"]


async def submit(api: Api, n: int = 1, **over: Any) -> list[str]:
    ids = []
    for _ in range(n):
        r = await api.client.post("/v1/job", json=job(**over), headers=api.basic())
        assert r.status == 200, await r.text()
        ids.append((await r.json())["id"])
    return ids


async def test_roles(make_api: Any) -> None:
    api = await admin_api(make_api)
    c = api.client
    r = await c.get("/v1/admin/me")
    assert r.status == 401
    r = await c.get("/v1/admin/me", headers=api.bearer(ALICE))
    assert r.status == 403 and "admin group" in (await r.json())["errorMessage"]
    r = await c.get("/v1/admin/me", headers=api.basic())  # a service account not listed
    assert r.status == 403
    r = await c.get("/v1/admin/me", headers=admin(api))
    assert (await r.json())["role"] == "admin"
    r = await c.get("/v1/admin/me", headers=api.basic(WIDE, WIDE_PW))
    assert (await r.json())["role"] == "admin"
    r = await c.get("/v1/admin/me", headers=viewer(api))
    assert r.status == 200 and (await r.json())["role"] == "readonly"
    for path in ("/v1/admin/jobs", "/v1/admin/queues", "/v1/admin/workers", "/v1/admin/intake"):
        assert (await c.get(path, headers=viewer(api))).status == 200, path
        assert (await c.get(path, headers=api.bearer(BOB))).status == 403, path
    r = await c.put("/v1/admin/intake", json={"paused": True}, headers=viewer(api))
    assert r.status == 403 and "read-only" in (await r.json())["errorMessage"]
    r = await c.post(
        "/v1/admin/jobs/bulk",
        json={"action": "cancel", "filter": {}, "confirm": 0},
        headers=viewer(api),
    )
    assert r.status == 403
    assert audit_lines(api) == []  # nothing was done


async def test_intake_pause_is_seen_by_every_replica(make_api: Any) -> None:
    api = await admin_api(make_api)
    other = await admin_api(make_api)  # a second replica on the same store
    r = await api.client.put(
        "/v1/admin/intake", json={"paused": True, "reason": "iRODS upgrade"}, headers=admin(api)
    )
    assert r.status == 200 and (await r.json())["paused"] is True
    for replica in (api, other):
        r = await replica.client.post("/v1/job", json=job(), headers=replica.basic())
        assert r.status == 503
        body = await r.json()
        assert "paused by an administrator" in body["errorMessage"]
        assert "retry later" in body["errorMessage"] and "iRODS upgrade" in body["errorMessage"]
        assert r.headers["Retry-After"] == "300"
        r = await replica.client.post("/v1/jobs", json={"jobs": [job()]}, headers=replica.basic())
        assert r.status == 503
    view = await (await other.client.get("/v1/admin/intake", headers=viewer(other))).json()
    assert view["paused"] and view["updatedBy"] == "user:stgroot1"
    r = await other.client.put("/v1/admin/intake", json={"paused": False}, headers=admin(other))
    assert r.status == 200
    r = await api.client.post("/v1/job", json=job(), headers=api.basic())
    assert r.status == 200
    # logging goes to the replica made last
    lines = audit_lines(other)
    assert [x["action"] for x in lines] == ["intake.pause", "intake.resume"]
    assert lines[0]["actor"] == "user:stgroot1" and lines[0]["reason"] == "iRODS upgrade"
    r = await api.client.put("/v1/admin/intake", json={"paused": "maybe"}, headers=admin(api))
    assert r.status == 400


async def test_jobs_across_users_filters_and_paging(make_api: Any) -> None:
    api = await admin_api(make_api)
    alice = await submit(api, 3)
    r = await api.client.post(
        "/v1/job", json=job(stagerUser=BOB, drUser="bob@ru.nl"), headers=api.bearer(BOB)
    )
    bob = (await r.json())["id"]
    c, h = api.client, viewer(api)
    body = await (await c.get("/v1/admin/jobs", headers=h)).json()
    assert body["total"] == 4 and {j["job"]["id"] for j in body["jobs"]} == {*alice, bob}
    body = await (await c.get("/v1/admin/jobs", params={"user": BOB}, headers=h)).json()
    assert [j["job"]["id"] for j in body["jobs"]] == [bob]
    assert body["jobs"][0]["submitter"] == f"user:{BOB}"
    page = await (
        await c.get("/v1/admin/jobs", params={"limit": "2", "offset": "2"}, headers=h)
    ).json()
    assert page["total"] == 4 and len(page["jobs"]) == 2
    body = await (await c.get("/v1/admin/jobs", params={"minAge": "3600"}, headers=h)).json()
    assert body["total"] == 0
    body = await (await c.get("/v1/admin/jobs", params={"maxAge": "3600"}, headers=h)).json()
    assert body["total"] == 4
    body = await (
        await c.get("/v1/admin/jobs", params={"state": "completed,archived"}, headers=h)
    ).json()
    assert body["total"] == 0
    for bad in ({"state": "stuck"}, {"minAge": "-1"}, {"user": "../x"}, {"limit": "x"}):
        r = await c.get("/v1/admin/jobs", params=bad, headers=h)
        assert r.status == 400, bad
        assert "errorMessage" in await r.json()
    r = await c.get(f"/v1/admin/jobs/{bob}", headers=h)
    detail = await r.json()
    assert detail["job"]["data"]["stagerUser"] == BOB and detail["run"] == 1
    assert "drPass" not in json.dumps(detail) and DR_PASS not in json.dumps(detail)
    assert (await c.get("/v1/admin/jobs/nope", headers=h)).status == 404


async def test_actions_and_bulk_need_the_right_confirmation(make_api: Any) -> None:
    api = await admin_api(make_api)
    ids = await submit(api, 3)
    c, h = api.client, admin(api)
    r = await c.post(f"/v1/admin/jobs/{ids[0]}/restart", headers=h)
    assert r.status == 409 and "only finished" in (await r.json())["errorMessage"]
    r = await c.delete(f"/v1/admin/jobs/{ids[0]}", headers=h)
    assert r.status == 409 and "cancel it first" in (await r.json())["errorMessage"]
    r = await c.post(f"/v1/admin/jobs/{ids[0]}/cancel", headers=h)
    assert r.status == 200 and (await r.json())["done"] == [ids[0]]
    r = await c.post(f"/v1/admin/jobs/{ids[0]}/restart", headers=h)
    assert r.status == 200
    task = await api.app[STORE].get(ids[0])
    assert task is not None and task.state == "pending" and task.run == 2
    # bulk: a filter with the wrong count changes nothing and says the right one
    bulk = {"action": "cancel", "filter": {"user": ALICE, "state": ["pending"]}}
    r = await c.post("/v1/admin/jobs/bulk", json={**bulk, "confirm": 2}, headers=h)
    assert r.status == 409 and '"confirm": 3' in (await r.json())["errorMessage"]
    states = {(await api.app[STORE].get(i)).state for i in ids}  # type: ignore[union-attr]
    assert states == {"pending"}
    r = await c.post("/v1/admin/jobs/bulk", json={**bulk, "confirm": 3}, headers=h)
    assert r.status == 200 and sorted((await r.json())["done"]) == sorted(ids)
    r = await c.post(
        "/v1/admin/jobs/bulk", json={"action": "delete", "ids": ids, "confirm": 3}, headers=h
    )
    assert r.status == 200 and len((await r.json())["done"]) == 3
    body = await (await c.get("/v1/admin/jobs", params={"state": "deleted"}, headers=h)).json()
    assert body["total"] == 3
    r = await c.post(
        "/v1/admin/jobs/bulk", json={"action": "delete", "confirm": 0}, headers=h
    )  # neither ids nor filter
    assert r.status == 400
    r = await c.post(
        "/v1/admin/jobs/bulk", json={"action": "purge", "ids": [], "confirm": 0}, headers=h
    )
    assert r.status == 400
    lines = audit_lines(api)
    # refused attempts are audited too (with skipped=1); a wrong confirmation is not an action
    assert [(x["action"], x["done"]) for x in lines] == [
        ("jobs.restart", 0),
        ("jobs.delete", 0),
        ("jobs.cancel", 1),
        ("jobs.restart", 1),
        ("jobs.cancel", 3),
        ("jobs.delete", 3),
    ]
    assert lines[-1]["job_count"] == 3 and set(lines[-1]["jobs"]) == set(ids)
    assert DR_PASS not in api.logs.getvalue()


async def _dead(api: Api, message: aio_pika.Message) -> None:
    channel = await api.amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(api.names.dead_exchange)
    await exchange.publish(message, routing_key="")
    await channel.close()


async def test_dead_letters_requeue_from_the_store_signed_afresh(make_api: Any) -> None:
    api = await admin_api(make_api)
    [task_id] = await submit(api)
    [released] = await api.queued()  # as if a worker had taken it and crashed repeatedly
    forged = broker.make_message(b'{"v":1}', message_id="forged-1", type_=TYPE_TASK)
    await _dead(
        api,
        broker.make_message(
            released.body, message_id=task_id, type_=TYPE_TASK, headers=dict(released.headers)
        ),
    )
    await _dead(api, forged)
    c, h = api.client, admin(api)
    body = await (await c.get("/v1/admin/deadletters", headers=viewer(api))).json()
    assert body["depth"] == 2
    by_id = {x["messageId"]: x for x in body["letters"]}
    assert by_id[task_id]["signed"] and by_id[task_id]["requeueable"]
    assert by_id[task_id]["jobState"] == "pending" and by_id[task_id]["stagerUser"] == ALICE
    assert not by_id["forged-1"]["signed"] and not by_id["forged-1"]["requeueable"]
    assert by_id["forged-1"]["rejectReason"] == "unsigned" and by_id["forged-1"]["jobState"] is None
    # listing leaves them there (and answers once they are back: the next request sees them)
    body = await (await c.get("/v1/admin/deadletters", headers=h)).json()
    assert body["depth"] == 2 and len(body["letters"]) == 2
    r = await c.post("/v1/admin/deadletters/requeue", json={"all": True, "confirm": 1}, headers=h)
    assert r.status == 409  # two match
    r = await c.post("/v1/admin/deadletters/requeue", json={"all": True, "confirm": 2}, headers=h)
    result = await r.json()
    assert result["done"] == [task_id] and "discard it" in result["skipped"]["forged-1"]
    [again] = await api.queued()
    msg = TaskMessage.model_validate_json(again.body)
    assert msg.task_id == task_id and msg.run == 2  # a new run, from the store
    verifier = signing_key_set().settings(Role.WORKER).verifier(Role.API)
    verifier.verify(
        again.body, again.headers, type_=again.type, message_id=again.message_id, accept=[Role.API]
    )
    assert again.headers["x-stager-sig"] != released.headers["x-stager-sig"]
    body = await (await c.get("/v1/admin/deadletters", headers=h)).json()
    assert [x["messageId"] for x in body["letters"]] == ["forged-1"]
    r = await c.post(
        "/v1/admin/deadletters/discard", json={"ids": ["forged-1"], "confirm": 1}, headers=h
    )
    assert (await r.json())["done"] == ["forged-1"]
    body = await (await c.get("/v1/admin/deadletters", headers=h)).json()
    assert body["depth"] == 0
    for action in ("requeue", "discard"):  # read-only administrators may not act
        r = await c.post(
            f"/v1/admin/deadletters/{action}", json={"all": True, "confirm": 0}, headers=viewer(api)
        )
        assert r.status == 403
    assert [x["action"] for x in audit_lines(api)] == [
        "deadletters.requeue",
        "deadletters.discard",
    ]


async def test_queues_show_depth_consumers_and_oldest_age(make_api: Any) -> None:
    api = await admin_api(make_api, run_dispatcher=False)
    await submit(api, 2)
    c, h = api.client, viewer(api)
    body = await (await c.get("/v1/admin/queues", headers=h)).json()
    assert body["held"] == 2 and body["heldOldestAge"] is not None
    from services.api.keys import DISPATCHER

    await api.app[DISPATCHER].run_once()
    body = await (await c.get("/v1/admin/queues", headers=h)).json()
    queues = {q["name"]: q for q in body["queues"]}
    prio = queues[api.names.priority_queue]
    assert prio["ready"] == 2 and prio["consumers"] == 0 and prio["oldestAge"] >= 0
    assert queues[api.names.tasks_queue]["ready"] == 0
    assert queues[api.names.tasks_queue]["oldestAge"] is None
    assert queues[api.names.events_queue]["consumers"] == 1  # this API's event consumer
    assert body["held"] == 0 and body["intakePaused"] is False
    await api.drain(api.names.priority_queue)


async def _queues(api: Api) -> dict[str, dict[str, Any]]:
    body = await (await api.client.get("/v1/admin/queues", headers=viewer(api))).json()
    return {q["name"]: q for q in body["queues"]}


async def test_queues_show_unacked_retry_and_dead_letter_ages(make_api: Any) -> None:
    """Every queue of the topology and the retry queues the workers report; unacked
    deliveries of a task queue; the peeked head's age, the head left in place."""
    api = await admin_api(make_api, run_dispatcher=False)
    n = api.names
    retry = Topology(names=n, retry_delays_ms=frozenset({600_000}))
    retry_q = n.retry_queue(ROUTE_NORMAL, 600_000)
    channel = await api.amqp.channel(publisher_confirms=True)
    worker_ch = await api.amqp.channel()
    try:
        await channel.declare_queue(
            retry_q, durable=True, arguments=retry.retry_queue_arguments(ROUTE_NORMAL, 600_000)
        )
        before = await _queues(api)
        assert set(Topology(names=n).queue_names()) == set(before)  # no worker: no retry queue
        host = socket.gethostname()
        status = WorkerStatus(
            worker_id=f"{host}:77",
            hostname=host,
            pid=77,
            slots=1,
            interval=15.0,
            started_at=utcnow(),
            retry_queues=[*retry.retry_queue_names(), "other.retry.normal.5", f"{n.prefix}.x"],
        )
        await _beat(api, status)
        await _workers(api, 1)
        # a task a worker holds unacknowledged, another still ready
        await submit(api, 2)
        from services.api.keys import DISPATCHER

        await api.app[DISPATCHER].run_once()
        held: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await worker_ch.set_qos(prefetch_count=1)  # like a worker with one slot
        await (await worker_ch.get_queue(n.priority_queue)).consume(held.put)
        taken = await asyncio.wait_for(held.get(), 10)
        old = utcnow() - timedelta(seconds=120)
        await channel.default_exchange.publish(
            broker.make_message(b"{}", message_id="r-1", type_=TYPE_TASK, timestamp=old),
            routing_key=retry_q,
        )
        died = utcnow() - timedelta(seconds=300)
        x_death = [{"reason": "delivery_limit", "queue": n.tasks_queue, "count": 1, "time": died}]
        letter = broker.make_message(
            b"{}", message_id="d-1", type_=TYPE_TASK, headers={"x-death": x_death}
        )
        await _dead(api, letter)
        for _ in range(2):  # peeking leaves every head where it was
            queues = await _queues(api)
            prio = queues[n.priority_queue]
            assert (prio["ready"], prio["unacked"], prio["consumers"]) == (1, 1, 1)
            assert prio["unackedSource"].startswith("task store")
            assert queues[n.tasks_queue]["unacked"] == 0
            assert set(queues) == set(before) | {retry_q, n.retry_queue(ROUTE_PRIORITY, 600_000)}
            r = queues[retry_q]
            assert r["ready"] == 1 and r["unacked"] == 0 and "600 s" in r["purpose"]
            assert 120 <= r["oldestAge"] < 180 and "published" in r["oldestSource"]
            d = queues[n.dead_queue]
            assert d["ready"] == 1 and 300 <= d["oldestAge"] < 360
            assert "died" in d["oldestSource"]
            ev = queues[n.events_queue]
            assert ev["consumers"] == 1 and ev["unacked"] is None  # the API's own consumer
            assert "management" in ev["unackedSource"]
            assert queues[n.ingest_files_queue]["oldestAge"] is None
        await worker_ch.close()  # the "worker" goes: its delivery returns
        prio = (await _queues(api))[n.priority_queue]
        assert (prio["ready"], prio["unacked"], prio["consumers"]) == (2, 0, 0)
        assert taken.delivery_tag
    finally:
        await channel.queue_delete(retry_q)
        await channel.close()
        if not worker_ch.is_closed:
            await worker_ch.close()
    await api.drain(n.priority_queue)
    await api.drain(n.dead_queue)


async def _beat(api: Api, status: WorkerStatus, signer: Any = WORKER_SIGNER) -> None:
    channel = await api.amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(api.names.workers_exchange)
    body = status.model_dump_json().encode()
    await exchange.publish(
        broker.make_message(
            body,
            message_id=status.worker_id + str(status.at.timestamp()),
            type_=TYPE_HEARTBEAT,
            signer=signer,
        ),
        routing_key="",
    )
    await channel.close()


async def _workers(api: Api, want: int) -> list[dict[str, Any]]:
    body: dict[str, Any] = {}
    for _ in range(100):
        body = await (await api.client.get("/v1/admin/workers", headers=viewer(api))).json()
        if len(body["workers"]) == want:
            return list(body["workers"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {want} workers: {body}")


async def test_workers_from_signed_heartbeats(make_api: Any) -> None:
    api = await admin_api(make_api)
    host = socket.gethostname()
    status = WorkerStatus(
        worker_id=f"{host}:4242",
        hostname=host,
        pid=4242,
        slots=4,
        running=[RunningChild(task_id="t-1", pid=os.getpid(), running_s=3.5)],
        interval=15.0,
        started_at=utcnow(),
    )
    forged = status.model_copy(update={"worker_id": "evil:1", "hostname": "evil"})
    await _beat(api, forged, signer=api.app[SIGNER])  # signed, but as the API: not a worker
    await _beat(api, status)
    [w] = await _workers(api, 1)
    assert w["hostname"] == host and w["slots"] == 4
    assert w["running"] == [{"task_id": "t-1", "pid": os.getpid(), "running_s": 3.5}]
    await _beat(api, status.model_copy(update={"stopping": True, "at": utcnow()}))
    await _workers(api, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker runs transfers as the user")
@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_job_detail_lists_a_failed_then_successful_attempt(
    start_stack: Any,  # noqa: F811
    alice_dir: Any,  # noqa: F811
) -> None:
    from tests.worker.jobs import KINDS

    api, _worker = await start_stack(
        api_kw={"admin": ADMIN_SETTINGS}, job_kinds=KINDS, transfer_kind="flaky"
    )
    body = job(srcURL=str(alice_dir / "src"), dstURL="irods:/tempZone/x")
    r = await api.client.post("/v1/job", json=body, headers=api.bearer())
    task_id = (await r.json())["id"]
    done = await until(api, task_id, {"completed", "archived"})
    assert done["status"]["status"] == "completed", done
    r = await api.client.get(f"/v1/admin/jobs/{task_id}", headers=viewer(api))
    assert r.status == 200, await r.text()
    detail = await r.json()
    first, second = detail["attempts"]
    me = f"{socket.gethostname()}:{os.getpid()}"  # the worker runs in this process
    assert (first["run"], first["attempt"], first["worker"]) == (1, 1, me)
    assert first["outcome"] == "retry" and first["errorKind"] == "timeout"
    assert "did not answer in time" in first["error"]
    assert first["startedAt"] <= first["endedAt"] <= second["startedAt"] <= second["endedAt"]
    assert (second["attempt"], second["worker"], second["outcome"]) == (2, me, "completed")
    assert second["error"] is None and detail["attempt"] == 2
    r = await api.client.get(f"/v1/admin/jobs/{task_id}", headers=api.bearer(ALICE))
    assert r.status == 403  # the owner is no administrator
