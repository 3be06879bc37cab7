"""Job life cycle through REST against real RabbitMQ and both stores: submit, sealed
queueing, batches, ownership, events, cancel, restart."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
from sqlalchemy import text

from services.api.keys import STORE
from shared.crypto import Binding, Opener, Sealer, load_public_key
from shared.messaging.messages import ControlMessage, Progress, TaskEvent, TaskMessage, TaskState
from tests.api.conftest import ALICE, BOB, DR_PASS, Api, job, worker_event


async def send_event(api: Api, **kw: Any) -> None:
    ev = TaskEvent(**kw)
    channel = await api.amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(api.names.events_exchange)
    await exchange.publish(
        worker_event(ev.model_dump_json().encode(), ev.task_id),
        routing_key=api.names.events_queue,
    )
    await channel.close()


async def wait_for(api: Api, task_id: str, headers: dict[str, str], check: Any) -> dict:
    body: dict = {}
    for _ in range(100):
        r = await api.client.get(f"/v1/job/{task_id}", headers=headers)
        body = await r.json()
        if r.status == 200 and check(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached: {body}")


async def raw_rows(api: Api) -> str:
    async with api.app[STORE].engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM stager_tasks"))).all()
    return json.dumps([[str(c) for c in row] for row in rows])


async def test_submit_seals_and_queues(api: Api, keypair: tuple[bytes, bytes]) -> None:
    r = await api.client.post("/v1/job", json=job(), headers=api.basic())
    assert r.status == 200, await r.text()
    info = await r.json()
    assert info["status"]["status"] == "pending" and "drPass" not in info["data"]
    assert info["timestamps"]["completedAt"] == -62135596800
    msgs = await api.queued()
    assert len(msgs) == 1 and msgs[0].message_id == info["id"]
    assert msgs[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert DR_PASS not in msgs[0].body.decode()
    task = TaskMessage.model_validate_json(msgs[0].body)
    assert task.v == 1 and task.priority > 0 and task.submitter.name == "streamer"
    assert task.task.timeout == 24 * 3600 and task.task.timeout_noprogress == 600  # 0: default
    assert task.task.drPass is not None
    bound = Binding(stager_user=ALICE, dr_user="alice@ru.nl", submitter="streamer")
    opened = Opener.from_pem([keypair[0]]).open(task.task.drPass, bound)
    assert opened.get_secret_value() == DR_PASS
    rows = await raw_rows(api)
    assert info["id"] in rows and DR_PASS not in rows
    assert DR_PASS not in api.logs.getvalue()


async def test_user_token_alias_and_presealed(api: Api, keypair: tuple[bytes, bytes]) -> None:
    bound = Binding(stager_user=ALICE, dr_user="alice@ru.nl")
    envelope = Sealer([load_public_key(keypair[1])]).seal(DR_PASS, bound)
    body = job(stagerUserEmail=..., stagerEmail="a@example.org", drPass=envelope)
    r = await api.client.post("/v1/job", json=body, headers=api.bearer(ALICE))
    assert r.status == 200, await r.text()
    info = await r.json()
    assert info["data"]["stagerUserEmail"] == "a@example.org"
    [msg] = await api.queued()
    assert msg.routing_key == "normal"
    task = TaskMessage.model_validate_json(msg.body)
    assert task.priority == 0 and task.submitter.kind == "user"
    assert task.task.drPass == envelope


async def test_batch_partial_is_207(api: Api) -> None:
    jobs = [job(title="a"), job(srcURL="relative/path"), job(title="c", stagerUser=BOB)]
    r = await api.client.post("/v1/jobs", json={"jobs": jobs}, headers=api.basic())
    assert r.status == 207
    body = await r.json()
    assert [j["data"]["title"] for j in body["jobs"]] == ["a"]
    assert [(x["index"], x["status"]) for x in body["rejected"]] == [(1, 400), (2, 403)]
    assert "relative" in body["rejected"][0]["errorMessage"]
    assert len(await api.queued()) == 1
    r = await api.client.post("/v1/jobs", json={"jobs": [job(), job()]}, headers=api.basic())
    assert r.status == 200 and len((await r.json())["jobs"]) == 2


async def test_only_own_jobs(api: Api) -> None:
    r = await api.client.post("/v1/job", json=job(), headers=api.bearer(ALICE))
    task_id = (await r.json())["id"]
    bob = api.bearer(BOB)
    for method, path in [
        ("GET", f"/v1/job/{task_id}"),
        ("DELETE", f"/v1/job/{task_id}"),
        ("PUT", f"/v1/job/scheduled/{task_id}"),
    ]:
        resp = await api.client.request(method, path, headers=bob)
        assert resp.status == 404, (method, await resp.text())
        assert "not yours" in (await resp.json())["errorMessage"]
    # the streamer account did not submit it either
    assert (await api.client.get(f"/v1/job/{task_id}", headers=api.basic())).status == 404
    assert (await (await api.client.get("/v1/jobs", headers=bob)).json())["jobs"] == []
    mine = await (await api.client.get("/v1/jobs", headers=api.bearer(ALICE))).json()
    assert [j["id"] for j in mine["jobs"]] == [task_id]
    pending = await api.client.get("/v1/jobs/pending", headers=api.bearer(ALICE))
    assert [j["id"] for j in (await pending.json())["jobs"]] == [task_id]
    still = await api.client.get(f"/v1/job/{task_id}", headers=api.bearer(ALICE))
    assert still.status == 200


async def test_events_are_applied_idempotently(api: Api) -> None:
    h = api.basic()
    task_id = (await (await api.client.post("/v1/job", json=job(), headers=h)).json())["id"]
    progress = Progress(files_total=10, files_processed=4, bytes_total=1000, bytes_done=400)
    await send_event(api, task_id=task_id, attempt=1, seq=5, state="active", progress=progress)
    body = await wait_for(api, task_id, h, lambda b: b["status"]["progress"]["processed"] == 4)
    assert body["status"]["status"] == "active" and body["status"]["attempts"] == 1
    assert body["status"]["progress"]["bytesDone"] == 400
    # an older event (lower seq), a duplicate and a malformed body change nothing
    await send_event(api, task_id=task_id, attempt=1, seq=3, state="pending")
    await send_event(api, task_id=task_id, attempt=1, seq=5, state="retry")
    channel = await api.amqp.channel()
    x = await channel.get_exchange(api.names.events_exchange)
    await x.publish(worker_event(b'{"v": 2}'), routing_key=api.names.events_queue)
    await channel.close()
    await send_event(
        api,
        task_id=task_id,
        attempt=2,
        seq=0,
        state="completed",
        progress=Progress(files_total=10, files_processed=10, bytes_total=1000, bytes_done=1000),
    )
    body = await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "completed")
    assert body["status"]["attempts"] == 2 and body["timestamps"]["completedAt"] > 0
    metrics = await (await api.client.get("/metrics")).text()
    assert 'stager_jobs_total{state="completed"} 1.0' in metrics
    assert 'stager_jobs_total{state="pending"} 1.0' in metrics


async def test_cancel_stops_worker_then_delete_keeps_a_record(api: Api) -> None:
    """DELETE of an active job cancels it (control message) and keeps it, listable as
    cancelled; late events do not resurrect it; a second DELETE deletes it: hidden from
    the lists, still readable by id until retention, not restartable."""
    channel = await api.amqp.channel()
    control = await channel.declare_queue(exclusive=True, auto_delete=True)
    await control.bind(api.names.control_exchange)
    h = api.basic()
    task_id = (await (await api.client.post("/v1/job", json=job(), headers=h)).json())["id"]
    await api.queued()
    await send_event(api, task_id=task_id, attempt=1, seq=1, state="active")
    await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "active")
    r = await api.client.delete(f"/v1/job/{task_id}", headers=h)
    body = await r.json()
    assert r.status == 200 and body["status"]["status"] == "cancelled"
    assert body["timestamps"]["deletedAt"] == -62135596800
    msg = await control.get(no_ack=True, timeout=5)
    assert ControlMessage.model_validate_json(msg.body).task_id == task_id
    listed = await (await api.client.get("/v1/jobs/cancelled", headers=h)).json()
    assert [j["id"] for j in listed["jobs"]] == [task_id]
    # a late event for the cancelled task is ignored, not resurrected
    await send_event(api, task_id=task_id, attempt=1, seq=2, state="completed")
    await asyncio.sleep(0.2)
    got = await api.app[STORE].get(task_id)
    assert got is not None and got.state == TaskState.CANCELLED

    r = await api.client.delete(f"/v1/job/{task_id}", headers=h)
    body = await r.json()
    assert r.status == 200 and body["status"]["status"] == "cancelled"
    assert body["timestamps"]["deletedAt"] > 0
    assert await control.get(no_ack=True, fail=False) is None  # nothing to stop any more
    for path in ("/v1/jobs", "/v1/jobs/cancelled"):
        assert (await (await api.client.get(path, headers=h)).json())["jobs"] == []
    listed = await (await api.client.get("/v1/jobs/deleted", headers=h)).json()
    assert [j["id"] for j in listed["jobs"]] == [task_id]
    other = await (await api.client.get("/v1/jobs/deleted", headers=api.bearer(BOB))).json()
    assert other["jobs"] == []  # only the caller's
    r = await api.client.get(f"/v1/job/{task_id}", headers=h)
    assert r.status == 200 and (await r.json())["timestamps"]["deletedAt"] > 0
    assert (await api.client.delete(f"/v1/job/{task_id}", headers=h)).status == 200
    await channel.close()


async def test_delete_of_a_completed_job_keeps_its_state(api: Api) -> None:
    """The issue's case: DELETE of a completed job answers completed (not cancelled),
    erases no history, and the job cannot be restarted afterwards."""
    h = api.basic()
    task_id = (await (await api.client.post("/v1/job", json=job(), headers=h)).json())["id"]
    await api.queued()
    await send_event(api, task_id=task_id, attempt=1, seq=1, state="completed")
    await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "completed")
    r = await api.client.delete(f"/v1/job/{task_id}", headers=h)
    body = await r.json()
    assert r.status == 200 and body["status"]["status"] == "completed"
    assert body["timestamps"]["completedAt"] > 0 and body["timestamps"]["deletedAt"] > 0
    r = await api.client.put(f"/v1/job/scheduled/{task_id}", headers=h)
    assert r.status == 409 and "was deleted" in (await r.json())["errorMessage"]
    metrics = await (await api.client.get("/metrics")).text()
    assert 'stager_jobs_total{state="cancelled"}' not in metrics


async def test_restart_completed_job(api: Api) -> None:
    h = api.basic()
    task_id = (await (await api.client.post("/v1/job", json=job(), headers=h)).json())["id"]
    first = await api.queued()
    r = await api.client.put(f"/v1/job/scheduled/{task_id}", headers=h)
    assert r.status == 409 and "only completed or archived" in (await r.json())["errorMessage"]
    await send_event(api, task_id=task_id, attempt=5, seq=1, state="archived", error="gone")
    await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "archived")
    r = await api.client.put(f"/v1/job/scheduled/{task_id}", headers=h)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["status"]["status"] == "pending" and body["status"]["error"] == ""
    [again] = await api.queued()
    msg = TaskMessage.model_validate_json(again.body)
    assert msg.run == 2 and msg.attempt == 1
    assert msg.task.drPass == TaskMessage.model_validate_json(first[0].body).task.drPass
    # events of the previous run no longer apply
    await send_event(api, task_id=task_id, run=1, attempt=9, seq=9, state="completed")
    await send_event(api, task_id=task_id, run=2, attempt=1, seq=1, state="active")
    body = await wait_for(api, task_id, h, lambda b: b["status"]["status"] == "active")
    assert body["status"]["attempts"] == 1


async def test_fairness_through_rest(make_api: Any) -> None:
    from services.api.dispatcher import DispatchSettings

    api = await make_api(dispatch=DispatchSettings(max_in_flight_per_user=3), run_dispatcher=False)
    hw = api.basic("ingestor", "wide-Pa55word-for-tests")
    many = [job(title=f"a{i}") for i in range(10)]
    assert (await api.client.post("/v1/jobs", json={"jobs": many}, headers=hw)).status == 200
    r = await api.client.post("/v1/job", json=job(stagerUser=BOB, title="b"), headers=hw)
    assert r.status == 200
    released = [TaskMessage.model_validate_json(m.body) for m in await api.queued()]
    users = [m.task.stagerUser for m in released]
    assert users.count(ALICE) == 3 and users.count(BOB) == 1
    assert await api.queued() == []  # alice is at her limit until one finishes
    await send_event(api, task_id=released[0].task_id, attempt=1, seq=1, state="completed")
    for _ in range(100):
        if (await api.app[STORE].get(released[0].task_id)).state == TaskState.COMPLETED:
            break
        await asyncio.sleep(0.05)
    assert len(await api.queued()) == 1
