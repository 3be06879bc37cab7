"""A final state is final: replaying a worker-signed event (a copy tapped off the broker)
or the events a worker sends when a task message is replayed to it does not flip a
completed job, through the real API app, its real event consumer and RabbitMQ. The
events are validly signed with the run's worker key (the attacker republishes copies, it
cannot sign). The legitimate paths still work: a second job's events apply, and a restart
(a new run) takes events again."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from shared.messaging import broker
from shared.messaging.messages import Progress, TaskEvent, TaskState
from tests.api.conftest import (  # noqa: F401 - fixtures
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


async def _state(stager: Api, task_id: str) -> dict[str, object]:
    r = await stager.client.get(f"/v1/job/{task_id}", headers=stager.basic())
    assert r.status == 200, await r.text()
    return dict((await r.json())["status"])


async def _until(stager: Api, task_id: str, state: str) -> dict[str, object]:
    async with asyncio.timeout(20):
        while (got := await _state(stager, task_id))["status"] != state:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return got


async def test_replayed_events_do_not_flip_a_completed_job(api: Api) -> None:  # noqa: F811
    r = await api.client.post("/v1/jobs", json={"jobs": [job(), job()]}, headers=api.basic())
    assert r.status == 200, await r.text()
    victim, other = (j["id"] for j in (await r.json())["jobs"])
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)

    async def send(*messages: aio_pika.Message) -> None:
        for m in messages:
            await broker.publish(x, m, api.names.events_queue)

    def signed(ev: TaskEvent) -> aio_pika.Message:
        return worker_event(ev.model_dump_json().encode(), ev.task_id)

    done = Progress(files_total=1, files_processed=1, bytes_total=10, bytes_done=10)
    active = signed(TaskEvent(task_id=victim, attempt=1, seq=1, state=TaskState.ACTIVE))
    completed = signed(
        TaskEvent(task_id=victim, attempt=1, seq=2, state=TaskState.COMPLETED, progress=done)
    )
    await send(active, completed)
    await _until(api, victim, "completed")

    # the attack: the tapped copies again, then what a worker running a replayed task
    # message of the same run sends (newer seq, later attempts, a final failure)
    replayed_task = [
        TaskEvent(task_id=victim, attempt=1, seq=10**15, state=TaskState.ACTIVE),
        TaskEvent(task_id=victim, attempt=2, seq=10**15 + 1, state=TaskState.RETRY, error="x"),
        TaskEvent(
            task_id=victim, attempt=5, seq=10**15 + 2, state=TaskState.ARCHIVED, error="PWNED"
        ),
    ]
    await send(active, completed, *(signed(e) for e in replayed_task))
    # the legitimate path: another job's event, queued after the replays, applies
    await send(signed(TaskEvent(task_id=other, attempt=1, seq=1, state=TaskState.ACTIVE)))
    await _until(api, other, "active")
    got = await _state(api, victim)
    assert got["status"] == "completed" and got["error"] == "" and got["attempts"] == 1

    # a restart starts run 2: its events apply, run 1's copies stay void
    r = await api.client.put(f"/v1/job/scheduled/{victim}", headers=api.basic())
    assert r.status == 200, await r.text()
    run2 = TaskEvent(task_id=victim, run=2, attempt=1, seq=5, state=TaskState.ACTIVE)
    await send(active, signed(run2))
    await _until(api, victim, "active")
    await send(completed)
    await send(signed(TaskEvent(task_id=other, attempt=1, seq=9, state=TaskState.COMPLETED)))
    await _until(api, other, "completed")
    assert (await _state(api, victim))["status"] == "active"
    await channel.close()
