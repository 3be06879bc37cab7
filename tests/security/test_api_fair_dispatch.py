"""One user cannot hold every worker slot: a real Unix user (useradd, OIDC token)
submits 20 jobs through the real API, then another user submits one; what reaches the
real RabbitMQ task queue is two of the first user's jobs and the second user's job, so
the second user's job runs next to the first user's, not after all of them. The first
user's jobs follow as theirs finish (worker-signed events)."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from shared.messaging import broker
from shared.messaging.messages import TaskEvent, TaskMessage, TaskState
from tests.api.conftest import (  # noqa: F401 - fixtures
    ALICE,
    BOB,
    Api,
    api,
    job,
    keypair,
    make_api,
    oidc,
    oidc_key,
    worker_event,
)

pytestmark = pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)


async def _take(stager: Api, n: int) -> list[TaskMessage]:
    """The next ``n`` task messages, in queue order (the order workers get them)."""
    out: list[TaskMessage] = []
    async with asyncio.timeout(20):
        while len(out) < n:
            out += [
                TaskMessage.model_validate_json(m.body)
                for m in await stager.drain(stager.names.tasks_queue)
            ]
            await asyncio.sleep(0.05)
    return out


async def test_a_backlog_does_not_hold_every_slot(api: Api) -> None:  # noqa: F811
    r = await api.client.post(
        "/v1/jobs",
        json={"jobs": [job(stagerUser=ALICE, title=f"a{i}") for i in range(20)]},
        headers=api.bearer(ALICE),
    )
    assert r.status == 200, await r.text()
    r = await api.client.post("/v1/job", json=job(stagerUser=BOB), headers=api.bearer(BOB))
    assert r.status == 200, await r.text()
    bob_job = (await r.json())["id"]
    first = await _take(api, 3)
    await asyncio.sleep(0.3)  # nothing more is released while they run
    assert await api.drain(api.names.tasks_queue) == []
    assert sorted(m.task.stagerUser for m in first) == sorted([ALICE, ALICE, BOB])
    assert bob_job in {m.task_id for m in first}

    # the legitimate path: as Alice's jobs finish, the next ones are released
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)
    for m in first:
        if m.task.stagerUser == ALICE:
            ev = TaskEvent(task_id=m.task_id, attempt=1, seq=1, state=TaskState.COMPLETED)
            message: aio_pika.Message = worker_event(ev.model_dump_json().encode(), m.task_id)
            await broker.publish(x, message, api.names.events_queue)
    await channel.close()
    after = await _take(api, 2)
    assert [m.task.stagerUser for m in after] == [ALICE, ALICE]
