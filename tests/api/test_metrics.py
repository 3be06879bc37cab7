"""Metrics: the gauge Throttle, and through the app the events consumer's batch ack and
the /metrics gauges re-read only when due."""

from __future__ import annotations

import asyncio

import pytest

from services.api.keys import METRICS, STORE
from services.api.metrics import Throttle
from shared.messaging.messages import Progress, TaskState
from tests.api.conftest import Api, job, worker_event
from tests.api.store.conftest import ev


def test_throttle() -> None:
    t = Throttle(3600)
    assert t.due() and not t.due()
    assert Throttle(0).due() and Throttle(0).due()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_consumer_batch_is_acked_and_metrics_gauges_throttled(api: Api) -> None:
    """A burst of events (with a malformed and a stale one) is applied and every message
    settled; /metrics re-reads the store only when its gauges are due."""
    metrics = api.app[METRICS]
    metrics.gauges_due = Throttle(3600)
    first = await (await api.client.get("/metrics")).text()
    assert 'stager_jobs_current{state="pending"} 0.0' in first
    r = await api.client.post("/v1/jobs", json={"jobs": [job(), job()]}, headers=api.basic())
    assert r.status == 200, await r.text()
    ids = [j["id"] for j in (await r.json())["jobs"]]
    cached = await (await api.client.get("/metrics")).text()
    assert 'stager_jobs_current{state="pending"} 0.0' in cached  # not re-read yet
    steps = ((1, TaskState.ACTIVE), (3, TaskState.COMPLETED), (2, TaskState.ACTIVE))
    bodies = [ev(i, seq, st).model_dump_json().encode() for i in ids for seq, st in steps]
    bodies.insert(2, b"not json")
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)
    for body in bodies:
        await x.publish(worker_event(body), routing_key=api.names.events_queue)
    store = api.app[STORE]
    for _ in range(250):
        tasks = [await store.get(i) for i in ids]
        if all(t is not None and t.state == TaskState.COMPLETED for t in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"events not applied: {tasks}")
    metrics.gauges_due = Throttle(0)
    fresh = await (await api.client.get("/metrics")).text()
    assert 'stager_jobs_current{state="completed"} 2.0' in fresh
    assert 'stager_jobs_total{state="completed"} 2.0' in fresh
    assert 'stager_transfer_bytes_total{direction="upload"}' not in fresh  # no progress
    await asyncio.sleep(0.2)  # the batch ack follows the commit
    await api.client.close()  # consumer gone: anything unacked would be ready again
    queue = await channel.declare_queue(api.names.events_queue, passive=True)
    assert queue.declaration_result.message_count == 0
    await channel.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_active_counts_entries_not_progress_and_no_api_bytes(api: Api) -> None:
    """Four attempts with three progress reports each: ``active`` counted 4 times, not
    16; the API exports no byte counter (the worker's ``stager_transfer_bytes_total`` is
    the only one, so the name means one thing)."""
    r = await api.client.post("/v1/job", json=job(), headers=api.basic())
    assert r.status == 200, await r.text()
    task_id = (await r.json())["id"]
    events, seq = [], 0
    for attempt in range(1, 5):
        seq += 1
        events.append(ev(task_id, seq, TaskState.ACTIVE, attempt=attempt))
        for n in range(1, 4):
            seq += 1
            p = Progress(bytes_total=300, bytes_done=100 * n, files_total=1)
            events.append(ev(task_id, seq, TaskState.ACTIVE, attempt=attempt, progress=p))
        seq += 1
        last = TaskState.RETRY if attempt < 4 else TaskState.COMPLETED
        events.append(ev(task_id, seq, last, attempt=attempt, progress=p))
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)
    for e in events:
        await x.publish(
            worker_event(e.model_dump_json().encode()), routing_key=api.names.events_queue
        )
    await channel.close()
    store = api.app[STORE]
    async with asyncio.timeout(20):
        while (t := await store.get(task_id)) is None or t.state != TaskState.COMPLETED:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    registry = api.app[METRICS].registry
    assert registry.get_sample_value("stager_jobs_total", {"state": "active"}) == 4.0
    assert registry.get_sample_value("stager_jobs_total", {"state": "retry"}) == 3.0
    assert registry.get_sample_value("stager_jobs_total", {"state": "completed"}) == 1.0
    text = await (await api.client.get("/metrics")).text()
    assert "stager_transfer_bytes" not in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_events_and_their_store_transactions_are_counted(api: Api) -> None:
    """``stager_events_total{applied}`` counts what workers sent (a stale one as not
    applied); ``stager_event_batches_total`` the store transactions, fewer than events when
    they arrive together: what a job costs the broker and the store."""
    r = await api.client.post("/v1/job", json=job(), headers=api.basic())
    assert r.status == 200, await r.text()
    task_id = (await r.json())["id"]
    p = Progress(bytes_total=300, bytes_done=100, files_total=1)
    events = [ev(task_id, 1, TaskState.ACTIVE)]
    events += [ev(task_id, seq, TaskState.ACTIVE, progress=p) for seq in range(2, 30)]
    events += [ev(task_id, 3, TaskState.ACTIVE, progress=p)]  # stale: seq 3 < 29
    events += [ev(task_id, 40, TaskState.COMPLETED, progress=p)]
    channel = await api.amqp.channel(publisher_confirms=True)
    x = await channel.get_exchange(api.names.events_exchange)
    for e in events:
        await x.publish(
            worker_event(e.model_dump_json().encode()), routing_key=api.names.events_queue
        )
    await channel.close()
    registry = api.app[METRICS].registry

    def count(name: str, labels: dict[str, str] | None = None) -> float:
        return registry.get_sample_value(name, labels or {}) or 0.0

    async with asyncio.timeout(20):
        while (  # noqa: ASYNC110
            count("stager_events_total", {"applied": "true"})
            + count("stager_events_total", {"applied": "false"})
            < len(events)
        ):
            await asyncio.sleep(0.02)
    assert count("stager_events_total", {"applied": "true"}) == len(events) - 1
    assert count("stager_events_total", {"applied": "false"}) == 1
    batches = count("stager_event_batches_total")
    assert 1 <= batches <= len(events), batches
    text = await (await api.client.get("/metrics")).text()
    assert 'stager_events_total{applied="true"}' in text and "stager_event_batches_total" in text
