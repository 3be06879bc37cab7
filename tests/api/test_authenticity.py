"""The API applies only what a worker signed: a forged task event (unsigned, signed by the
API's own key, by an untrusted key, or altered after signing), published by anyone who can
publish to the events queue, changes neither a job's state nor the error text its owner
sees; a forged listing reply answers nothing. Each is counted; the real event applies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.api.keys import METRICS
from shared.messaging import broker
from shared.messaging.messages import DirEntry, DirListReply, TaskEvent, TaskState
from shared.messaging.signing import Role, Signer, generate, load_private
from shared.messaging.topology import TYPE_DIRLIST, TYPE_EVENT
from tests.api.conftest import ALICE, Api, job, worker_event
from tests.conftest import signing_key_set

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def rejected(api: Api, type_: str, reason: str) -> float:
    value = api.app[METRICS].registry.get_sample_value(
        "stager_messages_rejected_total", {"type": type_, "reason": reason}
    )
    return value or 0.0


async def until_rejected(api: Api, type_: str, counts: dict[str, int]) -> None:
    async with asyncio.timeout(20):
        while any(rejected(api, type_, r) < n for r, n in counts.items()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert {r: rejected(api, type_, r) for r in counts} == counts


async def test_forged_events_change_no_job(api: Api) -> None:
    h = api.basic()
    r = await api.client.post("/v1/job", json=job(), headers=h)
    assert r.status == 200, await r.text()
    task_id = (await r.json())["id"]
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)
    lie = TaskEvent(
        task_id=task_id,
        attempt=5,
        seq=10**15,
        state=TaskState.ARCHIVED,
        error="PWNED: call 555-0100",
    )
    body = lie.model_dump_json().encode()
    stranger = Signer(Role.WORKER, load_private(generate()[0]))
    genuine = worker_event(b'{"v": 1}', task_id)
    forged = [
        broker.make_message(body, message_id=task_id, type_=TYPE_EVENT),  # unsigned
        broker.make_message(  # the API's key: not a worker's
            body, message_id=task_id, type_=TYPE_EVENT, signer=signing_key_set().signer(Role.API)
        ),
        broker.make_message(body, message_id=task_id, type_=TYPE_EVENT, signer=stranger),
        broker.make_message(  # a real worker signature over another body
            body, message_id=task_id, type_=TYPE_EVENT, headers=dict(genuine.headers)
        ),
    ]
    for message in forged:
        await broker.publish(x, message, api.names.events_queue)
    counts = {"unsigned": 1, "role": 1, "unknown_key": 1, "bad_signature": 1}
    await until_rejected(api, TYPE_EVENT, counts)
    got = await (await api.client.get(f"/v1/job/{task_id}", headers=h)).json()
    assert got["status"]["status"] == "pending"
    assert "PWNED" not in str(got)

    # the legitimate path: the same event, signed by a worker, is applied
    real = TaskEvent(task_id=task_id, attempt=1, seq=1, state=TaskState.ACTIVE)
    await broker.publish(
        x, worker_event(real.model_dump_json().encode(), task_id), api.names.events_queue
    )
    for _ in range(200):
        got = await (await api.client.get(f"/v1/job/{task_id}", headers=h)).json()
        if got["status"]["status"] == "active":
            break
        await asyncio.sleep(0.02)
    assert got["status"]["status"] == "active"
    await channel.close()
    metrics = await (await api.client.get("/metrics")).text()
    assert 'stager_messages_rejected_total{reason="unsigned",type="stager.event"} 1.0' in metrics


async def test_a_forged_listing_reply_is_ignored(api: Api) -> None:
    """Someone answers the API's listing request first (they saw reply_to and the
    correlation id): the forged answer is dropped; the caller gets the worker's."""
    channel = await api.amqp.channel()
    queue = await channel.get_queue(api.names.dir_rpc_queue)
    worker = signing_key_set().signer(Role.WORKER)

    async def on_request(msg: Any) -> None:
        async with msg.process():
            fake = DirListReply(ok=True, entries=[DirEntry(name="fake", type="regular", size=1)])
            real = DirListReply(ok=True, entries=[DirEntry(name="real", type="regular", size=1)])
            for reply, signer in ((fake, None), (real, worker)):
                await channel.default_exchange.publish(
                    broker.make_message(
                        reply.model_dump_json().encode(),
                        message_id=msg.message_id,
                        type_=TYPE_DIRLIST,
                        correlation_id=msg.correlation_id,
                        signer=signer,
                    ),
                    routing_key=msg.reply_to,
                )

    tag = await queue.consume(on_request)
    try:
        r = await api.client.get("/v1/dir", params={"path": "/project"}, headers=api.bearer(ALICE))
        body = await r.json()
    finally:
        await queue.cancel(tag)
        await channel.close()
    assert r.status == 200, body
    assert "fake" not in str(body) and "real" in str(body)
    assert rejected(api, TYPE_DIRLIST, "unsigned") == 1
